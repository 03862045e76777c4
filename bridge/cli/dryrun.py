"""check and try: run the configuration against sample payloads without storing anything."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge.cli.common import Failed, _load
from bridge.exceptions import RejectedRequest
from bridge.logs import mask
from bridge.sources.request import RawRequest
from bridge.trial import Recorder, Trial, run_trial
from bridge.views import dumps, trace_lines


def _headers(pairs: Sequence[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise Failed(f"--header {pair!r} is not NAME:VALUE")
        headers[name.strip().lower()] = value.strip()
    return headers


def _trial_request(body: bytes, headers: dict[str, str]) -> RawRequest:
    headers.setdefault("content-type", "application/json")
    return RawRequest(
        method="POST", url="http://localhost/try", headers=headers, query=(), body=body
    )


def cmd_check(args: argparse.Namespace) -> int:
    recorder = Recorder()
    service = _load(args, recorder.client(send=False))
    config = service.config
    samples_dir = Path(args.rules) / "samples"
    problems: list[str] = []
    lines: list[str] = []
    samples = sorted(
        p for p in samples_dir.glob("*/*.json") if not p.name.endswith(".headers.json")
    )
    for sample in samples:
        source = sample.parent.name
        if source not in service.sources:
            problems.append(f"{sample}: no source named {source!r} (the folder names the source)")
            continue
        headers_file = sample.with_name(sample.stem + ".headers.json")
        headers = json.loads(headers_file.read_text()) if headers_file.exists() else {}
        request = _trial_request(
            sample.read_bytes(), {str(k).lower(): str(v) for k, v in headers.items()}
        )
        try:
            trials = asyncio.run(run_trial(service, source, request, recorder=recorder))
        except RejectedRequest as exc:
            problems.append(f"{sample}: the source would refuse it: {exc}")
            continue
        for trial in trials:
            matched = ", ".join(trial.dispatch.match.matched) or "no rule (unmatched)"
            lines.append(f"{sample}: {matched}")
            for action in trial.actions:
                if action.error:
                    problems.append(f"{sample}: rule {action.rule}: {action.error}")
                elif action.outcome and action.outcome.kind.value not in ("success", "skipped"):
                    problems.append(
                        f"{sample}: rule {action.rule}: provider {action.provider}: "
                        f"{action.outcome.message}"
                    )
    for line in problems:
        print(mask(line, config.secrets))
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(
        f"ok: {len(config.sources)} sources, {len(config.rules)} rules, "
        f"{len(config.providers)} providers, {len(samples)} samples"
    )
    for line in lines:
        print(f"  {line}")
    return 0


def cmd_try(args: argparse.Namespace) -> int:
    body = sys.stdin.buffer.read() if args.payload == "-" else _read(args.payload)
    recorder = Recorder()
    client = recorder.client(send=args.send)
    service = _load(args, client)
    if args.source not in service.sources:
        raise Failed(
            f"no source named {args.source!r} (have: {', '.join(sorted(service.sources))})"
        )
    request = _trial_request(body, _headers(args.header))

    async def run() -> list[Trial]:
        try:
            return await run_trial(service, args.source, request, recorder=recorder)
        finally:
            await client.aclose()

    try:
        trials = asyncio.run(run())
    except RejectedRequest as exc:
        raise Failed(f"the source would refuse this payload: {exc}") from None
    secrets = service.config.secrets
    if args.json:
        out = [t.to_json() for t in trials]
        print(dumps(out[0] if len(out) == 1 else out, secrets))
    else:
        print("note: signature verification is skipped by `try`", file=sys.stderr)
        for trial in trials:
            print(mask(_trial_text(trial, sent=args.send), secrets))
    failed = any(
        a.error or (a.outcome and a.outcome.kind.value not in ("success", "skipped"))
        for t in trials
        for a in t.actions
    )
    return 1 if failed else 0


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise Failed(f"cannot read {path}: {exc.strerror}") from None


def _trial_text(trial: Trial, *, sent: bool) -> str:
    data = trial.to_json()
    lines = ["rules"] + trace_lines(data["trace"])
    if trial.dispatch.match.default_used:
        lines.append("  (no rule matched; the source's default_rule was used)")
    if not data["actions"]:
        lines.append("no rule matched: the event would be kept as unmatched")
    for action in data["actions"]:
        lines.append(
            f"action {action['rule']} -> {action['provider']}: "
            f"{action['action'] or 'render failed'}"
        )
        if action["error"]:
            lines.append(f"  error: {action['error']}")
        if action["ticket"]:
            lines.extend(
                "  " + line
                for line in json.dumps(action["ticket"], indent=2, ensure_ascii=False).splitlines()
            )
        for request in action["requests"]:
            lines.append(f"  request: {request['method']} {request['url']}")
            lines.extend(f"    {name}: {value}" for name, value in request["headers"].items())
            if request["json"] is not None:
                lines.extend(
                    "    " + line
                    for line in json.dumps(
                        request["json"], indent=2, ensure_ascii=False
                    ).splitlines()
                )
        if sent and "outcome" in action:
            lines.append(
                f"  sent: {action['outcome']['kind']} {action['outcome']['message']}".rstrip()
            )
    return "\n".join(lines)

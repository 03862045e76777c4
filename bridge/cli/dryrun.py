"""check and try: run the configuration against sample payloads without storing anything."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.cli.common import Failed, _load
from bridge.config.quoting import defined
from bridge.exceptions import RejectedRequest
from bridge.recorder import Recorder
from bridge.redaction import mask
from bridge.sources.request import RawRequest
from bridge.trial import Trial, run_trial
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


def _sample_headers(path: Path) -> dict[str, str]:
    """The headers sent with a sample (`NAME.headers.json` beside it: a JSON object), names in
    lower case; none when there is no such file. ValueError saying what is wrong with it."""
    if not path.exists():
        return {}
    try:
        headers = json.loads(path.read_bytes())
    except ValueError as exc:  # not UTF-8, or not JSON
        raise ValueError(f"the sample's headers are not JSON: {exc}") from None
    if not isinstance(headers, dict):
        raise ValueError(
            f"the sample's headers must be a JSON object, not {type(headers).__name__}"
        )
    return {str(name).lower(): str(value) for name, value in headers.items()}


def cmd_check(args: argparse.Namespace) -> int:
    recorder = Recorder()
    service = _load(args, recorder.client())
    config = service.config
    samples_dir = Path(args.rules) / "samples"
    problems: list[str] = []
    lines: list[str] = []
    samples = sorted(
        p for p in samples_dir.glob("*/*.json") if not p.name.endswith(".headers.json")
    )
    rendered: set[str] = set()  # the rules some sample matched and rendered
    for sample in samples:
        source = sample.parent.name
        if source not in service.sources:
            problems.append(
                f"{sample}: no source named {source!r} (the folder names the source) "
                f"{defined('source', list(service.sources))}"
            )
            continue
        headers_file = sample.with_name(sample.stem + ".headers.json")
        try:
            headers = _sample_headers(headers_file)
        except ValueError as exc:
            problems.append(f"{headers_file}: {exc}")
            continue
        request = _trial_request(sample.read_bytes(), headers)
        try:
            trials = asyncio.run(run_trial(service, source, request, recorder=recorder))
        except RejectedRequest as exc:
            problems.append(f"{sample}: the source would refuse it: {exc}")
            continue
        for trial in trials:
            matched = ", ".join(trial.dispatch.match.matched) or "no rule (unmatched)"
            lines.append(f"{sample}: {matched}")
            rendered.update(action.rule for action in trial.actions)
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
    counts = [
        _count(len(config.sources), "source"),
        _count(len(config.rules), "rule"),
        _count(len(config.providers), "provider"),
        _count(len(samples), "sample"),
    ]
    print(f"ok: {', '.join(counts)}")
    print(_coverage([rule.name for rule in config.rules], rendered, samples_dir))
    for line in lines:
        print(f"  {line}")
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


UNRENDERED_LISTED = 20  # rule names listed as not rendered; more are counted


def _coverage(rules: list[str], rendered: set[str], samples_dir: Path) -> str:
    """How many rules the samples rendered, and which they did not."""
    left = [name for name in rules if name not in rendered]
    done = len(rules) - len(left)
    line = f"{done} of {_count(len(rules), 'rule')} rendered against a sample"
    if not left:
        return line
    listed = ", ".join(left[:UNRENDERED_LISTED])
    more = len(left) - UNRENDERED_LISTED
    line += f"; not rendered: {listed}" + (f" and {more} more" if more > 0 else "")
    if not done:
        line += f" (a sample is a payload in {samples_dir}/SOURCE/NAME.json)"
    return line


def cmd_try(args: argparse.Namespace) -> int:
    body = sys.stdin.buffer.read() if args.payload == "-" else _read(args.payload)
    recorder = Recorder(send=args.send)
    client = recorder.client()
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
        noted = args.send  # the stub note is said once, above the first request
        for trial in trials:
            text, noted = _trial_text(trial, sent=args.send, noted=noted)
            print(mask(text, secrets))
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


STUB_NOTE = (
    "requests (no network: each answer below is stubbed, as a helpdesk that has never seen "
    "this customer would answer; --send sends them for real)"
)


def _json_lines(value: object, indent: str) -> list[str]:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return [indent + line for line in text.splitlines()]


def _request_lines(request: dict[str, Any]) -> list[str]:
    lines = [f"  request: {request['method']} {request['url']}"]
    lines.extend(f"    {name}: {value}" for name, value in request["headers"].items())
    if request["json"] is not None:
        lines.extend(_json_lines(request["json"], "    "))
    answer = request["answer"]
    label = "answer (stubbed)" if answer["stubbed"] else "answer"
    if "error" in answer:
        return lines + [f"    {label}: none ({answer['error']})"]
    lines.append(f"    {label}: {answer['status']}")
    if answer.get("json") is not None:
        lines.extend(_json_lines(answer["json"], "      "))
    elif answer.get("text"):
        lines.extend("      " + line for line in answer["text"].splitlines())
    return lines


def _trial_text(trial: Trial, *, sent: bool, noted: bool) -> tuple[str, bool]:
    """The text of one trial, and whether the stub note has been said (it is said once)."""
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
        if action["delivery_id"]:
            lines.append(f"  delivery id: {action['delivery_id']}")
        if action["ticket"]:
            lines.extend(_json_lines(action["ticket"], "  "))
        for request in action["requests"]:
            if not noted:
                lines.append(f"  {STUB_NOTE}")
                noted = True
            lines.extend(_request_lines(request))
        if "outcome" in action:
            verb = "sent" if sent else "outcome"
            outcome = f"  {verb}: {action['outcome']['kind']} {action['outcome']['message']}"
            lines.append(outcome.rstrip())
    return "\n".join(lines), noted

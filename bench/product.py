"""The product under test: its generated configuration and its processes.

`write_config` writes a rules directory: the `bench` source (github preset, its secret from
$BENCH_WEBHOOK_SECRET), one provider named `target`, and N rules of which only the last
matches the load's body (so a linear scan would pay for all N). Every rule carries a
`correlate`, as rules users write do (a lifecycle is what the product is for): unique per
event, so each delivery takes the keyed path (its key's queue, the ticket map) without
waiting behind another. `serve`, `worker` and `check`
are started as `python -m bridge ...` subprocesses, as an operator would run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.payload import EVENT_TYPE, SECRET, SECRET_ENV, SOURCE
from bench.processes import Running, free_port, http_ok, start

PROVIDER = "target"
CORRELATE = "bench:{{ event.id }}"  # one ticket per event: the keyed path, never a wait
ENV = {SECRET_ENV: SECRET}


def rules_yaml(count: int, *, provider: str = PROVIDER) -> str:
    """`count` rules on the bench source; only the last one matches the load's body."""
    if count < 1:
        raise ValueError("at least one rule")
    rules: list[dict[str, Any]] = []
    for number in range(count - 1):
        rules.append(
            {
                "name": f"unmatched-{number}",
                "source": SOURCE,
                "when": {"body.type": f"bench.unmatched.{number}"},
                "action": "create_ticket",
                "provider": provider,
                "ticket": {
                    "subject": f"never {number}",
                    "message": {"text": "never"},
                    "correlate": CORRELATE,
                },
            }
        )
    rules.append(
        {
            "name": "payment-succeeded",
            "source": SOURCE,
            "when": {"body.type": EVENT_TYPE, "body.data.object.amount": {"gte": 100}},
            "action": "create_ticket",
            "provider": provider,
            "ticket": {
                "contact": {
                    "name": "{{ body.data.object.billing_details.name }}",
                    "email": "{{ body.data.object.receipt_email }}",
                    "identifier": "{{ body.data.object.customer }}",
                },
                "subject": "Payment {{ body.data.object.id }}",
                "message": {
                    "text": "{{ body.data.object.amount }} {{ body.data.object.currency }} "
                    "from {{ body.data.object.billing_details.name }}"
                },
                "metadata": {"order": "{{ body.data.object.metadata.order_id }}"},
                "correlate": CORRELATE,
            },
        }
    )
    return yaml.safe_dump({"rules": rules}, sort_keys=False)


LIFECYCLE = {
    "ticket.opened": "create_ticket",
    "ticket.note": "add_note",
    "ticket.closed": "close_ticket",
}


def lifecycle_yaml(*, provider: str = PROVIDER) -> str:
    """A ticket's lifecycle, as a helpdesk integration writes it: one rule per step, every
    one keyed by the order, so each key's create, notes and close run in their order."""
    rules = [
        {
            "name": f"order-{event_type.split('.')[1]}",
            "source": SOURCE,
            "when": {"body.type": event_type},
            "action": action,
            "provider": provider,
            "ticket": {
                "subject": "Order {{ body.order }}",
                "message": {"text": "{{ body.text }}"},
                "correlate": "order:{{ body.order }}",
            },
        }
        for event_type, action in LIFECYCLE.items()
    ]
    return yaml.safe_dump({"rules": rules}, sort_keys=False)


def source_yaml() -> str:
    return yaml.safe_dump(
        {"sources": {SOURCE: {"verify": {"preset": "github", "secrets": [f"${{{SECRET_ENV}}}"]}}}}
    )


def log_provider() -> dict[str, Any]:
    return {"type": "log"}


def http_provider(
    url: str,
    *,
    concurrency: int = 32,
    rate_limit: Mapping[str, Any] | None = None,
    timestamps: bool = False,
) -> dict[str, Any]:
    """The `http` provider posting the ticket action as JSON to `url`; with `timestamps`,
    headers carrying the event's receipt time and the sender's X-Sent-At (for latency)."""
    provider: dict[str, Any] = {"type": "http", "url": url, "concurrency": concurrency}
    if rate_limit:
        provider["rate_limit"] = dict(rate_limit)
    if timestamps:
        provider["headers"] = {
            "X-Received-At": "{{ event.received_at }}",
            "X-Sent-At": "{{ headers['x-sent-at'] | default('') }}",
        }
    return provider


def write_config(
    root: Path, *, rules: int, provider: Mapping[str, Any], lifecycle: bool = False
) -> tuple[Path, Path]:
    """A rules and a templates directory under `root`; returns both. `lifecycle`: the rules
    of lifecycle_yaml instead of `rules` generated ones."""
    rules_dir = root / "rules"
    templates_dir = root / "templates"
    rules_dir.mkdir(parents=True, exist_ok=True)
    templates_dir.mkdir(parents=True, exist_ok=True)
    (rules_dir / "sources.yaml").write_text(source_yaml())
    (rules_dir / "providers.yaml").write_text(
        yaml.safe_dump({"providers": {PROVIDER: dict(provider)}})
    )
    (rules_dir / "rules.yaml").write_text(lifecycle_yaml() if lifecycle else rules_yaml(rules))
    return rules_dir, templates_dir


def _bridge(arguments: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "bridge", *arguments]


def _config(rules: Path, templates: Path, db: str) -> list[str]:
    return ["--rules", str(rules), "--templates", str(templates), "--db", db]


def serve(
    rules: Path, templates: Path, *, db: str, log: Path, worker: bool = True, processes: int = 1
) -> Running:
    """`ticketbridge serve` on a free port, once /readyz answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    arguments = ["serve", *_config(rules, templates, db), "--host", "127.0.0.1"]
    arguments += ["--port", str(port), *([] if worker else ["--no-worker"])]
    arguments += ["--processes", str(processes)]
    return start(
        _bridge(arguments),
        log=log,
        env=ENV,
        url=url,
        ready=lambda _: http_ok(url + "/readyz"),
    )


def worker(rules: Path, templates: Path, *, db: str, log: Path) -> Running:
    """`ticketbridge worker`, returned at once (its start time is `started_at`)."""
    return start(
        _bridge(["worker", *_config(rules, templates, db)]),
        log=log,
        env=ENV,
        ready=lambda _: True,
    )


# `check` run so that it reports its own peak RSS: wait4's ru_maxrss would count the
# harness's memory too (the child's pages before exec), VmHWM is of the exec'd process only
_CHECK = """
import sys
from bridge.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print("BENCH_PEAK_KB", peak, file=sys.stderr)
raise SystemExit(code)
"""


def check(rules: Path, templates: Path) -> tuple[float, int, int]:
    """`ticketbridge check`: (wall seconds, peak RSS bytes, exit code)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, "check", "--rules", str(rules)]
        + ["--templates", str(templates)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ENV},
        check=False,
    )
    seconds = time.perf_counter() - started
    peak = 0
    for line in done.stderr.splitlines():
        if line.startswith("BENCH_PEAK_KB "):
            peak = int(line.split()[1]) * 1024
    return seconds, peak, done.returncode

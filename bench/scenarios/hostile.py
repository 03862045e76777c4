"""Hostile input, measured.

fuzz  the suite's fuzz campaign (tests/e2e/test_fuzz.py) at 10,000 cases against a real
      server, counting the answers by status: the target is no 5xx and every stored event
      read back (the test asserts both; here the counts become a row).
slow  the receiver under the ingest load alone, then beside 400 clients stalled mid-body:
      normal senders must not be slowed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from bench import product
from bench.report import Row, paired_ratio
from bench.scenarios.common import Bench, Measured, measure, row

ROOT = Path(__file__).resolve().parents[2]


def run_fuzz(bench: Bench) -> list[Row]:
    cases = 2_000 if bench.options.quick else 10_000
    report = bench.fresh("fuzz") / "statuses.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e/test_fuzz.py"],
        cwd=ROOT,
        env={**os.environ, "BRIDGE_FUZZ_EXAMPLES": str(cases), "BRIDGE_FUZZ_REPORT": str(report)},
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, Any] = {"statuses": {}, "seconds": 0.0}
    if report.exists():
        found = json.loads(report.read_text())
    statuses = {int(status): int(count) for status, count in found["statuses"].items()}
    errors = sum(count for status, count in statuses.items() if status >= 500)
    shown = ", ".join(f"{status}: {count:,}" for status, count in sorted(statuses.items()))
    passed = done.returncode == 0
    if not passed:
        print(f"fuzz: the campaign failed:\n{done.stdout[-3000:]}", file=sys.stderr)
    return [
        Row(
            scenario="fuzz",
            what=f"{cases:,} cases of raw and signed HTTP in {found['seconds']:.0f} s ({shown})",
            ratio=f"{errors} answers of 5xx",
            target="0 of 5xx, no crash, every stored event reads back",
            met=passed and errors == 0,
        )
    ]


# -- slow clients beside normal senders ------------------------------------------------------

STALLED = 400


class _Stalled:
    """`count` connections that each declare a 1,000-byte body, send 10 bytes and wait: one
    that the server closes (its 408 after body_timeout) is opened again at once."""

    def __init__(self, url: str, count: int) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self._address = (host, int(port))
        self._count = count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.reopened = 0

    def __enter__(self) -> _Stalled:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _open(self) -> socket.socket:
        connection = socket.create_connection(self._address, timeout=30)
        connection.sendall(
            b"POST /hooks/bench HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"a": "bcd'
        )
        connection.setblocking(False)
        return connection

    def _run(self) -> None:
        open_ = [self._open() for _ in range(self._count)]
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(open_, [], [], 0.2)
                for connection in readable:
                    try:
                        data = connection.recv(65536)
                    except OSError:
                        data = b""
                    if not data:  # closed by the server: stall again on a new one
                        open_.remove(connection)
                        connection.close()
                        open_.append(self._open())
                        self.reopened += 1
        finally:
            for connection in open_:
                connection.close()


def run_slow(bench: Bench) -> list[Row]:
    """The receiver under wrk, alone and beside 400 stalled clients, interleaved by round."""
    alone: list[Measured] = []
    beside: list[Measured] = []
    for _ in range(bench.options.rounds):
        for runs, stalled in ((alone, 0), (beside, STALLED)):
            where = bench.fresh("slow")
            rules, templates = product.write_config(where, rules=1, provider=product.log_provider())
            server = product.serve(
                rules,
                templates,
                db=f"sqlite:///{where / 'bridge.db'}",
                log=where / "serve.log",
                worker=False,
            )
            try:
                with _Stalled(server.url, stalled) if stalled else contextlib.nullcontext():
                    runs.append(measure(bench, [server]))
            finally:
                server.stop()
    rate = paired_ratio([m.rate for m in beside], [m.rate for m in alone])
    worst = row("slow", "", beside).p99_ms or 0.0
    return [
        row("slow", "serve --no-worker alone", alone),
        row(
            "slow",
            f"the same beside {STALLED} clients stalled mid-body (reopened after each 408)",
            beside,
            ratio=f"{rate:.2f} of alone" if rate is not None else "",
            target="≥0.90 of alone, p99<20 ms",
            met=rate is not None and rate >= 0.9 and worst < 20,
        ),
    ]

"""fuzz: the suite's fuzz campaign (tests/e2e/test_fuzz.py) at 10,000 cases against a real
server, counting the answers by status: the target is no 5xx and every stored event read back
(the test asserts both; here the counts become a row)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.scenarios.common import Bench

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

"""Suite-wide: a closing line that says which tests were skipped for want of what.

Two kinds of tests need something beyond Python: the PostgreSQL backend's (a server named by
BRIDGE_TEST_DATABASE_URL) and the admin pages' browser tests (/usr/bin/chromium). Without them
those tests skip; this makes the count and the remedy the last thing a run prints.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

NEEDS = {
    "BRIDGE_TEST_DATABASE_URL": (
        "PostgreSQL",
        "set BRIDGE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test "
        "(.ci/run does, starting the machine's cluster when it is stopped)",
    ),
    "chromium": ("chromium", "apt-get install -y chromium (.ci/run does)"),
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    missing: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        for marker in NEEDS:
            if marker in reason:
                missing[marker] += 1
    if not missing:
        return
    terminalreporter.section("tests that did not run", sep="-")
    for marker, count in missing.items():
        what, remedy = NEEDS[marker]
        terminalreporter.write_line(f"{count} skipped: they need {what}; {remedy}")

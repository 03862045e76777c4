"""Suite-wide: PostgreSQL for the tests that need it, and a closing line that says which tests
were skipped for want of what.

Two kinds of tests need something beyond Python: the PostgreSQL backend's (a server named by
BRIDGE_TEST_DATABASE_URL) and the admin pages' browser tests (/usr/bin/chromium). When the
variable is unset and PostgreSQL is installed, the run starts a throwaway cluster of its own
(tests/postgres_cluster.py; its own test needs only PostgreSQL's programs) and sets the
variable to it. Without them those tests skip; this makes the count, the cause and the remedy
the last thing a run prints.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests import postgres_cluster
from tests.helpers import EXECUTABLE_VARIABLE

DATABASE_URL_VARIABLE = "BRIDGE_TEST_DATABASE_URL"
NEEDS = {
    DATABASE_URL_VARIABLE: (
        "PostgreSQL",
        "install PostgreSQL (the run then starts a cluster of its own) or set "
        "BRIDGE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test "
        "(.ci/run does, starting the machine's cluster when it is stopped)",
    ),
    "PostgreSQL's programs": (  # tests/test_postgres_cluster.py starts clusters of its own
        "PostgreSQL's programs",
        "install PostgreSQL (initdb, pg_ctl, postgres)",
    ),
    "chromium": ("chromium", "apt-get install -y chromium (.ci/run does)"),
}

# the throwaway cluster of this run, or why there is none; absent: none was wanted
CLUSTER = pytest.StashKey[postgres_cluster.Cluster | str]()
ENDING = pytest.StashKey[contextlib.ExitStack]()


def pytest_configure(config: pytest.Config) -> None:
    """With BRIDGE_TEST_EXECUTABLE (CI's wheel stage), the tests are of the installed wheel: a
    `bridge` imported from a source checkout would make the run prove nothing about it."""
    if not os.environ.get(EXECUTABLE_VARIABLE):
        return
    import bridge

    package = Path(bridge.__file__).resolve().parent
    if "site-packages" not in package.parts:
        raise pytest.UsageError(
            f"{EXECUTABLE_VARIABLE} is set, but bridge was imported from {package}, not from "
            "an installed wheel: run the tests from a copy outside the checkout"
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the cluster once the run is known to have tests, unless a server is named."""
    config = session.config
    if os.environ.get(DATABASE_URL_VARIABLE) or config.option.collectonly or not session.items:
        return
    ending = contextlib.ExitStack()
    try:
        cluster = ending.enter_context(postgres_cluster.running(DATABASE_URL_VARIABLE))
    except postgres_cluster.Unavailable as exc:
        config.stash[CLUSTER] = str(exc)
        return
    config.stash[CLUSTER] = cluster
    config.stash[ENDING] = ending
    atexit.register(ending.close)  # in case the run ends without unconfigure


def pytest_unconfigure(config: pytest.Config) -> None:
    ending = config.stash.get(ENDING, None)
    if ending is not None:
        ending.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    cluster = terminalreporter.config.stash.get(CLUSTER, None)
    if isinstance(cluster, postgres_cluster.Cluster):
        terminalreporter.write_line(f"{DATABASE_URL_VARIABLE}: {cluster.describe()}")
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
        if marker == DATABASE_URL_VARIABLE and isinstance(cluster, str):
            what = f"{what}, and no cluster could be started: {cluster}"
        terminalreporter.write_line(f"{count} skipped: they need {what}; {remedy}")

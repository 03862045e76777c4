"""The run's own PostgreSQL cluster (tests/postgres_cluster.py): finding the programs, whom
they run as, starting and deleting a cluster, and clearing up after runs that were killed."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import postgres_cluster
from tests.postgres_cluster import Unavailable, find_bindir, unprivileged_user, version_key


def programs(folder: Path, names: tuple[str, ...] = postgres_cluster.PROGRAMS) -> Path:
    """A folder holding executable stand-ins for `names`."""
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    return folder


# -- finding the programs --------------------------------------------------------------------


def test_the_named_folder_is_the_only_one_looked_in(tmp_path: Path) -> None:
    chosen = programs(tmp_path / "chosen")
    path = str(programs(tmp_path / "on-path"))
    environ = {postgres_cluster.BINDIR_VARIABLE: str(chosen), "PATH": path}
    assert find_bindir(environ, install_folders=()) == chosen

    environ[postgres_cluster.BINDIR_VARIABLE] = str(tmp_path / "nothing-here")
    with pytest.raises(Unavailable) as raised:
        find_bindir(environ, install_folders=())
    assert "nothing-here" in str(raised.value)
    assert postgres_cluster.BINDIR_VARIABLE in str(raised.value)


def test_initdb_on_path_is_followed_to_its_real_folder(tmp_path: Path) -> None:
    real = programs(tmp_path / "lib" / "15" / "bin")
    linked = tmp_path / "local-bin"
    linked.mkdir()
    (linked / "initdb").symlink_to(real / "initdb")  # as Debian links it into /usr/local/bin
    assert find_bindir({"PATH": str(linked)}, install_folders=()) == real


def test_install_folders_newest_version_first_and_only_complete_ones(tmp_path: Path) -> None:
    for version in ("9.6", "10", "15"):
        programs(tmp_path / "pg" / version / "bin")
    programs(tmp_path / "pg" / "16" / "bin", names=("initdb", "pg_ctl"))  # no server
    found = find_bindir({"PATH": ""}, install_folders=(f"{tmp_path}/pg/*/bin",))
    assert found == tmp_path / "pg" / "15" / "bin"


def test_no_programs_anywhere_says_where_it_looked(tmp_path: Path) -> None:
    pattern = f"{tmp_path}/pg/*/bin"
    with pytest.raises(Unavailable) as raised:
        find_bindir({"PATH": str(tmp_path)}, install_folders=(pattern,))
    message = str(raised.value)
    assert "initdb" in message and "PATH" in message and pattern in message


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=4))
def test_version_key_reads_dotted_numbers(parts: list[int]) -> None:
    assert version_key(".".join(map(str, parts))) == tuple(parts)


@given(st.text().filter(lambda text: not all(part.isdigit() for part in text.split("."))))
def test_version_key_puts_what_is_not_a_version_first(text: str) -> None:
    assert version_key(text) == ()


# -- whom they run as ------------------------------------------------------------------------


def test_not_root_runs_them_as_itself() -> None:
    assert unprivileged_user(euid=1000, user="no-such-user-here") is None


def test_root_runs_them_as_the_unprivileged_user() -> None:
    someone = pwd.getpwuid(os.getuid()).pw_name  # any user that exists
    assert unprivileged_user(euid=0, user=someone) == someone


def test_root_without_the_unprivileged_user_says_what_is_missing() -> None:
    with pytest.raises(Unavailable) as raised:
        unprivileged_user(euid=0, user="no-such-user-here")
    assert "root" in str(raised.value) and "'no-such-user-here'" in str(raised.value)


# -- a real cluster --------------------------------------------------------------------------


def test_a_cluster_is_named_by_the_variable_while_it_runs_and_gone_after() -> None:
    try:
        find_bindir()
    except Unavailable as exc:
        pytest.skip(f"needs PostgreSQL's programs: {exc}")
    variable = "TICKETBRIDGE_TEST_CLUSTER_URL"
    before = signal.getsignal(signal.SIGTERM)
    with postgres_cluster.running(variable) as cluster:
        assert os.environ[variable] == cluster.url
        assert cluster.url.startswith("postgresql://postgres@127.0.0.1:")
        with psycopg.connect(cluster.url) as connection:
            settings: dict[str, str] = dict(
                connection.execute(
                    b"SELECT name, setting FROM pg_settings WHERE name IN "
                    b"('listen_addresses', 'unix_socket_directories', 'fsync')"
                ).fetchall()
            )
            database = connection.execute(b"SELECT current_database()").fetchone()
        assert settings == {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "fsync": "off",
        }
        assert database == ("test",)
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM ends it too
    assert signal.getsignal(signal.SIGTERM) is before
    assert variable not in os.environ
    assert not cluster.root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url, connect_timeout=3)


# -- runs that were killed -------------------------------------------------------------------


def test_leftovers_of_dead_runs_are_deleted_and_live_ones_kept(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead, alive, foreign = (tmp_path / f"{postgres_cluster.PREFIX}{name}" for name in "dal")
    for root, owner in ((dead, finished.stdout), (alive, f"{os.getpid()}\n")):
        (root / "data").mkdir(parents=True)
        (root / postgres_cluster.OWNER_FILE).write_text(owner)
    foreign.mkdir()  # no owner file: not one of ours
    reaped = postgres_cluster.reap_leftovers(tmp_path, bindir=tmp_path, user=None)
    assert reaped == [dead]
    assert not dead.exists() and alive.exists() and foreign.exists()

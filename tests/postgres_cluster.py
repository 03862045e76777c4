"""A throwaway PostgreSQL cluster for one test run, for machines without BRIDGE_TEST_DATABASE_URL.

tests/conftest.py starts one after collection (when the variable is unset and PostgreSQL's
programs are installed), points BRIDGE_TEST_DATABASE_URL at it, in this process's environment
and so in every process a test spawns, and stops and deletes it when the run ends:

- the programs (initdb, pg_ctl, postgres) are looked for in BRIDGE_TEST_POSTGRES_BINDIR alone
  when it is set (point it at a directory without them to play "no PostgreSQL here"), otherwise
  beside the initdb on PATH, in `pg_config --bindir`, then in the usual install folders;
- the cluster lives in a temporary directory: trust authentication, TCP on 127.0.0.1 only on a
  free port, no unix socket, fsync off, small shared_buffers; one database, `test`;
- initdb refuses to run as root, so as root the programs run as the `postgres` user (which
  Debian's packages create), the directory handed to it;
- it is stopped with `pg_ctl stop -m immediate` and deleted at the end, also after Ctrl-C or
  SIGTERM; a run that was SIGKILLed leaves its cluster behind, and the next run deletes it.

Anything missing is reported as Unavailable, whose message says what is missing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

BINDIR_VARIABLE = "BRIDGE_TEST_POSTGRES_BINDIR"
PROGRAMS = ("initdb", "pg_ctl", "postgres")
INSTALL_FOLDERS = (  # newest version first within each pattern
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG)
    "/usr/local/pgsql/bin",  # built from source
    "/opt/homebrew/opt/postgresql@*/bin",  # macOS, Homebrew
)
UNPRIVILEGED_USER = "postgres"  # who runs the programs when the tests run as root
DATABASE = "test"
PREFIX = "ticketbridge-pg-"  # of the temporary directories, so a later run finds leftovers
OWNER_FILE = "owner.pid"  # the pid of the run a directory belongs to
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "100",  # test_scale runs five processes of up to ten connections each
    "shared_buffers": "32MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
START_ATTEMPTS = 3  # a free port can be taken between finding it and binding it
TIMEOUT = 60  # seconds for initdb, for the server to start and to stop


class Unavailable(Exception):
    """No cluster can be started here; the message says what is missing."""


@dataclass(frozen=True, kw_only=True)
class Cluster:
    root: Path  # the temporary directory: data/, server.log, owner.pid
    bindir: Path
    user: str | None  # who the programs run as; None: this process's user
    port: int
    version: str
    seconds: float  # how long it took to start

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def describe(self) -> str:
        return (
            f"PostgreSQL {self.version} from {self.bindir}, a throwaway cluster on "
            f"127.0.0.1:{self.port} in {self.root} (started in {self.seconds:.1f} s)"
        )


# -- finding the programs --------------------------------------------------------------------


def find_bindir(
    environ: Mapping[str, str] | None = None,
    *,
    install_folders: Sequence[str] = INSTALL_FOLDERS,
) -> Path:
    """The directory holding initdb, pg_ctl and postgres, or Unavailable saying where it looked."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(BINDIR_VARIABLE)
    if chosen is not None:
        if _has_programs(Path(chosen)):
            return Path(chosen)
        raise Unavailable(f"no {', '.join(PROGRAMS)} in {chosen!r} (named by {BINDIR_VARIABLE})")
    candidates = [*_from_path(environ.get("PATH", os.defpath)), *_installed(install_folders)]
    for candidate in candidates:
        if _has_programs(candidate):
            return candidate
    raise Unavailable(
        f"no PostgreSQL programs ({', '.join(PROGRAMS)}) on PATH, in `pg_config --bindir` or "
        f"in {', '.join(install_folders)}"
    )


def _has_programs(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) and (folder / name).is_file() for name in PROGRAMS)


def _from_path(path: str) -> Iterator[Path]:
    initdb = shutil.which("initdb", path=path)
    if initdb is not None:  # Debian links only some programs into /usr/bin or /usr/local/bin
        yield Path(initdb).resolve().parent
    pg_config = shutil.which("pg_config", path=path)
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            yield Path(done.stdout.strip())


def _installed(patterns: Iterable[str]) -> Iterator[Path]:
    for pattern in patterns:
        before, star, after = pattern.partition("*")
        if not star:
            yield Path(pattern)
            continue
        found = glob.glob(pattern)  # one star: what it stood for is the version
        found.sort(key=lambda path: version_key(path[len(before) : len(path) - len(after)]))
        yield from (Path(path) for path in reversed(found))


def version_key(version: str) -> tuple[int, ...]:
    """The version "15" -> (15,), "9.6" -> (9, 6); anything else sorts first, as ()."""
    parts = version.split(".")
    if not all(part.isdigit() for part in parts):
        return ()
    return tuple(int(part) for part in parts)


# -- who runs them ---------------------------------------------------------------------------


def unprivileged_user(*, euid: int | None = None, user: str = UNPRIVILEGED_USER) -> str | None:
    """Whom to run initdb and pg_ctl as: None for this process's own user, unless that is
    root (which initdb refuses), then `user`; Unavailable when root and there is no `user`."""
    if (os.geteuid() if euid is None else euid) != 0:
        return None
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise Unavailable(
            f"the tests run as root, which initdb refuses, and there is no {user!r} user to "
            "run it as"
        ) from None
    return user


def _run(*command: str | Path, user: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `command` as `user` (None: as this process's user), its output captured."""
    try:
        return subprocess.run(
            [str(part) for part in command],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=TIMEOUT + 10,
            check=False,
            user=user,
            group=None if user is None else pwd.getpwnam(user).pw_gid,
            extra_groups=None if user is None else [],  # not root's groups
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"{Path(command[0]).name} could not be run: {exc}") from None


def _give(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


# -- starting and stopping -------------------------------------------------------------------


def start() -> Cluster:
    """A new, running cluster with an empty database `test`; Unavailable if it cannot be."""
    began = time.monotonic()
    bindir = find_bindir()
    user = unprivileged_user()
    temp = Path(tempfile.gettempdir())
    reap_leftovers(temp, bindir=bindir, user=user)
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=temp))
    (root / OWNER_FILE).write_text(f"{os.getpid()}\n")
    _give(root, user)
    try:
        _initdb(root, bindir=bindir, user=user)
        port = _start_server(root, bindir=bindir, user=user)
        version = _create_database(port)
    except BaseException:
        _stop_and_delete(root, bindir=bindir, user=user)
        raise
    return Cluster(
        root=root,
        bindir=bindir,
        user=user,
        port=port,
        version=version,
        seconds=time.monotonic() - began,
    )


def stop(cluster: Cluster) -> None:
    """Stop the server (immediately: nothing in it is worth keeping) and delete the directory."""
    _stop_and_delete(cluster.root, bindir=cluster.bindir, user=cluster.user)


def pause(cluster: Cluster) -> None:
    """Stop the server and keep its data: a database that went down (bench's faults)."""
    done = _pg_ctl(cluster.root, "stop", "-m", "fast", bindir=cluster.bindir, user=cluster.user)
    if done.returncode != 0:
        raise Unavailable(f"pg_ctl stop failed: {_last_lines(done.stderr or done.stdout)}")


def resume(cluster: Cluster) -> None:
    """Start a paused server again, on its port."""
    log = cluster.root / "server.log"
    done = _pg_ctl(
        cluster.root,
        "-l",
        log,
        "-o",
        f"-p {cluster.port}",
        "start",
        bindir=cluster.bindir,
        user=cluster.user,
    )
    if done.returncode != 0:
        raise Unavailable(f"pg_ctl start failed: {_last_lines(done.stderr or done.stdout)}")


@contextlib.contextmanager
def running(variable: str) -> Iterator[Cluster]:
    """A started cluster named by the environment variable `variable` (in this process, and so
    in every process it starts) until the block ends; SIGTERM ends the run like Ctrl-C does,
    so the cluster is stopped and deleted then too. Unavailable if no cluster can be started."""
    cluster = start()
    main = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.getsignal(signal.SIGTERM) if main else None
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    os.environ[variable] = cluster.url
    try:
        yield cluster
    finally:
        os.environ.pop(variable, None)
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        stop(cluster)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _initdb(root: Path, *, bindir: Path, user: str | None) -> None:
    data = root / "data"
    options = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"]
    done = _run(bindir / "initdb", "-D", data, *options, user=user, cwd=root)
    if done.returncode != 0:
        raise Unavailable(f"initdb failed: {_last_lines(done.stderr or done.stdout)}")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("\n# ticketbridge's test cluster\n")
        conf.writelines(f"{name} = {value}\n" for name, value in SETTINGS.items())


def _start_server(root: Path, *, bindir: Path, user: str | None) -> int:
    """Start the server on a free port; the port."""
    log = root / "server.log"
    for _ in range(START_ATTEMPTS):
        port = _free_port()
        done = _pg_ctl(root, "-l", log, "-o", f"-p {port}", "start", bindir=bindir, user=user)
        if done.returncode == 0:
            return port
    text = log.read_text(errors="replace") if log.exists() else done.stderr
    raise Unavailable(f"pg_ctl start failed: {_last_lines(text)}")


def _pg_ctl(
    root: Path, *arguments: str | Path, bindir: Path, user: str | None
) -> subprocess.CompletedProcess[str]:
    """pg_ctl on root's cluster, waiting (bounded) for what it does to be done."""
    pg_ctl = bindir / "pg_ctl"
    return _run(
        pg_ctl, "-D", root / "data", "-w", "-t", str(TIMEOUT), *arguments, user=user, cwd=root
    )


def _create_database(port: int) -> str:
    """Create the database `test`; the server's version."""
    try:
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True, connect_timeout=10
        ) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}".encode())
            row = admin.execute(b"SHOW server_version").fetchone()
    except psycopg.Error as exc:
        raise Unavailable(f"the new cluster does not answer: {exc}") from None
    return str(row[0]) if row else "?"


def _stop_and_delete(root: Path, *, bindir: Path, user: str | None) -> None:
    if (root / "data" / "postmaster.pid").exists():
        with contextlib.suppress(Unavailable):  # the directory goes anyway
            _pg_ctl(root, "stop", "-m", "immediate", bindir=bindir, user=user)
    shutil.rmtree(root, ignore_errors=True)


def reap_leftovers(temp: Path, *, bindir: Path, user: str | None) -> list[Path]:
    """Stop and delete the clusters of earlier runs that died without doing it themselves
    (their owner pid is gone); the directories deleted."""
    reaped = []
    for root in sorted(temp.glob(f"{PREFIX}*")):
        try:
            owner = int((root / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or not written yet
        if _alive(owner):
            continue
        _stop_and_delete(root, bindir=bindir, user=user)
        reaped.append(root)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _last_lines(text: str, count: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:] if line.strip())

"""init: write the example configuration, so that a user who installed only the package (pip,
pipx, a Docker image) has a working start without a clone.

    ticketbridge init [DIR] [--force]

The example is the repository's own `rules/` (with `samples/`) and `templates/`, shipped in the
package as `bridge/example/`. Nothing is written when any file it would write exists already,
unless `--force`; directories are created as needed. Exit 0 written, 1 refused (a file exists,
or DIR cannot be written).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from bridge.cli.common import Failed

EXAMPLE = resources.files("bridge") / "example"
_TOP = PurePosixPath()


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the command on the CLI's subparsers."""
    init = commands.add_parser(
        "init", help="write a working example configuration (rules/, templates/) into DIR"
    )
    init.add_argument("dir", nargs="?", default=".", metavar="DIR", help="default: .")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")


def example_files(
    folder: Traversable = EXAMPLE,
    relative: PurePosixPath = _TOP,
) -> Iterator[tuple[PurePosixPath, Traversable]]:
    """Every file of the example, with its path relative to the example's root, in path order."""
    for entry in sorted(folder.iterdir(), key=lambda e: (e.is_dir(), e.name)):
        if entry.is_dir():
            if entry.name != "__pycache__":
                yield from example_files(entry, relative / entry.name)
        else:
            yield relative / entry.name, entry


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    files = [(target.joinpath(relative), source) for relative, source in example_files()]
    existing = [path for path, _ in files if path.exists()]
    if existing and not args.force:
        listed = "\n".join(f"  {path}" for path in existing)
        raise Failed(
            f"{len(existing)} of the example's files exist already; nothing was written "
            f"(--force overwrites them):\n{listed}"
        )
    try:
        for path, source in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source.read_bytes())
    except OSError as exc:
        raise Failed(f"cannot write {exc.filename}: {exc.strerror}") from None
    print(_next_steps(target, len(files)), file=sys.stdout)
    return 0


def _next_steps(target: Path, count: int) -> str:
    """What was written and what to run next, as commands to paste."""
    enter = [] if target == Path(".") else [f"cd {shlex.quote(str(target))}"]
    commands = [
        *enter,
        "ticketbridge check          # validate it and render every sample payload",
        "ticketbridge serve          # listen on http://127.0.0.1:8000 (SQLite: ./bridge.db)",
        "",
        "# then, in another terminal in the same directory:",
        "ticketbridge send contact-form rules/samples/contact-form/hello.json",
        "ticketbridge events         # the event, and what became of it",
    ]
    steps = "\n".join(f"  {line}" if line else "" for line in commands)
    return (
        f"wrote the example configuration ({count} files) to {target.resolve()}:\n"
        f"  rules/       sources, rules and providers (the `log` provider: no credentials)\n"
        f"  rules/samples/  sample payloads that `check` renders\n"
        f"  templates/   the Jinja templates the rules use\n"
        f"next:\n{steps}"
    )

"""ticketbridge: serve, worker, check, try, events, show, replay, purge, resume, schema, send,
init
(DESIGN §4.2; `resume` ends a provider's pause).

Exit codes: 0 ok; 1 the thing checked is wrong (config errors, a failed send, no such
event); 2 usage errors (argparse's own, and those `send` finds).

The commands live beside this module: running.py (serve, worker), dryrun.py (check, try),
records.py (events, show, replay, purge, resume, schema), send.py (send), init.py (init);
common.py holds what they share.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from bridge.cli.common import (
    DEFAULT_DB,
    Failed,
    _add_config,
    _add_db,
    _duration,
    _load,
    _positive,
    _with_store,
    add_setting,
)
from bridge.cli.dryrun import cmd_check, cmd_try
from bridge.cli.init import add_parser as add_init_parser
from bridge.cli.init import cmd_init
from bridge.cli.records import (
    cmd_events,
    cmd_purge,
    cmd_replay,
    cmd_resume,
    cmd_schema,
    cmd_show,
)
from bridge.cli.running import cmd_serve, cmd_worker
from bridge.cli.send import add_parser as add_send_parser
from bridge.cli.send import cmd_send
from bridge.cli.vambe import add_parser as add_vambe_parser
from bridge.cli.vambe import cmd_vambe_stages
from bridge.exceptions import BridgeError, ConfigError
from bridge.records import EventStatus

__all__ = [
    "COMMANDS",
    "DEFAULT_DB",
    "Failed",
    "_add_config",
    "_add_db",
    "_duration",
    "_load",
    "_with_store",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticketbridge", description="Webhooks in, helpdesk tickets out."
    )
    add_setting(parser, "BRIDGE_LOG_LEVEL", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="receive webhooks and deliver tickets")
    _add_config(serve)
    _add_db(serve)
    add_setting(serve, "BRIDGE_HOST")
    add_setting(serve, "PORT", type=int)
    serve.add_argument(
        "--no-worker", action="store_true", help="receive only; run `worker` elsewhere"
    )
    add_setting(serve, "BRIDGE_PROCESSES", type=_positive)

    worker = commands.add_parser("worker", help="deliver stored events without receiving")
    _add_config(worker)
    _add_db(worker)

    check = commands.add_parser("check", help="validate the configuration and render the samples")
    _add_config(check)

    trial = commands.add_parser("try", help="show what a payload would do: trace, action, requests")
    _add_config(trial)
    trial.add_argument("source")
    trial.add_argument("payload", help="a file with the request body, or - for standard input")
    trial.add_argument("--header", action="append", default=[], metavar="K:V")
    trial.add_argument("--send", action="store_true", help="really call the providers")
    trial.add_argument("--json", action="store_true")

    events = commands.add_parser("events", help="list stored events, newest first")
    _add_db(events)
    events.add_argument("--status", choices=[s.value for s in EventStatus])
    events.add_argument("--source")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--json", action="store_true")

    show = commands.add_parser(
        "show", help="one event with its rule trace, deliveries and attempts"
    )
    _add_db(show)
    show.add_argument("event_id")
    show.add_argument("--json", action="store_true")

    replay = commands.add_parser("replay", help="route an event again, or retry dead deliveries")
    _add_config(replay)
    _add_db(replay)
    replay.add_argument("event_id", nargs="?")
    replay.add_argument("--status", choices=["dead"])
    replay.add_argument("--provider")

    purge = commands.add_parser("purge", help="delete finished events older than a duration")
    _add_config(purge)
    _add_db(purge)
    purge.add_argument("--older-than", required=True, type=_duration, metavar="DURATION")

    resume = commands.add_parser(
        "resume", help="end a provider's pause (after a 401/403) now; without one, list pauses"
    )
    _add_db(resume)
    resume.add_argument("provider", nargs="?")

    commands.add_parser("schema", help="print the configuration's JSON Schema")
    add_send_parser(commands)
    add_init_parser(commands)
    add_vambe_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "replay" and bool(args.event_id) == bool(args.status):
        parser.error("replay takes an EVENT_ID or --status dead, not both or neither")
    handler = COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stdout)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    except Failed as exc:
        print(f"ticketbridge: {exc}", file=sys.stderr)
        return 1
    except BridgeError as exc:
        print(f"ticketbridge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`ticketbridge events | head`): stop quietly, and point stdout
        # at nothing so that the interpreter's own flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "worker": cmd_worker,
    "check": cmd_check,
    "try": cmd_try,
    "events": cmd_events,
    "show": cmd_show,
    "replay": cmd_replay,
    "purge": cmd_purge,
    "resume": cmd_resume,
    "schema": cmd_schema,
    "send": cmd_send,
    "init": cmd_init,
    "vambe-stages": cmd_vambe_stages,
}

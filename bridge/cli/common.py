"""What the command modules share: the Failed exit, common options, loading, the store."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bridge.config import parse_duration
from bridge.service import Service, load_service
from bridge.store import open_store
from bridge.store.base import Store

DEFAULT_DB = "sqlite:///bridge.db"


class Failed(Exception):
    """The command ran and the answer is 'no': print the message, exit 1."""


@dataclass(frozen=True, kw_only=True)
class Setting:
    """An option an environment variable can set instead: its flag, variable and default.

    `--help` shows the variable beside each such option, and docs/environment.md lists them
    all (tests/test_cli_help.py holds the page to this table)."""

    flag: str
    variable: str
    default: str
    metavar: str | None = None
    help: str


SETTINGS = {
    setting.variable: setting
    for setting in (
        Setting(
            flag="--rules",
            metavar="DIR",
            variable="BRIDGE_RULES",
            default="rules",
            help="rules directory",
        ),
        Setting(
            flag="--templates",
            metavar="DIR",
            variable="BRIDGE_TEMPLATES",
            default="templates",
            help="templates directory",
        ),
        Setting(
            flag="--db",
            metavar="URL",
            variable="BRIDGE_DATABASE_URL",
            default=DEFAULT_DB,
            help="database URL",
        ),
        Setting(
            flag="--host",
            metavar="HOST",
            variable="BRIDGE_HOST",
            default="127.0.0.1",
            help="address to listen on",
        ),
        Setting(
            flag="--port", metavar="PORT", variable="PORT", default="8000", help="port to listen on"
        ),
        Setting(
            flag="--processes",
            metavar="N",
            variable="BRIDGE_PROCESSES",
            default="1",
            help="N receiver processes on one port; each runs a worker unless --no-worker",
        ),
        Setting(
            flag="--log-level",
            variable="BRIDGE_LOG_LEVEL",
            default="info",
            help="the least severe log lines written",
        ),
    )
}


def add_setting(parser: argparse.ArgumentParser, variable: str, **options: Any) -> None:
    """Add the option behind `variable`: its default from the environment, then SETTINGS."""
    setting = SETTINGS[variable]
    parser.add_argument(
        setting.flag,
        default=os.environ.get(variable, setting.default),
        metavar=setting.metavar,
        help=f"{setting.help} (env {variable}; default {setting.default})",
        **options,
    )


def _add_config(parser: argparse.ArgumentParser) -> None:
    add_setting(parser, "BRIDGE_RULES")
    add_setting(parser, "BRIDGE_TEMPLATES")


def _add_db(parser: argparse.ArgumentParser) -> None:
    add_setting(parser, "BRIDGE_DATABASE_URL")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(
    args: argparse.Namespace, client: httpx.AsyncClient | None = None, *, to_run: bool = False
) -> Service:
    return load_service(
        Path(args.rules),
        Path(args.templates),
        os.environ,
        client or httpx.AsyncClient(),
        to_run=to_run,
    )


def _with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[int]]) -> int:
    """Run `work` on the existing store of `--db` (never a new, empty one)."""

    async def run() -> int:
        store = open_store(args.db, create=False)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())

"""What the command modules share: the Failed exit, common options, loading, the store."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from bridge.config import parse_duration
from bridge.service import Service, load_service
from bridge.store import open_store
from bridge.store.base import Store

DEFAULT_DB = "sqlite:///bridge.db"


class Failed(Exception):
    """The command ran and the answer is 'no': print the message, exit 1."""


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        default=os.environ.get("BRIDGE_RULES", "rules"),
        help="rules directory (BRIDGE_RULES)",
    )
    parser.add_argument(
        "--templates",
        default=os.environ.get("BRIDGE_TEMPLATES", "templates"),
        help="templates directory (BRIDGE_TEMPLATES)",
    )


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("BRIDGE_DATABASE_URL", DEFAULT_DB),
        help="database URL (BRIDGE_DATABASE_URL)",
    )


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


def _load(args: argparse.Namespace, client: httpx.AsyncClient | None = None) -> Service:
    return load_service(
        Path(args.rules), Path(args.templates), os.environ, client or httpx.AsyncClient()
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

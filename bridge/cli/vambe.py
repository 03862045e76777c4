"""vambe-stages: list a Vambe account's pipelines and stages, to find a `stage_id`.

    ticketbridge vambe-stages [--provider NAME] [--rules DIR] [--templates DIR]

Calls GET /api/public/pipeline with the configured provider's key and base_url and prints one
line per stage: pipeline, stage name, stage id. Exit 1 with the API's message when the call
fails; the api key is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import httpx

from bridge.cli.common import Failed, _add_config, _load
from bridge.providers.base import Outcome
from bridge.providers.vambe.adapter import VambeProvider
from bridge.providers.vambe.pipelines import Pipeline
from bridge.redaction import mask


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the command on the CLI's subparsers."""
    stages = commands.add_parser(
        "vambe-stages", help="list a Vambe account's pipelines and stages (to find a stage_id)"
    )
    _add_config(stages)
    stages.add_argument("--provider", help="the vambe provider to ask (default: the only one)")


def cmd_vambe_stages(args: argparse.Namespace) -> int:
    client = httpx.AsyncClient()
    service = _load(args, client)
    provider = _choose(
        {n: p for n, p in service.providers.items() if isinstance(p, VambeProvider)},
        args.provider,
    )

    async def run() -> list[Pipeline] | Outcome:
        try:
            return await provider.pipelines()
        finally:
            await client.aclose()

    answer = asyncio.run(run())
    if isinstance(answer, Outcome):
        message = mask(answer.message, service.config.secrets)
        raise Failed(f"Vambe did not list the pipelines (provider {provider.name}): {message}")
    rows = [(p.name, s.name, s.id) for p in answer for s in p.stages]
    if not rows:
        print(f"provider {provider.name}: the account has no pipeline stages", file=sys.stderr)
        return 0
    header = ("PIPELINE", "STAGE", "STAGE ID")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(2)]
    for row in [header, *rows]:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
    return 0


def _choose(providers: dict[str, VambeProvider], name: str | None) -> VambeProvider:
    if name is not None:
        if name not in providers:
            have = ", ".join(sorted(providers)) or "none"
            raise Failed(f"no vambe provider named {name!r} (vambe providers: {have})")
        return providers[name]
    if not providers:
        raise Failed("the configuration has no provider of type vambe")
    if len(providers) > 1:
        raise Failed(
            f"several vambe providers ({', '.join(sorted(providers))}): choose one with --provider"
        )
    return next(iter(providers.values()))

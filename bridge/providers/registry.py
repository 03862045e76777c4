"""Build the configured providers, and check that every rule asks its provider only for
what the provider's API can do (DESIGN §2.6); both kinds of mistake are config problems."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from bridge.config import Config, ProviderConfig, RuleConfig
from bridge.config.model import DocPath
from bridge.exceptions import Problem
from bridge.providers.base import TICKET_FIELDS, Provider
from bridge.providers.http import ORIGIN_PROBLEM, HttpProvider, written_origin
from bridge.providers.log import LogProvider
from bridge.rendering.actions import compile_tree, written_direction
from bridge.rendering.templates import Templates

Builder = Callable[[ProviderConfig, Config, Templates, httpx.AsyncClient, list[Problem]], Provider]


def _log(
    p: ProviderConfig, config: Config, t: Templates, c: httpx.AsyncClient, problems: list[Problem]
) -> Provider:
    return LogProvider(name=p.name, secrets=config.secrets)


def _http(
    p: ProviderConfig, config: Config, t: Templates, c: httpx.AsyncClient, problems: list[Problem]
) -> Provider:
    at = ("providers", p.name)
    settings: Mapping[str, Any] = p.settings
    url = str(settings.get("url", ""))
    if p.base_url and not url.startswith(("http://", "https://", "{{")):
        url = p.base_url.rstrip("/") + "/" + url.lstrip("/")
    headers = settings.get("headers")
    body = settings.get("body")
    allowed_origin = written_origin(url)
    if allowed_origin is None:
        where = config.locate(at + ("url",))
        problems.append(
            Problem(file=where.file, line=where.line, path=where.path, message=ORIGIN_PROBLEM)
        )
    return HttpProvider(
        name=p.name,
        client=c,
        method=str(settings.get("method", "POST")),
        url=compile_tree(url, at=at + ("url",), config=config, templates=t, problems=problems),
        allowed_origin=allowed_origin,
        headers=compile_tree(
            headers, at=at + ("headers",), config=config, templates=t, problems=problems
        )
        if headers
        else None,
        body=compile_tree(body, at=at + ("body",), config=config, templates=t, problems=problems)
        if body is not None
        else None,
        timeout=p.timeout,
        secrets=config.secrets,
    )


BUILDERS: dict[str, Builder] = {"log": _log, "http": _http}
# the helpdesk adapters, imported when configured: module path, each with a `build` Builder
ADAPTERS = {
    "vambe": "bridge.providers.vambe.adapter",
    "glassix": "bridge.providers.glassix.adapter",
    "cloudchat": "bridge.providers.chatwoot.adapter",
    "chatwoot": "bridge.providers.chatwoot.adapter",
    "awalchat": "bridge.providers.awalchat.adapter",
}


def _builder(kind: str) -> Builder | None:
    if kind in BUILDERS:
        return BUILDERS[kind]
    if kind in ADAPTERS:
        build: Builder = importlib.import_module(ADAPTERS[kind]).build
        return build
    return None


def build_providers(
    config: Config, templates: Templates, client: httpx.AsyncClient, problems: list[Problem]
) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for name, provider in config.providers.items():
        builder = _builder(provider.type)
        if builder is None:
            at = config.locate(("providers", name, "type"))
            problems.append(
                Problem(
                    file=at.file,
                    line=at.line,
                    path=at.path,
                    message=f"provider type {provider.type!r} is not available "
                    f"(available: {', '.join(sorted({*BUILDERS, *ADAPTERS}))})",
                )
            )
            continue
        providers[name] = builder(provider, config, templates, client, problems)
    for rule in config.rules:
        built = providers.get(rule.provider)
        if built is not None:
            problems.extend(_unsupported(rule, built, config))
    return providers


def _unsupported(rule: RuleConfig, provider: Provider, config: Config) -> list[Problem]:
    """A problem for each thing `rule` asks of `provider` that its API cannot do."""
    can = provider.capabilities
    found: list[tuple[DocPath, str]] = []
    if rule.action not in can.actions:
        found.append((("action",), f"cannot {rule.action.value}"))
    for key in sorted((set(rule.ticket) & TICKET_FIELDS) - can.fields):
        found.append((("ticket", key), f"has no ticket {key}"))
    direction = written_direction(rule.ticket.get("message"))
    if direction is not None and direction not in can.directions:
        found.append((("ticket", "message"), f"cannot send a message with direction {direction}"))
    kind = config.providers[rule.provider].type
    problems = []
    for path, lack in found:
        at = config.locate(rule.doc_path + path)
        message = f"provider {rule.provider!r} ({kind}) {lack}"
        problems.append(Problem(file=at.file, line=at.line, path=at.path, message=message))
    return problems

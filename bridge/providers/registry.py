"""Build the configured providers; a provider type we cannot build is a config problem."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from bridge.config import Config, ProviderConfig
from bridge.exceptions import Problem
from bridge.providers.base import Provider
from bridge.providers.http import HttpProvider
from bridge.providers.log import LogProvider
from bridge.rendering import compile_tree
from bridge.templates import Templates

Builder = Callable[[ProviderConfig, Config, Templates, httpx.AsyncClient, list[Problem]], Provider]


def _log(
    p: ProviderConfig, config: Config, t: Templates, c: httpx.AsyncClient, problems: list[Problem]
) -> Provider:
    return LogProvider(name=p.name)


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
    return HttpProvider(
        name=p.name,
        client=c,
        method=str(settings.get("method", "POST")),
        url=compile_tree(url, at=at + ("url",), config=config, templates=t, problems=problems),
        headers=compile_tree(
            headers, at=at + ("headers",), config=config, templates=t, problems=problems
        )
        if headers
        else None,
        body=compile_tree(body, at=at + ("body",), config=config, templates=t, problems=problems)
        if body is not None
        else None,
        timeout=p.timeout,
    )


BUILDERS: dict[str, Builder] = {"log": _log, "http": _http}


def build_providers(
    config: Config, templates: Templates, client: httpx.AsyncClient, problems: list[Problem]
) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for name, provider in config.providers.items():
        builder = BUILDERS.get(provider.type)
        if builder is None:
            at = config.locate(("providers", name, "type"))
            problems.append(
                Problem(
                    file=at.file,
                    line=at.line,
                    path=at.path,
                    message=f"provider type {provider.type!r} is not available in this version "
                    f"(available: {', '.join(sorted(BUILDERS))})",
                )
            )
            continue
        providers[name] = builder(provider, config, templates, client, problems)
    for rule in config.rules:
        built = providers.get(rule.provider)
        if built is not None and rule.action not in built.capabilities:
            at = config.locate(rule.doc_path + ("action",))
            problems.append(
                Problem(
                    file=at.file,
                    line=at.line,
                    path=at.path,
                    message=f"provider {rule.provider!r} cannot {rule.action.value}",
                )
            )
    return providers

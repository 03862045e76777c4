"""A configured source, compiled: raw request in, events to store out (pure; DESIGN §3.1).

Order: verify (on the raw bytes) -> parse -> schema -> dedupe key. Headers and query
parameters that carry a secret or a signature are redacted before anything is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from bridge.config import Config, SourceConfig
from bridge.exceptions import Problem, RejectedRequest, RenderError
from bridge.records import NewEvent
from bridge.redaction import REDACTED, redact_headers
from bridge.rendering.templates import CompiledTemplate, TemplateProblem, Templates
from bridge.routing.paths import ABSENT, lookup, parse_path
from bridge.sources.bodies import body_mode, parse_body
from bridge.sources.presets import default_dedupe_key
from bridge.sources.registry import build_verifier
from bridge.sources.request import RawRequest
from bridge.sources.verifiers import Verifier


@dataclass(frozen=True, kw_only=True)
class Intake:
    """What one accepted request becomes: one event, or one per element of a split batch."""

    events: tuple[NewEvent, ...]


class CompiledSource:
    def __init__(
        self,
        config: SourceConfig,
        *,
        verifier: Verifier,
        dedupe: Callable[[Mapping[str, Any]], str | None] | None,
        max_depth: int,
    ) -> None:
        self.config = config
        self.name = config.name
        self.max_body = config.max_body
        self.verifier = verifier
        self._dedupe = dedupe
        self._max_depth = max_depth
        self._schema = (
            jsonschema.Draft202012Validator(config.schema) if config.schema is not None else None
        )

    def redact_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return redact_headers(headers.items(), also=self.verifier.secret_headers)

    def redact_query(self, query: tuple[tuple[str, str], ...]) -> dict[str, str]:
        return redact_headers(query, also=self.verifier.secret_query)

    def intake(
        self, request: RawRequest, *, now: float, new_id: Callable[[], str], verify: bool = True
    ) -> Intake:
        """Raise RejectedRequest (a 4xx) for anything the sender got wrong."""
        if verify:
            self.verifier.verify(request, now=now)
        content_type = request.header("content-type")
        mode = body_mode(self.config.body, content_type)
        body = parse_body(
            request.body, mode=mode, content_type=content_type, max_depth=self._max_depth
        )
        secret_fields = self.verifier.secret_fields
        if secret_fields and isinstance(body, dict):
            body = {k: REDACTED if k in secret_fields else v for k, v in body.items()}
        headers = self.redact_headers(request.headers)
        query = self.redact_query(request.query)
        if self.config.split:
            if not isinstance(body, list):
                raise RejectedRequest(400, "not_a_batch", "this source expects a JSON array")
            elements = body
        else:
            elements = [body]
        events = []
        for element in elements:
            self._check_schema(element)
            payload = (
                request.body.decode("utf-8").removeprefix("\ufeff")
                if mode == "json" and not self.config.split
                else json.dumps(element, ensure_ascii=False, separators=(",", ":"))
            )
            context = {"body": element, "headers": headers, "query": query, "source": self.name}
            events.append(
                NewEvent(
                    id=new_id(),
                    source=self.name,
                    received_at=now,
                    headers=headers,
                    query=query,
                    payload=payload,
                    raw=None if secret_fields else request.body,
                    content_type=content_type,
                    dedupe_key=self._dedupe(context) if self._dedupe else None,
                )
            )
        return Intake(events=tuple(events))

    def _check_schema(self, body: Any) -> None:
        if self._schema is None:
            return
        error = jsonschema.exceptions.best_match(self._schema.iter_errors(body))
        if error is not None:
            path = "body" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
            )
            raise RejectedRequest(422, "schema_invalid", error.message, path=path)


def dedupe_key_of(source: SourceConfig) -> str | None:
    """The source's dedupe key: its own `dedupe_key`, else its preset's default."""
    return source.dedupe_key or default_dedupe_key(source.verify)


def _dedupe_by_path(text: str) -> Callable[[Mapping[str, Any]], str | None]:
    path = parse_path(text)

    def key(context: Mapping[str, Any]) -> str | None:
        value = lookup(context, path)
        if value is ABSENT or value is None or value == "":
            return None
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    return key


def _dedupe_by_template(template: CompiledTemplate) -> Callable[[Mapping[str, Any]], str | None]:
    def key(context: Mapping[str, Any]) -> str | None:
        try:
            return template.render(context).strip() or None
        except RenderError as exc:
            raise RejectedRequest(400, "dedupe_key_failed", exc.message) from None

    return key


def compile_sources(
    config: Config, templates: Templates, problems: list[Problem]
) -> dict[str, CompiledSource]:
    """Every source of the config, compiled; what is wrong goes to `problems`."""
    out: dict[str, CompiledSource] = {}
    for name, source in config.sources.items():
        verify_at = config.locate(("sources", name, "verify"))
        try:
            verifier = build_verifier(source.verify)
        except ValueError as exc:
            problems.append(
                Problem(
                    file=verify_at.file, line=verify_at.line, path=verify_at.path, message=str(exc)
                )
            )
            continue
        dedupe = None
        dedupe_key = dedupe_key_of(source)
        if dedupe_key:
            at = config.locate(("sources", name, "dedupe_key"))
            try:
                if "{{" in dedupe_key:
                    dedupe = _dedupe_by_template(
                        templates.compile_string(dedupe_key, name=f"{at.file}:{at.line} {at.path}")
                    )
                else:
                    dedupe = _dedupe_by_path(dedupe_key)
            except (ValueError, TemplateProblem) as exc:
                message = getattr(exc, "message", None) or str(exc)
                problems.append(Problem(file=at.file, line=at.line, path=at.path, message=message))
                continue
        out[name] = CompiledSource(
            source, verifier=verifier, dedupe=dedupe, max_depth=config.defaults.max_depth
        )
    return out

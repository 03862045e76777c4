"""A glassix provider's settings, and what `check` refuses in the rules that use it.

The JSON Schema (`$defs/glassix_provider`) has already checked every key's shape; here are
the checks that need more than one key: two metadata keys on one field, and each rule's
metadata keys, options and contact against the provider's field map and channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.config import Config, ProviderConfig, RuleConfig
from bridge.config.model import DocPath
from bridge.exceptions import Problem
from bridge.providers.glassix.body import (
    DEFAULT_PROTOCOL,
    OPTIONS,
    PROTOCOLS,
    GlassixSettings,
    contact_key,
    unknown_options,
)
from bridge.rendering.actions import is_file_reference
from bridge.tickets import ActionKind, OnMissing

DEFAULT_BASE_URL = "https://{workspace}.glassix.com/api/v1.2"


def read_settings(p: ProviderConfig, config: Config, problems: list[Problem]) -> GlassixSettings:
    s: Mapping[str, Any] = p.settings
    workspace = str(s.get("workspace", ""))
    fields = {str(k): str(v) for k, v in dict(s.get("fields") or {}).items()}
    seen: dict[str, str] = {}
    for key, target in fields.items():
        if target in seen:
            _problem(
                problems,
                config,
                ("providers", p.name, "fields", key),
                f"{target} is already filled by metadata key {seen[target]!r}",
            )
        seen.setdefault(target, key)
    return GlassixSettings(
        workspace=workspace,
        api_key=str(s.get("api_key", "")),
        api_secret=str(s.get("api_secret", "")),
        user_name=str(s.get("user_name", "")),
        base_url=(p.base_url or DEFAULT_BASE_URL.format(workspace=workspace)).rstrip("/"),
        protocol=str(s.get("protocol") or DEFAULT_PROTOCOL),
        culture=str(s["culture"]) if s.get("culture") else None,
        fields=fields,
    )


def rule_problems(
    p: ProviderConfig, settings: GlassixSettings, config: Config, problems: list[Problem]
) -> None:
    """What each rule sending to `p` asks that this provider cannot say (DESIGN §2.6)."""
    for rule in config.rules:
        if rule.provider != p.name:
            continue
        for path, lack in _lacks(rule, settings):
            _problem(
                problems, config, rule.doc_path + path, f"provider {p.name!r} (glassix) {lack}"
            )


def _lacks(rule: RuleConfig, settings: GlassixSettings) -> list[tuple[DocPath, str]]:
    ticket = rule.ticket
    found: list[tuple[DocPath, str]] = []
    metadata = ticket.get("metadata")
    if isinstance(metadata, Mapping):
        for key in metadata:
            if key not in settings.fields:
                found.append(
                    (
                        ("ticket", "metadata", key),
                        f"has no field for metadata key {key!r}: map it in the provider's "
                        f"fields ({key}: field2..field10)",
                    )
                )
    options = ticket.get("options")
    options = options if isinstance(options, Mapping) else {}
    for key in unknown_options(options):
        found.append(
            (("ticket", "options", key), f"has no option {key!r} (known: {', '.join(OPTIONS)})")
        )
    protocol: Any = options.get("protocol") or settings.protocol
    if not isinstance(protocol, str) or "{{" in protocol or is_file_reference(protocol):
        protocol = None  # decided per event
    elif protocol not in PROTOCOLS:
        found.append(
            (
                ("ticket", "options", "protocol"),
                f"has no protocol {protocol!r} (one of: {', '.join(PROTOCOLS)})",
            )
        )
        protocol = None
    creates = rule.action is ActionKind.CREATE_TICKET or rule.on_missing is OnMissing.CREATE
    if protocol is not None and creates:
        contact = ticket.get("contact")
        key = contact_key(protocol)
        if not (isinstance(contact, Mapping) and key in contact):
            found.append(
                (
                    ("ticket", "contact"),
                    f"needs contact.{key} to create a {protocol} ticket (the participant)",
                )
            )
    if rule.action is ActionKind.ADD_NOTE and "message" not in ticket:
        found.append((("ticket",), "needs a message to add_note (the note's text)"))
    return found


def _problem(problems: list[Problem], config: Config, path: DocPath, message: str) -> None:
    at = config.locate(path)
    problems.append(Problem(file=at.file, line=at.line, path=at.path, message=message))

"""What `check` finds wrong in an `awalchat` provider and in the rules that use it, beyond what
its Capabilities already refuse (actions, ticket fields, message directions): settings left
empty, and rules that give the adapter no way to find or start a conversation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bridge.config import Config, ProviderConfig, RuleConfig
from bridge.config.model import DocPath
from bridge.exceptions import Problem
from bridge.tickets import ActionKind

REQUIRED = ("client_id", "domain", "hmac_secret", "phone_number_id")


def settings_problems(p: ProviderConfig, config: Config) -> list[Problem]:
    problems = []
    for key in REQUIRED:
        if not str(p.settings.get(key, "") or "").strip():
            at = config.locate(("providers", p.name, key))
            problems.append(
                Problem(file=at.file, line=at.line, path=at.path, message=f"{key} is empty")
            )
    return problems


def rule_problems(p: ProviderConfig, config: Config) -> list[Problem]:
    problems = []
    for rule in config.rules:
        if rule.provider != p.name:
            continue
        for path, lack in _lacks(rule):
            at = config.locate(rule.doc_path + path)
            message = f"provider {p.name!r} (awalchat) {lack}"
            problems.append(Problem(file=at.file, line=at.line, path=at.path, message=message))
    return problems


def _lacks(rule: RuleConfig) -> Iterator[tuple[DocPath, str]]:
    ticket = rule.ticket
    contact: Mapping[str, Any] = (
        ticket["contact"] if isinstance(ticket.get("contact"), Mapping) else {}
    )
    if "identifier" in contact:
        yield (
            ("ticket", "contact", "identifier"),
            "has no contact identifier (conversations are found by contact.phone)",
        )
    has_phone = "phone" in contact
    if rule.action is ActionKind.CREATE_TICKET and not has_phone:
        yield (
            ("ticket",),
            "needs ticket.contact.phone to create a ticket (conversations are by phone)",
        )
    elif rule.action is not ActionKind.CREATE_TICKET and not (has_phone or "correlate" in ticket):
        yield (
            ("ticket",),
            f"cannot find the conversation for {rule.action.value}: "
            "give ticket.contact.phone or ticket.correlate",
        )
    if rule.action is ActionKind.UPDATE_TICKET and "message" not in ticket:
        yield (
            ("ticket",),
            "can only update a ticket by sending a message, and the rule has no ticket.message",
        )

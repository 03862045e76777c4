"""The settings of a cloudchat / chatwoot provider, read at load, and the load-time checks of
the rules that use one (what the API needs that a rule does not give is a `check` error)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.config import Config, ProviderConfig
from bridge.config.model import DocPath
from bridge.exceptions import Problem
from bridge.tickets import ActionKind, OnMissing

#: `ticket.options` a rule may give: sent in the create body, or as an assignment afterwards
OPTIONS = ("assignee_id", "team_id")


class Flavour(enum.StrEnum):
    CLOUDCHAT = "cloudchat"  # create with contact_identifier / contact_email / contact_phone_number
    CHATWOOT = "chatwoot"  # search or create the contact, then create with its source_id


class AttributeMerge(enum.StrEnum):
    CLIENT = "client"  # read the conversation, merge, write the whole hash (any version)
    SERVER = "server"  # send merge: true (newer Chatwoot keeps the keys not sent)


@dataclass(frozen=True, kw_only=True)
class ChatwootSettings:
    flavour: Flavour
    base_url: str
    account_id: str
    inbox_id: int
    api_access_token: str
    custom_attributes_merge: AttributeMerge = AttributeMerge.CLIENT
    subject_attribute: str = "subject"
    lookup_before_create: bool = True


def _problem(config: Config, at: DocPath, message: str) -> Problem:
    loc = config.locate(at)
    return Problem(file=loc.file, line=loc.line, path=loc.path, message=message)


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    text = str(value).strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def read_settings(p: ProviderConfig, config: Config, problems: list[Problem]) -> ChatwootSettings:
    """The provider's settings; a problem for each mistake (the load then stops, but the
    settings are still usable, so the rules' capability checks run too)."""
    at: DocPath = ("providers", p.name)
    settings: Mapping[str, Any] = p.settings
    base_url = p.base_url or (f"https://{settings['domain']}" if settings.get("domain") else "")
    if not base_url:
        problems.append(_problem(config, at, "give base_url (https://your-domain) or domain"))
    numbers = {}
    for key in ("account_id", "inbox_id"):
        numbers[key] = _positive_int(settings.get(key))
        if numbers[key] is None:
            problems.append(_problem(config, at + (key,), f"{key} must be a positive integer"))
    token = settings.get("api_access_token")
    if not isinstance(token, str) or not token:
        problems.append(
            _problem(config, at + ("api_access_token",), "api_access_token is required")
        )
    merge = settings.get("custom_attributes_merge", AttributeMerge.CLIENT.value)
    if merge not in {m.value for m in AttributeMerge}:
        message = f"custom_attributes_merge must be one of: {', '.join(AttributeMerge)}"
        problems.append(_problem(config, at + ("custom_attributes_merge",), message))
        merge = AttributeMerge.CLIENT.value
    problems.extend(rule_problems(p, config))
    return ChatwootSettings(
        flavour=Flavour(p.type),
        base_url=base_url,
        account_id=str(numbers["account_id"] or 0),
        inbox_id=numbers["inbox_id"] or 0,
        api_access_token=str(token or ""),
        custom_attributes_merge=AttributeMerge(merge),
        subject_attribute=str(settings.get("subject_attribute", "subject")),
        lookup_before_create=bool(settings.get("lookup_before_create", True)),
    )


def rule_problems(p: ProviderConfig, config: Config) -> list[Problem]:
    """What the rules sending to `p` ask that its API cannot take: unknown `options`, and a
    create (or on_missing: create) with no contact field the create call can use."""
    found = []
    usable: tuple[str, ...] = ("identifier", "email", "phone")
    if p.type == Flavour.CHATWOOT:
        usable += ("name",)
    for rule in config.rules:
        if rule.provider != p.name:
            continue
        at = rule.doc_path + ("ticket",)
        options = rule.ticket.get("options")
        if isinstance(options, Mapping):
            for key in options:
                if key not in OPTIONS:
                    message = f"{p.type} has no option {key!r} (it has: {', '.join(OPTIONS)})"
                    found.append(_problem(config, at + ("options", str(key)), message))
        creates = rule.action is ActionKind.CREATE_TICKET or rule.on_missing is OnMissing.CREATE
        contact = rule.ticket.get("contact")
        given = contact if isinstance(contact, Mapping) else {}
        if creates and not any(key in given for key in usable):
            where = at + ("contact",) if "contact" in rule.ticket else at
            fields = ", ".join(f"contact.{key}" for key in usable)
            message = f"{p.type} creates a conversation for a contact: give one of {fields}"
            found.append(_problem(config, where, message))
    return found

"""The `vambe` provider's settings, and the load-time checks of the rules that use it.

Everything a Vambe delivery could only find out by failing is checked here, at load: a rule
that may open a ticket needs a stage (the provider's `stage_id` or its own `options.stage_id`)
and a phone; an outgoing message can only be sent when a ticket is opened; `options` holds
only the keys the adapter knows (STYLE habit 7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.config import Config, ProviderConfig, RuleConfig
from bridge.config.model import DocPath
from bridge.exceptions import Problem
from bridge.rendering.actions import written_direction
from bridge.tickets import ActionKind, Direction, OnMissing

DEFAULT_BASE_URL = "https://api.vambe.me"
CHANNELS = ("web-whatsapp", "whatsapp")  # QR-connected number | official WhatsApp Business API
DEFAULT_MESSAGE_FIELD = "message"
#: what a rule may put under `ticket.options` for a vambe provider
OPTIONS = ("stage_id", "template_id", "allow_closed_ticket")


@dataclass(frozen=True, kw_only=True)
class VambeSettings:
    api_key: str
    channel: str  # one of CHANNELS: the path segment of the create call
    phone_id: str  # the connected number's id in Vambe (string for QR, numeric for the API)
    stage_id: str | None  # the pipeline stage new tickets start in; a rule may override it
    message_field: str = DEFAULT_MESSAGE_FIELD  # ticket_metadata key of an incoming message
    allow_closed_ticket: bool = False  # metadata updates may fall back to the last closed ticket
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0


def parse_settings(p: ProviderConfig, config: Config, problems: list[Problem]) -> VambeSettings:
    """The provider's settings; a problem (never an exception) for each one that is wrong."""
    raw: Mapping[str, Any] = p.settings

    def problem(key: str, message: str) -> None:
        at = config.locate(("providers", p.name, key))
        problems.append(Problem(file=at.file, line=at.line, path=at.path, message=message))

    api_key = _text(raw.get("api_key"))
    if api_key is None:
        problem("api_key", "api_key is required (Vambe dashboard: Developers -> API keys)")
    channel = _text(raw.get("channel")) or CHANNELS[0]
    if channel not in CHANNELS:
        problem("channel", f"channel must be one of: {', '.join(CHANNELS)}")
    phone_id = _text(raw.get("phone_id"))
    if phone_id is None:
        problem("phone_id", "phone_id is required (the id of the connected WhatsApp number)")
    message_field = _text(raw.get("message_field")) or DEFAULT_MESSAGE_FIELD
    allow_closed = raw.get("allow_closed_ticket", False)
    if not isinstance(allow_closed, bool):
        problem("allow_closed_ticket", "allow_closed_ticket must be true or false")
        allow_closed = False
    return VambeSettings(
        api_key=api_key or "",
        channel=channel,
        phone_id=phone_id or "",
        stage_id=_text(raw.get("stage_id")),
        message_field=message_field,
        allow_closed_ticket=allow_closed,
        base_url=(p.base_url or DEFAULT_BASE_URL).rstrip("/"),
        timeout=p.timeout,
    )


def check_rules(p: ProviderConfig, settings: VambeSettings, config: Config) -> list[Problem]:
    """A problem for each rule on this provider that could only fail at delivery."""
    found: list[Problem] = []
    for rule in config.rules:
        if rule.provider != p.name:
            continue
        for path, message in _rule_mistakes(rule, settings):
            at = config.locate(rule.doc_path + path)
            message = f"provider {p.name!r} (vambe) {message}"
            found.append(Problem(file=at.file, line=at.line, path=at.path, message=message))
    return found


def _rule_mistakes(rule: RuleConfig, settings: VambeSettings) -> list[tuple[DocPath, str]]:
    ticket = rule.ticket
    options = ticket.get("options")
    options = options if isinstance(options, Mapping) else {}
    contact = ticket.get("contact")
    contact = contact if isinstance(contact, Mapping) else {}
    opens = rule.action is ActionKind.CREATE_TICKET or (
        rule.on_missing is OnMissing.CREATE and rule.action is not ActionKind.REOPEN_TICKET
    )
    mistakes: list[tuple[DocPath, str]] = []
    for key in options:
        if key not in OPTIONS:
            mistakes.append(
                (("ticket", "options", key), f"has no option {key!r} ({', '.join(OPTIONS)})")
            )
    if opens or rule.action is ActionKind.REOPEN_TICKET:
        if settings.stage_id is None and "stage_id" not in options:
            mistakes.append(
                (
                    ("action",),
                    "opens tickets in a pipeline stage: set stage_id on the provider or "
                    "options.stage_id on this rule (`ticketbridge vambe-stages` lists them)",
                )
            )
        if opens and "phone" not in contact:
            mistakes.append(
                (
                    ("ticket", "contact"),
                    "opens tickets by phone number: ticket.contact.phone is required",
                )
            )
    direction = written_direction(ticket.get("message"))
    if direction is Direction.OUTGOING and rule.action in (
        ActionKind.UPDATE_TICKET,
        ActionKind.CLOSE_TICKET,
    ):
        mistakes.append(
            (
                ("ticket", "message"),
                "sends an outgoing message only when it opens a ticket "
                "(create_ticket, reopen_ticket); use direction incoming to store it on the ticket",
            )
        )
    if "template_id" in options and direction is Direction.OUTGOING:
        mistakes.append(
            (
                ("ticket", "options", "template_id"),
                "sends either a template or an outgoing message text, not both",
            )
        )
    return mistakes


def _text(value: Any) -> str | None:
    text = "" if value is None or isinstance(value, bool) else str(value).strip()
    return text or None

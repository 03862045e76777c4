"""The calls one neutral action makes on Glassix, in order (pure: no I/O).

The create (when there is no ticket yet) comes first and is made by the provider; these are
the calls on the ticket id that follow it, or that make the whole action on a known ticket:

    reopen_ticket   setstate Open (not after a create: a new ticket is open)
    update / all    setfields (field1, mapped metadata, details), addtags (not after a create:
                    tickets/create carried them)
    message         outgoing -> send; note, or any message of add_note -> addnote; incoming ->
                    the create's transactions, or addnote on a known ticket (the API cannot
                    write as the customer)
    close_ticket    setstate Closed, last (send only works while a ticket is open)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.providers.glassix.body import GlassixSettings, fields_body
from bridge.tickets import ActionKind, Direction, TicketAction


@dataclass(frozen=True, kw_only=True)
class Call:
    method: str
    path: str  # below base_url, e.g. tickets/setstate/13783
    json: Any = None
    params: dict[str, str] | None = None


def in_transactions(action: TicketAction) -> bool:
    """The message goes into tickets/create as the client's own transaction."""
    message = action.message
    return (
        message is not None
        and message.direction is Direction.INCOMING
        and action.action is not ActionKind.ADD_NOTE
    )


def calls_after(
    action: TicketAction, settings: GlassixSettings, *, created: bool
) -> Callable[[str], list[Call]]:
    """The calls that follow the create (or that make the action on a known ticket)."""
    kind = action.action
    fields = {} if created else fields_body(action, settings)
    message = action.message

    def calls(ticket_id: str) -> list[Call]:
        out: list[Call] = []
        if kind is ActionKind.REOPEN_TICKET and not created:
            out.append(_state(ticket_id, "Open"))
        if fields:
            out.append(Call(method="PUT", path=f"tickets/setfields/{ticket_id}", json=fields))
        if action.tags and not created:
            out.append(
                Call(method="POST", path=f"tickets/addtags/{ticket_id}", json=list(action.tags))
            )
        if message is not None and not (created and in_transactions(action)):
            outgoing = message.direction is Direction.OUTGOING and kind is not ActionKind.ADD_NOTE
            verb = "send" if outgoing else "addnote"
            out.append(
                Call(method="POST", path=f"tickets/{verb}/{ticket_id}", json={"text": message.text})
            )
        if kind is ActionKind.CLOSE_TICKET:
            out.append(_state(ticket_id, "Closed"))
        return out

    return calls


def _state(ticket_id: str, state: str) -> Call:
    return Call(
        method="PUT", path=f"tickets/setstate/{ticket_id}", json={}, params={"nextState": state}
    )


def open_after(kind: ActionKind, *, created: bool) -> bool | None:
    if kind is ActionKind.CLOSE_TICKET:
        return False
    if kind is ActionKind.REOPEN_TICKET or created:
        return True
    return None  # an update or a note leaves the ticket as it was

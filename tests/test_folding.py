"""Storm folding's pure parts: which step an event takes, and the note's text."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from bridge.config.model import Fold
from bridge.folding import Latest, Step, fields, joined, note, started, step
from bridge.tickets import ActionKind, Direction, Message, OnMissing, TicketAction

T0 = 1_700_000_000.0  # 22:13:20 UTC
FOLD = Fold(window=30, max=3)
CREATE = TicketAction(
    action=ActionKind.CREATE_TICKET, provider="desk", correlate="o-1", subject="A"
)


def latest(**changes: object) -> Latest:
    values: dict[str, object] = {
        "id": "dlv_1",
        "queued_unsent": True,
        "fold_until": T0 + 30,
        "folded": None,
        "action": CREATE,
    }
    values.update(changes)
    return Latest(**values)  # type: ignore[arg-type]


def test_the_step_an_event_takes() -> None:
    listed = {"base": {}, "events": [{}]}
    assert step(None, arrived=T0, fold=FOLD) is Step.OPEN
    assert step(latest(), arrived=T0 + 30, fold=FOLD) is Step.OPEN  # the window has closed
    assert step(latest(), arrived=T0 + 1, fold=FOLD) is Step.START_NOTE  # the first: a note
    assert step(latest(folded=listed), arrived=T0 + 1, fold=FOLD) is Step.JOIN
    sent = latest(folded=listed, queued_unsent=False)
    assert step(sent, arrived=T0 + 1, fold=FOLD) is Step.START_NOTE
    full = latest(folded={"base": {}, "events": [{}] * 3})
    assert step(full, arrived=T0 + 1, fold=FOLD) is Step.START_NOTE


def test_a_note_lists_each_event_with_what_changed_since_the_one_before() -> None:
    second = replace(CREATE, subject="B", message=Message(text="Paid\n twice"))
    third = replace(CREATE, subject="B", metadata={"status": "refunded"})
    folded = started(latest(), second, event_id="evt_2", arrived=T0 + 1)
    folded = joined(folded, third, event_id="evt_3", arrived=T0 + 4)
    folded = joined(folded, third, event_id="evt_4", arrived=T0 + 5)

    action = note(folded, third)

    assert action.action is ActionKind.ADD_NOTE and action.correlate == "o-1"
    assert action.on_missing is OnMissing.CREATE  # the rule creates: a missing ticket is made
    assert action.message == Message(
        text="3 more events for this ticket, folded into one note, "
        "from 22:13:21 to 22:13:25 UTC:\n"
        "- 22:13:21 evt_2: subject: 'A' -> 'B'; message: 'Paid twice'\n"
        "- 22:13:24 evt_3: message: removed; metadata.status: 'refunded'\n"
        "- 22:13:25 evt_4: nothing changed",
        direction=Direction.NOTE,
    )


@given(text=st.text(max_size=1000).filter(lambda text: text != "A"))
def test_a_changed_value_is_shown_on_one_line_and_at_most_200_characters(text: str) -> None:
    folded = started(latest(), replace(CREATE, subject=text), event_id="evt_2", arrived=T0)
    message = note(folded, CREATE).message
    assert message is not None
    (line,) = message.text.split("\n")[1:]
    assert line.startswith("- 22:13:20 evt_2: subject: 'A' -> '")
    assert len(line) <= len("- 22:13:20 evt_2: subject: 'A' -> ") + 200 + 2
    assert fields(replace(CREATE, subject=text))["subject"] == text

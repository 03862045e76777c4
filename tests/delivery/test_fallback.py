"""When a delivery goes to its provider's fallback: the pure decisions of fallback.py."""

from __future__ import annotations

import dataclasses
import os

import pytest

from bridge.config import load_config
from bridge.delivery.fallback import fallback_for, held_fallback
from bridge.records import AttemptResult, DeliveryStatus, HoldState, ProviderHold
from tests.delivery.test_attempts import NOW, claim
from tests.helpers import write_tree

CONFIG = """
    providers:
      desk: {type: log, fallback: spare, fallback_after: 10m}
      spare: {type: log}
    sources:
      shop: {verify: {type: none}}
    rules:
      - {name: order, source: shop, action: create_ticket, provider: desk, ticket: {subject: x}}
"""


@pytest.fixture
def config(tmp_path):
    root = write_tree(tmp_path, {"rules/main.yaml": CONFIG})
    (root / "templates").mkdir()
    return load_config(root / "rules", root / "templates", os.environ)


def result(status: DeliveryStatus, error: str = "HTTP 503") -> AttemptResult:
    return AttemptResult(attempt=None, status=status, last_error=error)  # type: ignore[arg-type]


def test_a_dead_delivery_falls_back_saying_why(config):
    found = fallback_for(claim(), result(DeliveryStatus.DEAD, "HTTP 422"), config, NOW)
    assert found is not None
    assert (found.to, found.why) == ("spare", "desk did not take it: HTTP 422")


@pytest.mark.parametrize(
    ("tries", "waited", "falls_back"),
    [(0, 3600, False), (2, 599, False), (2, 600, True)],
)
def test_a_retry_falls_back_once_it_has_failed_for_fallback_after(
    config, tries, waited, falls_back
):
    found = fallback_for(claim(tries=tries), result(DeliveryStatus.PENDING), config, NOW + waited)
    assert (found is not None) is falls_back
    if found:
        assert found.why == "desk has failed for 10m: HTTP 503"


def test_no_fallback_for_a_moved_delivery_a_success_or_a_provider_without_one(config):
    moved = claim()
    moved = dataclasses.replace(moved, delivery=dataclasses.replace(moved.delivery, moved_from="d"))
    dead = result(DeliveryStatus.DEAD)
    assert fallback_for(moved, dead, config, NOW) is None
    assert fallback_for(claim(), result(DeliveryStatus.DONE), config, NOW) is None
    assert fallback_for(claim(provider="spare"), dead, config, NOW) is None


def test_a_provider_held_for_fallback_after_falls_back(config):
    pause = ProviderHold(
        provider="desk", state=HoldState.PAUSED, since=NOW, until=NOW + 900, reason="HTTP 401"
    )
    assert held_fallback(pause, config.providers, NOW + 599) is None
    found = held_fallback(pause, config.providers, NOW + 600)
    assert found is not None and found.to == "spare"
    assert found.why == "desk has been paused since 2023-11-14T22:13:20.000Z: HTTP 401"
    assert held_fallback(pause, config.providers, NOW + 900) is None  # the hold is over

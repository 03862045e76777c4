"""The providers' answer classification (bridge.providers.base.classify_response): what every
adapter calls on the helpdesk's answer. Each round classifies a response made afresh (untimed),
as an adapter gets one: httpx caches a response's decoded text, which a reused one would skip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.micro.rounds import timed_rounds
from bridge.providers.base import Outcome, OutcomeKind, classify_response

ROUNDS = 2_000

ANSWERS: dict[str, Callable[[], httpx.Response]] = {
    "201": lambda: httpx.Response(
        201, json={"id": "T-10432", "status": "open", "url": "https://desk.example/t/10432"}
    ),
    "429 Retry-After": lambda: httpx.Response(
        429,
        headers={"Retry-After": "7"},
        json={"error": "rate_limited", "message": "Too many requests, slow down"},
    ),
    "500": lambda: httpx.Response(
        500,
        headers={"Content-Type": "text/html; charset=utf-8"},
        text="<html><body><h1>500 Internal Server Error</h1></body></html>",
    ),
}


def expected(name: str, outcome: Outcome) -> None:
    if name == "201":
        assert outcome.kind is OutcomeKind.SUCCESS and outcome.status_code == 201
        assert outcome.response_excerpt is not None and "T-10432" in outcome.response_excerpt
    elif name == "429 Retry-After":
        assert outcome.kind is OutcomeKind.RETRYABLE and outcome.retry_after == 7.0
        assert outcome.message == "HTTP 429: Too many requests, slow down"
    else:
        assert outcome.kind is OutcomeKind.RETRYABLE and outcome.retry_after is None
        assert outcome.message.startswith("HTTP 500: <html>")


@pytest.mark.parametrize("answer", list(ANSWERS))
def test_classify_response(benchmark: BenchmarkFixture, answer: str) -> None:
    make = ANSWERS[answer]
    now = time.time()

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (make(),), {"now": now}

    outcome = timed_rounds(
        benchmark, classify_response, setup=fresh, rounds=ROUNDS, warmup_rounds=100
    )
    expected(answer, outcome)

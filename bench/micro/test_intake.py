"""The receiver's pure step: raw request bytes and headers -> a verified, parsed event.

CompiledSource.intake is what bridge.receiver.Receiver calls between reading the body and
storing the events: the github preset's HMAC-SHA256 over the 2,159-byte body, the JSON parse,
the redaction of the signature header, the dedupe key (X-GitHub-Delivery). The verifier is
also timed alone, so that the HMAC's share of intake shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.micro.workload import Product
from bench.payload import EVENT_TYPE, SOURCE
from bridge.exceptions import RejectedRequest
from bridge.ids import new_id
from bridge.redaction import REDACTED
from bridge.sources.intake import Intake


def test_intake(benchmark: BenchmarkFixture, product: Callable[[int], Product]) -> None:
    source = product(10).source
    request = product(10).signed.request("bench-delivery-intake")
    now = time.time()
    intake: Intake = benchmark(source.intake, request, now=now, new_id=partial(new_id, "evt"))

    (event,) = intake.events
    assert event.source == SOURCE and event.received_at == now
    assert event.raw == request.body
    assert json.loads(event.payload)["type"] == EVENT_TYPE
    assert event.dedupe_key == "bench-delivery-intake"
    assert event.headers["x-hub-signature-256"] == REDACTED
    forged = replace(request, body=request.body.replace(b"129900", b"129901", 1))
    with pytest.raises(RejectedRequest) as rejected:
        source.intake(forged, now=now, new_id=partial(new_id, "evt"))
    assert rejected.value.status == 401


def test_verify(benchmark: BenchmarkFixture, product: Callable[[int], Product]) -> None:
    verifier = product(10).source.verifier
    request = product(10).signed.request("bench-delivery-verify")
    now = time.time()
    benchmark(verifier.verify, request, now=now)  # returns None or raises

    forged = replace(request, body=request.body[:-1] + b" ")
    with pytest.raises(RejectedRequest):
        verifier.verify(forged, now=now)

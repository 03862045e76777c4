import email.utils

import httpx
import pytest

from bridge.providers.base import (
    OutcomeKind,
    classify_response,
    classify_transport_error,
    parse_retry_after,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OutcomeKind.SUCCESS),
        (201, OutcomeKind.SUCCESS),
        (204, OutcomeKind.SUCCESS),
        (400, OutcomeKind.PERMANENT),
        (404, OutcomeKind.PERMANENT),
        (422, OutcomeKind.PERMANENT),
        (401, OutcomeKind.UNAUTHORIZED),
        (403, OutcomeKind.UNAUTHORIZED),
        (408, OutcomeKind.RETRYABLE),
        (425, OutcomeKind.RETRYABLE),
        (429, OutcomeKind.RETRYABLE),
        (500, OutcomeKind.RETRYABLE),
        (502, OutcomeKind.RETRYABLE),
        (503, OutcomeKind.RETRYABLE),
    ],
)
def test_status_classes(status, kind):
    assert classify_response(httpx.Response(status, json={}), now=NOW).kind is kind


def test_provider_message_is_kept():
    outcome = classify_response(httpx.Response(422, json={"message": "phone is invalid"}), now=NOW)
    assert outcome.message == "HTTP 422: phone is invalid"
    assert outcome.status_code == 422


def test_retry_after_seconds_and_http_date():
    assert (
        classify_response(httpx.Response(429, headers={"Retry-After": "7"}), now=NOW).retry_after
        == 7
    )
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(date, now=NOW) == pytest.approx(30)
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(email.utils.formatdate(NOW - 30, usegmt=True), now=NOW) == 0


def test_transport_errors():
    request = httpx.Request("POST", "http://127.0.0.1:1/")
    assert (
        classify_transport_error(httpx.ConnectError("refused", request=request)).kind
        is OutcomeKind.RETRYABLE
    )
    assert (
        classify_transport_error(httpx.ReadTimeout("slow", request=request)).kind
        is OutcomeKind.RETRYABLE
    )
    assert (
        classify_transport_error(httpx.UnsupportedProtocol("ftp", request=request)).kind
        is OutcomeKind.PERMANENT
    )

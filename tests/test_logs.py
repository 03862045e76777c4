import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from bridge.logs import JsonFormatter, mask


@given(st.permutations(["Bearer abc-123", "abc-123", "token=abc-123&x"]))
def test_mask_replaces_the_longest_secret_whole_in_any_order(secrets):
    text = "sent Bearer abc-123 and token=abc-123&x and abc-123"
    assert mask(text, secrets) == "sent [redacted] and [redacted] and [redacted]"


def test_json_lines_carry_extra_fields_and_never_a_secret():
    formatter = JsonFormatter(secrets=["s3cr3t-value"])
    record = logging.LogRecord("bridge.worker", logging.INFO, __file__, 1, "attempt", None, None)
    record.action = "attempt"
    record.delivery_id = "dlv_1"
    record.error = "HTTP 401: key s3cr3t-value rejected"
    line = json.loads(formatter.format(record))
    assert line["action"] == "attempt" and line["delivery_id"] == "dlv_1"
    assert line["level"] == "info" and line["msg"] == "attempt"
    assert line["error"] == "HTTP 401: key [redacted] rejected"

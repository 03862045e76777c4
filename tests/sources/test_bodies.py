import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.exceptions import RejectedRequest
from bridge.sources.bodies import body_mode, parse_body, parse_json


def rejected(call, *args, **kwargs):
    with pytest.raises(RejectedRequest) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("content_type", "mode"),
    [
        (None, "json"),
        ("application/json", "json"),
        ("application/json; charset=utf-8", "json"),
        ("application/vnd.api+json", "json"),
        ("application/x-www-form-urlencoded", "form"),
        ("multipart/form-data; boundary=x", "multipart"),
    ],
)
def test_mode_follows_content_type(content_type, mode):
    assert body_mode(None, content_type) == mode


def test_configured_mode_wins_and_unknown_type_is_415():
    assert body_mode("form", "application/json") == "form"
    error = rejected(body_mode, None, "text/csv")
    assert error.status == 415 and "text/csv" in error.detail


def test_json_errors_are_400_with_a_reason():
    assert rejected(parse_json, b"{nope", max_depth=64).error == "invalid_json"
    assert rejected(parse_json, b"", max_depth=64).detail == "body is empty"
    assert rejected(parse_json, b'{"a": NaN}', max_depth=64).error == "invalid_json"
    assert rejected(parse_json, b'{"a": "\xff"}', max_depth=64).error == "invalid_utf8"
    assert rejected(parse_json, b"1" * 5000, max_depth=64).error == "invalid_json"  # int too long


def test_depth_limit_holds_without_recursing():
    assert parse_json(b"[" * 64 + b"]" * 64, max_depth=64) == parse_json(
        b"[" * 64 + b"]" * 64, max_depth=64
    )
    assert rejected(parse_json, b"[" * 65 + b"]" * 65, max_depth=64).error == "too_deep"
    huge = b"[" * 200_000 + b"]" * 200_000
    assert rejected(parse_json, huge, max_depth=64).error == "too_deep"
    # brackets inside strings do not count
    assert parse_json(json.dumps({"a": "[" * 100}).encode(), max_depth=64) == {"a": "[" * 100}


def test_form_keeps_repeated_keys_and_blank_values():
    assert parse_body(b"a=1&b=&a=2&c=%C3%A9", mode="form", content_type=None, max_depth=64) == {
        "a": ["1", "2"],
        "b": "",
        "c": "é",
    }
    assert (
        rejected(parse_body, b"a=%ff", mode="form", content_type=None, max_depth=64).error
        == "invalid_utf8"
    )


MULTIPART = (
    b"--BOUND\r\n"
    b'Content-Disposition: form-data; name="name"\r\n\r\n'
    b"Jo\xc3\xa3o\r\n"
    b"--BOUND\r\n"
    b'Content-Disposition: form-data; name="rawRequest"\r\n\r\n'
    b'{"q3": "hello"}\r\n'
    b"--BOUND\r\n"
    b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\n"
    b"contents\r\n"
    b"--BOUND--\r\n"
)


def test_multipart_fields_and_files():
    body = parse_body(
        MULTIPART,
        mode="multipart",
        content_type="multipart/form-data; boundary=BOUND",
        max_depth=64,
    )
    assert body == {
        "name": "João",
        "rawRequest": '{"q3": "hello"}',
        "file": {"filename": "a.txt", "content_type": "text/plain", "size": 8},
    }


def test_json_field_modes():
    ct = "multipart/form-data; boundary=BOUND"
    assert parse_body(
        MULTIPART, mode="multipart_json_field:rawRequest", content_type=ct, max_depth=64
    ) == {"q3": "hello"}
    form = b"payload=%7B%22action%22%3A%22opened%22%7D"
    assert parse_body(form, mode="form_json_field:payload", content_type=None, max_depth=64) == {
        "action": "opened"
    }
    assert (
        rejected(
            parse_body, b"x=1", mode="form_json_field:payload", content_type=None, max_depth=64
        ).error
        == "missing_field"
    )


def test_multipart_without_boundary_is_400():
    error = rejected(
        parse_body, b"x", mode="multipart", content_type="multipart/form-data", max_depth=64
    )
    assert error.status == 400 and "boundary" in error.detail


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_valid_json_round_trips(value):
    assert parse_json(json.dumps(value).encode(), max_depth=64) == value


@given(st.binary(max_size=300), st.sampled_from(["json", "form", "multipart"]))
def test_parsers_reject_garbage_with_a_4xx_only(raw, mode):
    try:
        parse_body(raw, mode=mode, content_type="multipart/form-data; boundary=B", max_depth=64)
    except RejectedRequest as exc:
        assert 400 <= exc.status < 500 and exc.error

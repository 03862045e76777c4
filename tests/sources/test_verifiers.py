import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.exceptions import RejectedRequest
from bridge.sources.registry import build_verifier
from bridge.sources.request import RawRequest
from bridge.sources.verifiers import BasicVerifier, TokenVerifier


def request(headers=None, query=(), body=b"{}"):
    return RawRequest(
        method="POST", url="http://x/hooks/a", headers=headers or {}, query=tuple(query), body=body
    )


def reason(verifier, req):
    with pytest.raises(RejectedRequest) as caught:
        verifier.verify(req, now=0)
    assert caught.value.status == 401
    assert caught.value.error == "signature_invalid"
    return caught.value.detail


def test_token_in_header_accepts_any_configured_value():
    verifier = TokenVerifier(location="header:X-Form-Token", values=("old-token", "new-token"))
    verifier.verify(request({"x-form-token": "new-token"}), now=0)
    verifier.verify(request({"x-form-token": "old-token"}), now=0)
    assert reason(verifier, request({"x-form-token": "wrong"})) == "token did not match"
    assert reason(verifier, request()) == "missing header x-form-token"
    assert verifier.secret_headers == {"x-form-token"}


def test_token_in_query():
    verifier = TokenVerifier(location="query:token", values=("s3cret-value",))
    verifier.verify(request(query=[("token", "s3cret-value")]), now=0)
    assert reason(verifier, request(query=[("token", "nope")])) == "token did not match"
    assert reason(verifier, request()) == "missing query parameter token"
    assert verifier.secret_query == {"token"}


def test_failure_detail_never_contains_the_secret():
    verifier = TokenVerifier(location="header:X-T", values=("very-secret-token",))
    detail = reason(verifier, request({"x-t": "very-secret-tokeX"}))
    assert "very-secret" not in detail


def test_verifier_without_values_is_refused():
    with pytest.raises(ValueError, match="never accept everything"):
        build_verifier({"type": "token", "location": "header:X", "values": ["", None]})
    with pytest.raises(ValueError, match="never accept everything"):
        build_verifier({"type": "basic", "username": "u", "passwords": []})


def test_unknown_type_and_preset_are_config_errors():
    with pytest.raises(ValueError, match="type 'magic'"):
        build_verifier({"type": "magic"})
    with pytest.raises(ValueError, match="unknown preset 'strype'; use one of: calendly, "):
        build_verifier({"preset": "strype", "secrets": ["x"]})


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth():
    verifier = BasicVerifier(username="hookuser", passwords=("pw-one", "pw-two"))
    verifier.verify(request({"authorization": basic("hookuser", "pw-two")}), now=0)
    assert (
        reason(verifier, request({"authorization": basic("hookuser", "bad")}))
        == "credentials did not match"
    )
    assert (
        reason(verifier, request({"authorization": basic("other", "pw-one")}))
        == "credentials did not match"
    )
    assert reason(verifier, request()) == "missing header authorization"
    assert "not base64" in reason(verifier, request({"authorization": "Basic ***"}))
    assert "expected Basic" in reason(verifier, request({"authorization": "Bearer x"}))


def test_none_accepts_everything_when_explicit():
    build_verifier({"type": "none"}).verify(request(), now=0)


@given(
    headers=st.dictionaries(
        st.text(min_size=1, max_size=20).map(str.lower), st.text(max_size=60), max_size=5
    ),
    query=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=30)), max_size=5),
    body=st.binary(max_size=200),
)
def test_verifiers_never_raise_anything_but_a_rejection(headers, query, body):
    req = request(headers, query, body)
    verifiers = [
        TokenVerifier(location="header:authorization", values=("t0ken",)),
        TokenVerifier(location="query:token", values=("t0ken",)),
        BasicVerifier(username="u", passwords=("p",)),
    ]
    for verifier in verifiers:
        try:
            verifier.verify(req, now=0)
        except RejectedRequest as exc:
            assert exc.status == 401 and exc.detail

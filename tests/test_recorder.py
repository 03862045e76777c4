"""The dry run's recorder: each request with the answer it got, marked stubbed or real, and
no credential in what it shows (headers, credential-like keys, echoes in an answer)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from bridge.providers.base import Provider
from bridge.recorder import Recorder, answer_json
from bridge.redaction import redact_json

TOKEN = "tok-0123456789abcdef"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _request() -> httpx.Request:
    return httpx.Request(
        "POST", "http://127.0.0.1:9/x", headers={"Authorization": f"Bearer {TOKEN}"}
    )


@given(json_values, st.text(max_size=5), st.text(max_size=5))
def test_an_echoed_credential_never_shows_in_an_answer(value: Any, before: str, after: str):
    echoed = {"data": value, "said": f"{before}{TOKEN}{after}", "list": [TOKEN, value]}
    response = httpx.Response(200, json=echoed)
    shown = answer_json(_request(), response, send=True, failure=None)
    assert TOKEN not in json.dumps(shown)
    assert shown["stubbed"] is False and shown["status"] == 200


@given(st.sampled_from(["access_token", "apiSecret", "x-api-key", "Signature"]), json_values)
def test_values_under_credential_like_keys_are_redacted(key: str, other: Any):
    shown = redact_json(
        {key: "live-credential", "nested": [{key: "live-credential"}], "o": other}, []
    )
    assert "live-credential" not in json.dumps(shown)
    assert shown[key] == "[redacted]" and shown["o"] == redact_json(other, [])


def test_a_text_answer_is_an_excerpt_and_a_missing_one_says_why():
    response = httpx.Response(502, text="<html>" + "x" * 2000 + TOKEN)
    shown = answer_json(_request(), response, send=False, failure=None)
    assert shown["status"] == 502 and shown["stubbed"] is True
    assert len(shown["text"]) <= 501 and "json" not in shown
    assert answer_json(_request(), None, send=True, failure="ConnectError: refused") == {
        "error": "ConnectError: refused",
        "stubbed": False,
    }


class Echo(Provider):
    """A stub that answers how many requests this delivery sent before."""

    async def attempt(self, job: Any) -> Any:
        raise NotImplementedError

    def dry_run_answer(self, request: httpx.Request, *, earlier: Any = ()) -> httpx.Response:
        return httpx.Response(200, json={"earlier": [str(r.url) for r in earlier]})


def test_the_stub_sees_only_the_earlier_requests_of_the_same_delivery():
    recorder = Recorder()

    async def go() -> list[list[dict[str, Any]]]:
        deliveries = []
        async with recorder.client() as client:
            for name in ("a", "b"):
                recorder.begin(Echo(name=name))
                await client.get(f"http://127.0.0.1:9/{name}1")
                await client.get(f"http://127.0.0.1:9/{name}2")
                deliveries.append(recorder.delivery())
        return deliveries

    first, second = asyncio.run(go())
    assert [r["answer"]["json"]["earlier"] for r in second] == [[], ["http://127.0.0.1:9/b1"]]
    assert [r["url"] for r in first] == ["http://127.0.0.1:9/a1", "http://127.0.0.1:9/a2"]
    assert all(r["answer"]["stubbed"] for r in first + second)

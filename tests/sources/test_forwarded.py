"""The URL a sender called, through trusted proxies only."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.sources.forwarded import TrustedProxies, parse_network

INTERNAL = "http://10.0.0.5:8000/hooks/hubspot?x=1"
FORWARDED = {"x-forwarded-proto": "https", "x-forwarded-host": "hooks.example.com"}


def proxies(*networks):
    return TrustedProxies([parse_network(n) for n in networks])


def test_forwarded_headers_from_a_trusted_proxy_give_the_public_url():
    trusted = proxies("10.0.0.0/8")
    assert (
        trusted.external_url(INTERNAL, FORWARDED, "10.1.2.3")
        == "https://hooks.example.com/hooks/hubspot?x=1"
    )


def test_forwarded_headers_from_anyone_else_are_ignored():
    assert proxies("10.0.0.0/8").external_url(INTERNAL, FORWARDED, "192.0.2.9") == INTERNAL
    assert proxies().external_url(INTERNAL, FORWARDED, "10.1.2.3") == INTERNAL
    assert proxies("10.0.0.0/8").external_url(INTERNAL, FORWARDED, None) == INTERNAL
    assert proxies("10.0.0.0/8").external_url(INTERNAL, FORWARDED, "not-an-ip") == INTERNAL


def test_the_last_value_is_the_one_the_trusted_proxy_added():
    spoofed = {"x-forwarded-proto": "http, https", "x-forwarded-host": "evil.test, good.test"}
    url = proxies("127.0.0.1").external_url("http://127.0.0.1:8000/h", spoofed, "127.0.0.1")
    assert url == "https://good.test/h"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-forwarded-proto": "https"}, "https://10.0.0.5:8000/h"),
        ({"x-forwarded-proto": "https", "x-forwarded-port": "443"}, "https://10.0.0.5/h"),
        ({"x-forwarded-host": "a.test", "x-forwarded-port": "8443"}, "http://a.test:8443/h"),
        ({"x-forwarded-host": "a.test:9000", "x-forwarded-port": "80"}, "http://a.test/h"),
        ({"x-forwarded-proto": "gopher"}, "http://10.0.0.5:8000/h"),
        ({}, "http://10.0.0.5:8000/h"),
    ],
)
def test_proto_host_and_port(headers, expected):
    assert (
        proxies("fd00::/8", "10.0.0.5").external_url("http://10.0.0.5:8000/h", headers, "10.0.0.5")
        == expected
    )


def test_ipv6_peers_and_networks():
    assert proxies("fdaa::/16").trusts("fdaa:0:1::3")
    assert not proxies("fdaa::/16").trusts("fdab::1")


def test_bad_network_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="'10.0.0.300' is not an IP address or network"):
        parse_network("10.0.0.300")


@given(
    headers=st.dictionaries(
        st.sampled_from(["x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "host"]),
        st.text(max_size=30),
    ),
    peer=st.one_of(st.none(), st.text(max_size=20), st.just("127.0.0.1")),
)
def test_never_raises(headers, peer):
    url = proxies("127.0.0.1").external_url("http://127.0.0.1:8000/h?q=1", headers, peer)
    assert isinstance(url, str)


def test_the_client_address_is_the_trusted_proxys_last_forwarded_for_else_the_peer():
    proxies = TrustedProxies([parse_network("10.0.0.0/8")])
    forwarded = {"x-forwarded-for": "198.51.100.1, 203.0.113.9"}
    assert proxies.client_address(forwarded, "10.1.2.3") == "203.0.113.9"
    assert proxies.client_address(forwarded, "192.0.2.4") == "192.0.2.4"  # not a proxy of ours
    assert proxies.client_address({}, "10.1.2.3") == "10.1.2.3"
    assert proxies.client_address({}, None) == "unknown"

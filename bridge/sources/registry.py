"""A source's `verify` mapping -> its Verifier (DESIGN §2.2); ValueError says what is wrong."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.sources.presets import expand
from bridge.sources.signatures import HmacVerifier
from bridge.sources.twilio import TwilioVerifier
from bridge.sources.verifiers import BasicVerifier, NoVerification, TokenVerifier, Verifier

_HMAC_KEYS = (
    "header",
    "secret_encoding",
    "algorithm",
    "format",
    "pair_sep",
    "kv_sep",
    "signature_keys",
    "timestamp_key",
    "timestamp_header",
    "prefix",
    "encoding",
    "message",
    "tolerance",
    "timestamp_unit",
    "public_url",
)


def _strings(settings: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = settings.get(key) or ()
    if isinstance(values, str):
        values = (values,)
    return tuple(str(v) for v in values if v not in (None, ""))


def _hmac(settings: Mapping[str, Any]) -> Verifier:
    options = {key: settings[key] for key in _HMAC_KEYS if key in settings}
    return HmacVerifier(secrets=_strings(settings, "secrets"), **options)


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Verifier]] = {
    "none": lambda s: NoVerification(),
    "token": lambda s: TokenVerifier(
        location=str(s.get("location", "")), values=_strings(s, "values")
    ),
    "basic": lambda s: BasicVerifier(
        username=str(s.get("username", "")), passwords=_strings(s, "passwords")
    ),
    "hmac": _hmac,
    "twilio": lambda s: TwilioVerifier(
        secrets=_strings(s, "secrets"), public_url=s.get("public_url")
    ),
}


def build_verifier(settings: Mapping[str, Any]) -> Verifier:
    """The verifier for a source's `verify` mapping, its preset (if any) filled in."""
    settings = expand(settings)
    kind = settings.get("type")
    builder = _BUILDERS.get(str(kind))
    if builder is None:
        raise ValueError(
            f"verification type {kind!r} is not available; use one of: {', '.join(_BUILDERS)}"
        )
    return builder(settings)

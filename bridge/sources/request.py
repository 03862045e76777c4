"""A webhook request as the sources package sees it: plain data, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RawRequest:
    method: str
    # as the sender called it (scheme://host/path?query); the receiver fills it in only for
    # a verifier that reads it (Verifier.reads_url), and leaves it empty otherwise
    url: str
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    query: tuple[tuple[str, str], ...]  # every pair, in order, repeats kept
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def query_value(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None

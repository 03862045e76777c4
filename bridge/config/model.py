"""The loaded configuration: frozen records, each knowing where in which file it was written.

Values here are already interpolated from the environment and validated against the schema
(config/schema.json) and the cross-references (a rule's source and provider exist, ...).
Conditions, `if` expressions and ticket templates are kept raw; routing and rendering compile
them (and report their own problems with these locations).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.config.quoting import show_value
from bridge.tickets import ActionKind, OnExisting, OnMissing

# A path into the merged configuration document: ("rules", 3, "ticket", "subject").
DocPath = tuple[str | int, ...]

MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Location:
    """Where something was written: file (relative to the working directory when possible),
    1-based line, and its YAML path inside that file (`rules[0].ticket.subject`)."""

    file: str
    line: int
    path: str


class Locations(Mapping[DocPath, Location]):
    """Where each merged-document path was written. A configuration of 10,000 rules has some
    150,000 paths and is asked for a few, so nothing is kept per path: each merged entry
    (`("rules", 37)`, `("providers", "desk")`) or section (`("rules",)`) names its file, its
    in-file path, and that file's lines (the YAML reader's path -> line map), and a Location is
    made only when asked for."""

    def __init__(self) -> None:
        # merged entry or section -> (file, in-file path, that file's lines)
        self._entries: dict[DocPath, tuple[str, DocPath, Mapping[DocPath, int]]] = {}

    def add(
        self, path: DocPath, *, file: str, written: DocPath, lines: Mapping[DocPath, int]
    ) -> None:
        """The entry or section `path` of the merged document is `written` in `file`, whose
        lines are `lines`; every path below an entry is found there."""
        self._entries[path] = (file, written, lines)

    def keep_entries_only(self) -> None:
        """Forget the lines of the paths below each entry (16 MB of the 53 that 10,000 rules
        keep): once the configuration is compiled nothing asks for them, and a path asked
        for later is placed at its entry's line, as `locate` falls back."""
        kept: dict[int, dict[DocPath, int]] = {}  # a file's lines -> its entries' lines
        for _, written, lines in self._entries.values():
            kept.setdefault(id(lines), {})[written] = lines.get(written, 1)
        self._entries = {
            path: (file, written, kept[id(lines)])
            for path, (file, written, lines) in self._entries.items()
        }

    def _place(self, path: DocPath) -> tuple[str, int, DocPath] | None:
        entry = self._entries.get(path[:2]) if len(path) > 1 else None
        if entry is None:
            if path not in self._entries:
                return None
            file, written, lines = self._entries[path]
            return file, lines.get(written, 1), written
        file, prefix, lines = entry
        written = prefix + path[2:]
        line = lines.get(written)
        return None if line is None else (file, line, written)

    def __getitem__(self, path: DocPath) -> Location:
        place = self._place(path)
        if place is None:
            raise KeyError(path)
        file, line, written = place
        return Location(file=file, line=line, path=format_path(written))

    def __contains__(self, path: object) -> bool:
        return isinstance(path, tuple) and self._place(path) is not None

    def __iter__(self) -> Iterator[DocPath]:
        for path, (_, prefix, lines) in self._entries.items():
            if len(path) < 2:
                yield path
                continue
            for written in lines:
                if written[: len(prefix)] == prefix:
                    yield path + written[len(prefix) :]

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """DESIGN §3.2 retry policy; durations in seconds."""

    max_attempts: int = 15
    base: float = 2.0
    factor: float = 2.0
    cap: float = 3600.0
    max_age: float = 48 * 3600.0
    retry_after_cap: float = 3600.0
    auth_pause: float = 15 * 60.0  # a 401/403 pauses the provider this long (or until resumed)


@dataclass(frozen=True, kw_only=True)
class CircuitBreakerPolicy:
    """After `failures` retryable failures in a row, start nothing for `cooldown` seconds."""

    failures: int = 5
    cooldown: float = 30.0


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    per_second: float
    burst: int


@dataclass(frozen=True, kw_only=True)
class Defaults:
    dedupe_window: float = 7 * 86400.0  # seconds
    max_depth: int = 64
    max_body: int = MIB  # bytes
    keep_bodies: float | None = None  # seconds; None keeps raw bodies until purge
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    circuit_breaker: CircuitBreakerPolicy = field(default_factory=CircuitBreakerPolicy)
    lease: float = 30.0  # a worker holds a claimed delivery this long, renewing while it runs
    shutdown_grace: float = 10.0  # on SIGTERM, in-flight deliveries get this long to finish
    body_timeout: float = 10.0  # a request's whole body must arrive within this (else 408)
    max_in_flight: int = 1000  # requests answered at once by one process (beyond them 503)
    trusted_proxies: tuple[str, ...] = ()  # addresses / networks whose X-Forwarded-* count


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    name: str
    path: str  # URL path, default /hooks/<name>
    verify: Mapping[str, Any]  # raw mapping: {"type": "token", ...} or {"preset": ...}
    dedupe_key: str | None = None  # a path (body.id) or a template when it contains "{{"
    max_body: int = MIB
    schema: Mapping[str, Any] | None = None  # the loaded JSON Schema document
    body: str | None = None  # json | form | multipart | form_json_field:X | multipart_json_field:X
    split: bool = False
    default_rule: str | None = None
    location: Location


@dataclass(frozen=True, kw_only=True)
class ProviderConfig:
    name: str
    type: str  # log | http | vambe | glassix | cloudchat | chatwoot | awalchat
    settings: Mapping[str, Any]  # every key of the provider's mapping, as written (interpolated)
    base_url: str | None = None
    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_limit: RateLimit | None = None
    concurrency: int = 4
    circuit_breaker: CircuitBreakerPolicy = field(default_factory=CircuitBreakerPolicy)
    # another provider that takes this one's deliveries when they cannot go (see fallback.py)
    fallback: str | None = None
    fallback_after: float = 600.0
    location: Location


@dataclass(frozen=True, kw_only=True)
class Fold:
    """Storm folding (a rule's `fold`): see bridge/folding.py."""

    window: float  # seconds after the first event's arrival
    max: int = 50  # events in one note


@dataclass(frozen=True, kw_only=True)
class RuleConfig:
    name: str
    sources: tuple[str, ...]  # empty: only usable as a source's default_rule
    when: Mapping[str, Any]  # raw condition mapping ({} always holds)
    if_expr: str | None
    action: ActionKind
    provider: str
    ticket: Mapping[str, Any]  # raw ticket mapping (strings are templates)
    continue_: bool = False
    on_existing: OnExisting = OnExisting.UPDATE
    on_missing: OnMissing = OnMissing.SKIP
    fold: Fold | None = None
    doc_path: DocPath  # ("rules", i) in the merged document
    location: Location


@dataclass(frozen=True, kw_only=True)
class Config:
    rules_dir: Path
    templates_dir: Path
    sources: Mapping[str, SourceConfig]
    providers: Mapping[str, ProviderConfig]
    rules: tuple[RuleConfig, ...]
    vars: Mapping[str, Any]
    defaults: Defaults
    # every merged-document path -> where it was written (see locate)
    locations: Mapping[DocPath, Location]
    # configured secret values (api keys, tokens, HMAC secrets, passwords) for masking output
    secrets: frozenset[str] = frozenset()
    # the paths of strings taken from the environment -> the variables they used: problems
    # name these variables instead of showing the values (bridge.config.quoting)
    from_env: Mapping[DocPath, tuple[str, ...]] = field(default_factory=dict)

    def locate(self, path: DocPath) -> Location:
        """Where `path` was written; falls back to the nearest enclosing node that was."""
        return locate(self.locations, path, rules_dir=self.rules_dir)

    def show(self, value: Any, path: DocPath) -> str:
        """`value`, written at `path`, as a problem shows it: short, never a secret."""
        return show_value(value, path, self.from_env)


def locate(locations: Mapping[DocPath, Location], path: DocPath, *, rules_dir: Path) -> Location:
    """Where `path` was written; falls back to the nearest enclosing node that was."""
    for end in range(len(path), 0, -1):
        found = locations.get(path[:end])
        if found is not None:
            if end == len(path):
                return found
            suffix = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[end:])
            return Location(file=found.file, line=found.line, path=found.path + suffix)
    return Location(file=str(rules_dir), line=0, path=format_path(path))


def format_path(path: DocPath) -> str:
    """("rules", 3, "ticket", "subject") -> rules[3].ticket.subject"""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out

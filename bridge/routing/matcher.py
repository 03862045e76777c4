"""Rule matching (DESIGN §2.3, §7): which rules of a source an event matches, with a trace.

A source's rules are tried in file order; the first match ends matching unless that rule has
`continue_`; when nothing matched, the source's default rule (if any) is the match.

To stay fast with thousands of rules, each source indexes its rules on one top-level equality
path (say `body.type`; the one that leaves the fewest rules to check on average): an event's
value there picks the rules that require that value, plus the rules that require nothing
there; only these candidates are checked, in file order. Keys follow the conditions' JSON
equality (true is not 1, 1 is 1.0). `full_trace` checks every rule instead (for
`ticketbridge try`); both give the same `matched`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.exceptions import RenderError
from bridge.routing.conditions import Condition, Failure
from bridge.routing.operators import equality_key
from bridge.routing.paths import EventPath, lookup


@dataclass(frozen=True, kw_only=True)
class MatchableRule:
    """What matching needs of a rule. `predicate` is the rule's compiled `if` expression; it
    may raise RenderError, and then the rule does not match."""

    name: str
    sources: tuple[str, ...]  # empty: only usable as a source's default rule
    condition: Condition
    predicate: Callable[[Mapping[str, Any]], bool] | None = None
    continue_: bool = False


@dataclass(frozen=True, kw_only=True)
class TraceEntry:
    """One rule's outcome: matched, or the failure that stopped it; `note` says why a rule was
    not tried or that it is the source's default."""

    rule: str
    matched: bool
    failed: Failure | None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "matched": self.matched,
            "failed": None if self.failed is None else self.failed.to_json(),
        }
        if self.note is not None:
            out["note"] = self.note
        return out


@dataclass(frozen=True, kw_only=True)
class MatchResult:
    """The matched rule names in order (empty: unmatched, which is not an error)."""

    matched: tuple[str, ...]
    trace: tuple[TraceEntry, ...]
    default_used: bool = False
    skipped_by_index: int = 0  # rules of the source the index ruled out without checking

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": list(self.matched),
            "trace": [entry.to_json() for entry in self.trace],
            "default_used": self.default_used,
            "skipped_by_index": self.skipped_by_index,
        }


@dataclass(frozen=True, kw_only=True)
class _SourceRules:
    """One source's rules in file order and their index on one equality path."""

    rules: tuple[MatchableRule, ...]
    path: EventPath | None  # None: no rule has an indexable equality
    buckets: Mapping[Hashable, tuple[int, ...]]  # equality key -> positions requiring it
    always: tuple[int, ...]  # positions of rules with no indexable equality on `path`

    @classmethod
    def build(cls, rules: tuple[MatchableRule, ...]) -> _SourceRules:
        keyed: list[dict[EventPath, Hashable]] = []
        seen: dict[EventPath, set[Hashable]] = {}
        counts: dict[EventPath, int] = {}
        for rule in rules:
            keys = {}
            for path, value in rule.condition.equalities().items():
                key = equality_key(value)
                if key is not None:
                    keys[path] = key
                    counts[path] = counts.get(path, 0) + 1
                    seen.setdefault(path, set()).add(key)
            keyed.append(keys)
        if not counts:
            return cls(rules=rules, path=None, buckets={}, always=tuple(range(len(rules))))

        def candidates(path: EventPath) -> float:
            """About how many rules an event checks with this index: the rules without an
            equality on the path, plus an average bucket (`body.ok: true` everywhere is
            shared by the most rules but discriminates nothing)."""
            return len(rules) - counts[path] + counts[path] / len(seen[path])

        best = min(counts, key=candidates)  # the first of the best, in order of appearance
        buckets: dict[Hashable, list[int]] = {}
        always: list[int] = []
        for position, keys in enumerate(keyed):
            if best in keys:
                buckets.setdefault(keys[best], []).append(position)
            else:
                always.append(position)
        return cls(
            rules=rules,
            path=best,
            buckets={key: tuple(positions) for key, positions in buckets.items()},
            always=tuple(always),
        )

    def candidates(self, context: Mapping[str, Any]) -> Sequence[int]:
        """Positions of the rules that can match this event, ascending."""
        if self.path is None:
            return self.always
        key = equality_key(lookup(context, self.path))
        hit = self.buckets.get(key) if key is not None else None
        if not hit:
            return self.always
        if not self.always:
            return hit
        return sorted(hit + self.always)


class Matcher:
    """Built once from every rule; match() is pure and safe to call concurrently."""

    def __init__(
        self, rules: Sequence[MatchableRule], *, default_rules: Mapping[str, str] | None = None
    ) -> None:
        names: set[str] = set()
        per_source: dict[str, list[MatchableRule]] = {}
        for rule in rules:
            if rule.name in names:
                raise ValueError(f"two rules are named {rule.name!r}")
            names.add(rule.name)
            for source in dict.fromkeys(rule.sources):
                per_source.setdefault(source, []).append(rule)
        self._defaults = dict(default_rules or {})
        for source, name in self._defaults.items():
            if name not in names:
                raise ValueError(f"the default rule {name!r} of source {source!r} is not a rule")
        self._sources = {
            source: _SourceRules.build(tuple(source_rules))
            for source, source_rules in per_source.items()
        }

    def match(
        self, source: str, context: Mapping[str, Any], *, full_trace: bool = False
    ) -> MatchResult:
        """Match an event of `source`; `full_trace` checks and traces every rule of the source
        instead of only the index's candidates (same `matched`, slower)."""
        rules = self._sources.get(source)
        matched: list[str] = []
        trace: list[TraceEntry] = []
        skipped = 0
        if rules is not None:
            positions = range(len(rules.rules)) if full_trace else rules.candidates(context)
            skipped = len(rules.rules) - len(positions)
            ended_by: str | None = None
            for position in positions:
                rule = rules.rules[position]
                if ended_by is not None:
                    skip = f"not tried: {ended_by} matched first"
                    trace.append(TraceEntry(rule=rule.name, matched=False, failed=None, note=skip))
                    continue
                failed, note = _try(rule, context)
                entry = TraceEntry(rule=rule.name, matched=failed is None, failed=failed, note=note)
                trace.append(entry)
                if failed is None:
                    matched.append(rule.name)
                    if not rule.continue_:
                        ended_by = rule.name
        default = self._defaults.get(source)
        if matched or default is None:
            return MatchResult(matched=tuple(matched), trace=tuple(trace), skipped_by_index=skipped)
        trace.append(TraceEntry(rule=default, matched=True, failed=None, note="default rule"))
        return MatchResult(
            matched=(default,), trace=tuple(trace), default_used=True, skipped_by_index=skipped
        )


def _try(rule: MatchableRule, context: Mapping[str, Any]) -> tuple[Failure | None, str | None]:
    """Check the rule's condition, then its `if`: (the failure or None, a note or None)."""
    failed = rule.condition.check(context)
    if failed is not None or rule.predicate is None:
        return failed, None
    try:
        if rule.predicate(context):
            return None, None
    except RenderError as exc:
        failure = Failure(path="if", op="if", expected=True, actual=exc.message)
        return failure, "the if expression failed to render"
    return Failure(path="if", op="if", expected=True, actual=False), None

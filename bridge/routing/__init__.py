"""Routing (DESIGN §2.3): event paths, compiled rule conditions, and rule matching with a trace.

paths       parse_path("body.items.0.sku"), lookup(context, path) -> value | ABSENT
conditions  compile_condition(when, ...) -> Condition; Condition.check -> Failure | None
matcher     Matcher(rules).match(source, context) -> MatchResult (matched, trace)
"""

from bridge.routing.conditions import Condition, Failure, compile_condition
from bridge.routing.matcher import MatchableRule, Matcher, MatchResult, TraceEntry
from bridge.routing.paths import ABSENT, EventPath, PathError, format_path, lookup, parse_path

__all__ = [
    "ABSENT",
    "Condition",
    "EventPath",
    "Failure",
    "MatchResult",
    "MatchableRule",
    "Matcher",
    "PathError",
    "TraceEntry",
    "compile_condition",
    "format_path",
    "lookup",
    "parse_path",
]

"""benchmark.pedantic, typed: pytest-benchmark ships no type hints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar, cast

from pytest_benchmark.fixture import BenchmarkFixture

T = TypeVar("T")

#: made again before each round, untimed: the target's (args, kwargs)
Setup: TypeAlias = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]

WARMUP_ROUNDS = 2


def timed_rounds(
    benchmark: BenchmarkFixture,
    target: Callable[..., T],
    *,
    setup: Setup,
    rounds: int,
    warmup_rounds: int = WARMUP_ROUNDS,
) -> T:
    """`rounds` calls of `target`, each timed alone after an untimed `setup`; the last result
    (one call in all under --benchmark-disable)."""
    result = benchmark.pedantic(  # type: ignore[no-untyped-call]
        target, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds
    )
    return cast(T, result)

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import load_schema, parse_duration, parse_size
from bridge.config.units import DURATION_UNITS, SIZE_UNITS, format_duration, format_size

SCHEMA = load_schema()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("30", 30.0),
        ("500ms", 0.5),
        ("2s", 2.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("30d", 2592000.0),
        ("1.5h", 5400.0),
        ("10 s", 10.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 minutes", "1w", "-1s", "s", "1e3", True, None, -1, [1]])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (100, 100),
        ("100", 100),
        ("100B", 100),
        ("10KB", 10_000),
        ("1MB", 1_000_000),
        ("512KiB", 512 * 1024),
        ("1MiB", 1024 * 1024),
        ("1mib", 1024 * 1024),
        ("2 GiB", 2 * 1024**3),
    ],
)
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "1.5MiB", "1M", "ten", "1TB", True, -1, 1.0, None])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(DURATION_UNITS)))
def test_duration_with_unit_round_trip(count: int, unit: str) -> None:
    expected = count / 1000 if unit == "ms" else count * DURATION_UNITS[unit]
    assert parse_duration(f"{count}{unit}") == expected


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_format_duration_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(SIZE_UNITS)))
def test_size_with_unit_round_trip(count: int, unit: str) -> None:
    assert parse_size(f"{count}{unit.upper()}") == count * SIZE_UNITS[unit]


@given(st.integers(min_value=0, max_value=2**50))
def test_format_size_round_trip(size: int) -> None:
    spelled = format_size(size)
    assert parse_size(spelled) == size
    assert len(spelled) <= len(f"{size}B")


def test_formats_pick_the_largest_exact_unit() -> None:
    assert [format_duration(s) for s in (0, 0.5, 90, 300, 7200, 86400)] == [
        "0s",
        "500ms",
        "90s",
        "5m",
        "2h",
        "1d",
    ]
    assert [format_size(s) for s in (1024 * 1024, 2_000_000, 999)] == ["1MiB", "2MB", "999B"]


def _schema_pattern(name: str) -> re.Pattern[str]:
    string_branch = SCHEMA["$defs"][name]["anyOf"][1]
    return re.compile(string_branch["pattern"])


@given(st.text(alphabet="0123456789.msdhkKiIbBMgG \n", max_size=8))
def test_schema_duration_pattern_accepts_what_the_parser_accepts(text: str) -> None:
    """An editor and `check` must agree: the schema pattern and parse_duration accept the same."""
    try:
        parse_duration(text)
        parsed = True
    except ValueError:
        parsed = False
    assert bool(_schema_pattern("duration").search(text)) == parsed


@given(st.text(alphabet="0123456789.msdhkKiIbBMgG \n", max_size=8))
def test_schema_size_pattern_accepts_what_the_parser_accepts(text: str) -> None:
    try:
        parse_size(text)
        parsed = True
    except ValueError:
        parsed = False
    assert bool(_schema_pattern("size").search(text)) == parsed

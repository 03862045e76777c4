"""Ids: time-ordered, and unique whoever else seeds `random` and after a fork."""

from __future__ import annotations

import os
import random

import hypothesis
from hypothesis import strategies as st

from bridge.ids import _b32, new_id


def test_ids_sort_by_time_and_read_as_the_prefix_says():
    earlier, later = new_id("evt", now=1_700_000_000.0), new_id("evt", now=1_700_000_000.002)
    assert earlier < later and earlier.startswith("evt_") and len(earlier) == 4 + 26


def test_seeding_the_global_random_does_not_repeat_ids():
    """Hypothesis seeds the global `random` for each example: ids must not follow it."""
    random.seed(0)
    first = new_id("evt", now=1.0)
    random.seed(0)
    assert new_id("evt", now=1.0) != first


def test_a_forked_child_draws_other_ids_than_its_parent():
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, new_id("evt", now=1.0).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 100).decode()
    os.close(read)
    assert theirs.startswith("evt_") and theirs != new_id("evt", now=1.0)


@hypothesis.given(value=st.integers(min_value=0, max_value=2**80 - 1))
def test_the_base32_is_crockfords_digit_by_digit(value):
    digits, rest = [], value
    for _ in range(16):
        rest, digit = divmod(rest, 32)
        digits.append("0123456789abcdefghjkmnpqrstvwxyz"[digit])
    assert _b32(value, 16) == "".join(reversed(digits))

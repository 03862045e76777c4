import random

from hypothesis import given
from hypothesis import strategies as st

from bridge.config import RetryPolicy
from bridge.delivery.retry import backoff, next_attempt_at

POLICY = RetryPolicy(max_attempts=5, base=2, factor=2, cap=60, max_age=3600, retry_after_cap=120)


@given(tries=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_full_jitter_stays_under_the_exponential_ceiling(tries, seed):
    delay = backoff(tries, POLICY, random.Random(seed))
    assert 0 <= delay <= min(60, 2 * 2 ** (tries - 1))


def test_jitter_spreads_delays():
    rng = random.Random(1)
    delays = {round(backoff(4, POLICY, rng), 3) for _ in range(50)}
    assert len(delays) > 40  # not a fixed schedule


def test_budget_of_attempts_and_age():
    rng = random.Random(0)
    assert (
        next_attempt_at(tries=4, queued_at=0, now=10, policy=POLICY, retry_after=None, rng=rng)
        is not None
    )
    assert (
        next_attempt_at(tries=5, queued_at=0, now=10, policy=POLICY, retry_after=None, rng=rng)
        is None
    )
    assert (
        next_attempt_at(tries=1, queued_at=0, now=3599.5, policy=POLICY, retry_after=5, rng=rng)
        is None
    )


def test_retry_after_is_honoured_and_capped():
    rng = random.Random(0)
    assert (
        next_attempt_at(tries=1, queued_at=0, now=100, policy=POLICY, retry_after=30, rng=rng)
        == 130
    )
    assert (
        next_attempt_at(tries=1, queued_at=0, now=100, policy=POLICY, retry_after=9999, rng=rng)
        == 220
    )

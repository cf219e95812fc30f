"""Client settings for tests against the loopback emulators."""

from __future__ import annotations

import random

from marketing_pipelines.clients._http import RetryPolicy


def fast_retry(max_retries: int = 6, *, seed: int = 0) -> RetryPolicy:
    """Retries after hundredths of a second, with seeded jitter: faults are retried without slowing the suite,
    and the same waits every run."""
    return RetryPolicy(max_retries=max_retries, base_delay=0.01, max_delay=0.05, rng=random.Random(seed))

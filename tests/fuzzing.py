"""Shared settings and helpers of the fuzz tests (tests/test_fuzz_readers.py, tests/test_fuzz_spec.py).

CI runs each fuzz test on a small, fixed set of examples (hypothesis' ``derandomize``: the
same inputs every run, so a red CI is reproducible). Two environment variables change that:

- ``NEUROFLOW_FUZZ_EXAMPLES=N``: N examples per test instead of the CI default, drawn at
  random (a new seed each run, printed) -- the long run;
- ``NEUROFLOW_TEST_SEED=S``: draw from seed S (the project's seed convention,
  tests/conftest.py), to replay a failure that a long run printed.

Long run (-s shows the seed; 1500 examples per test took 90 s on this 2-core machine, so 20000
about 20 minutes)::

    NEUROFLOW_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz_readers.py tests/test_fuzz_spec.py -q -x -s
"""

from __future__ import annotations

import os
import tracemalloc
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Iterator, TypeVar

from hypothesis import HealthCheck, seed as hypothesis_seed, settings

F = TypeVar("F", bound=Callable)

CI_EXAMPLES = 100
_given = os.environ.get("NEUROFLOW_FUZZ_EXAMPLES", "").strip()
EXAMPLES = int(_given) if _given else CI_EXAMPLES
LONG_RUN = bool(_given)
_seed_text = os.environ.get("NEUROFLOW_TEST_SEED", "").strip()
SEED: int | None = int(_seed_text) if _seed_text else (int.from_bytes(os.urandom(4), "little") if LONG_RUN else None)

settings.register_profile(
    "neuroflow-fuzz",
    max_examples=EXAMPLES,
    # a generous deadline: this machine has 2 cores shared with builds; a slow example is a
    # failure worth seeing, a loaded machine is not
    deadline=timedelta(seconds=10),
    derandomize=SEED is None,
    database=None,  # nothing written under .hypothesis/; failures are replayed by seed
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
PROFILE = settings.get_profile("neuroflow-fuzz")


def fuzz(share: float = 1.0) -> Callable[[F], F]:
    """The profile as a decorator (put it above ``@given``); ``share`` scales the number of
    examples for a test whose examples cost more or less than most."""
    n = max(1, round(EXAMPLES * share))

    def wrap(f: F) -> F:
        f = settings(PROFILE, max_examples=n)(f)
        if SEED is not None:
            f = hypothesis_seed(SEED)(f)
        return f

    return wrap


def describe_run() -> str:
    if SEED is None:
        return f"fuzz: {EXAMPLES} examples per test, derandomized (CI)"
    return f"fuzz: {EXAMPLES} examples per test, seed {SEED} (replay with NEUROFLOW_TEST_SEED={SEED})"


@contextmanager
def peak_allocation() -> Iterator[list[int]]:
    """The peak of Python-tracked allocations (bytes, NumPy arrays included) inside the block,
    in the one-element list yielded (filled in on exit)."""
    out = [0]
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield out
    finally:
        out[0] = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()

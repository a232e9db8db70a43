"""Fuzz harness: per-case timeouts, a count of generated cases, and the fast / slow profiles.

Every property in ``tests/fuzz`` takes the ``fuzz`` fixture, which runs it twice: ``fast`` (a few
dozen derandomized examples, part of the default ``pytest`` run, reproducible in CI) and ``slow``
(``@pytest.mark.slow``, hundreds of random examples per target; ``pytest -m slow tests/fuzz``
generates well over 5,000 cases in all). Each generated case runs inside ``fuzz.case(...)``:

* a ``SIGALRM`` timer turns a hang into ``TimeoutError`` naming the case (``CASE_TIMEOUT_S``);
  a hang inside C code that never returns to Python is caught by a ``faulthandler`` watchdog
  that dumps every thread's stack and exits, so the run fails instead of blocking;
* the case is counted per target; the terminal summary prints
  ``fuzz: N generated cases across M targets``.

A failing slow example is printed by Hypothesis with a ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import faulthandler
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, settings

CASE_TIMEOUT_S = 5.0
"""Wall-clock limit of one generated case (every case is a few milliseconds of work)."""
WATCHDOG_S = 60.0
"""Hard limit of one case stuck in C code (no Python bytecode runs, so no alarm is delivered)."""

_HEALTH = [
    # ``fuzz`` is function-scoped on purpose: it counts across the examples of one test.
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
]
settings.register_profile(
    "fuzz-fast", max_examples=30, deadline=None, derandomize=True, database=None,
    suppress_health_check=_HEALTH, print_blob=True,
)
settings.register_profile(
    "fuzz-slow", max_examples=250, deadline=None, derandomize=False, database=None,
    suppress_health_check=_HEALTH, print_blob=True,
)

CASES: Counter[str] = Counter()
"""Generated cases per target (test id), over the whole session."""


@contextmanager
def case_timeout(seconds: float, describe: str | Callable[[], str]) -> Iterator[None]:
    """Raise ``TimeoutError`` naming the case if the block runs longer than ``seconds``."""

    def on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
        text = describe() if callable(describe) else describe
        raise TimeoutError(f"fuzz case still running after {seconds:g} s (a hang?): {text}")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(max(WATCHDOG_S, 4 * seconds), exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


class Fuzz:
    """What a property needs from the harness: its Hypothesis settings and a case wrapper."""

    def __init__(self, profile: str, target: str) -> None:
        self.profile = profile
        self.target = target

    @property
    def slow(self) -> bool:
        return self.profile == "slow"

    def settings(self, scale: float = 1.0) -> settings:
        """This profile's settings; ``scale`` multiplies its example count (cheap targets run
        more examples, costly ones fewer)."""
        base = settings.get_profile(f"fuzz-{self.profile}")
        return settings(base, max_examples=max(1, round(base.max_examples * scale)))

    @contextmanager
    def case(self, describe: str | Callable[[], str] = "",
             timeout_s: float = CASE_TIMEOUT_S) -> Iterator[None]:
        """Count one generated case and fail it if it hangs (``describe`` names it then)."""
        CASES[self.target] += 1
        with case_timeout(timeout_s, describe or self.target):
            yield


@pytest.fixture(params=[pytest.param("fast"), pytest.param("slow", marks=pytest.mark.slow)])
def fuzz(request: pytest.FixtureRequest) -> Fuzz:
    """Run the test as the fast (default) and the slow (``-m slow``) variant."""
    return Fuzz(request.param, request.node.nodeid)


def pytest_terminal_summary(terminalreporter) -> None:
    if CASES:
        terminalreporter.write_line(
            f"fuzz: {sum(CASES.values())} generated cases across {len(CASES)} targets")

"""StepTimer: batches counted across epochs, the warm-up left out, nothing timed refused."""

from __future__ import annotations

import pytest

from research.tasks.timing import StepTimer


def test_the_timer_averages_the_batches_after_the_warm_up(monkeypatch):
    clock = iter(range(100))
    monkeypatch.setattr("research.tasks.timing.time.perf_counter", lambda: float(next(clock)))
    timer = StepTimer(warmup=2)
    for index in range(6):  # two epochs of three batches: batch_idx restarts, the count does not
        timer.on_train_batch_start(None, None, None, index % 3)
        timer.on_train_batch_end(None, None, None, None, index % 3)
    # ends of batches 0 and 1 read 0 and 1; batch 2 starts at 2; batches 2..5 end at 3, 4, 5, 6
    assert timer.seconds_per_step == pytest.approx((6 - 2) / 4)


def test_a_run_shorter_than_the_warm_up_is_refused():
    timer = StepTimer(warmup=5)
    timer.on_train_batch_start(None, None, None, 0)
    timer.on_train_batch_end(None, None, None, None, 0)
    with pytest.raises(ValueError, match="5 warm-up batches"):
        _ = timer.seconds_per_step

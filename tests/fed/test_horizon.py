"""The plan's end is not a failure the ground knows: a round it cuts short stops the run.

Before, a transfer that could not finish within the plan counted as failed the moment it was
sent, so the last hours of every plan produced rounds of no duration with one participant (the
tiny star below ran 36 of them). Nodes the plan never joins at all (a plane that never sees a
station) remain a known failure.
"""

from __future__ import annotations

import pytest

from research.fed.config import parse_config
from research.fed.rounds import timing_only
from research.fed.runner import run
from tests.fed.conftest import tiny_raw


def _rows(tiny_setup, tmp_path, **comm):
    cfg = parse_config(tiny_raw(scheme="onboard", topology="star", out_dir=str(tmp_path),
                                train={**tiny_raw()["train"], "rounds": 40}, comm=comm))
    return run(cfg, setup=tiny_setup, resume=False, trainer=timing_only).rows


def test_a_round_the_plan_cuts_short_stops_the_run(tiny_setup, tmp_path):
    with pytest.warns(UserWarning, match=r"stopping after round \d+: .*cannot settle within the "
                                         r"plan \(21600 s\)"):
        rows = _rows(tiny_setup, tmp_path)
    assert 1 <= len(rows) < 40 and rows[-1]["t_end_s"] <= 21600
    for row in rows:
        assert row["duration_s"] > 600  # a pass through a station each way, never 0 s
        # plane 2 never sees a station in this plan: known from the ephemeris, dropped every round
        assert row["participants"] == 20 and row["dropped"] == 10
        assert all(sat.startswith("sat-P02") for sat in row["dropped_ids"].split(";"))


def test_with_a_deadline_the_cut_transfer_missed_it(tiny_setup, tmp_path):
    # rounds of 3000 s: the 7th ends at 21000 s, the 8th's deadline (24000 s) lies beyond the plan
    with pytest.warns(UserWarning, match=r"stopping after round 7: .*cannot settle"):
        rows = _rows(tiny_setup, tmp_path, round_deadline_s=3000.0)
    assert len(rows) == 7
    assert all(3000 - 1e-6 <= row["duration_s"] <= 3001 for row in rows)
    # a head the plan's end keeps from a reachable satellite: it missed the deadline (known at
    # the deadline), not a failure known at the start
    for row in rows[5:]:
        late = [d.split(":")[0] for d in row["dropped_ids"].split(";") if d.endswith(":deadline")]
        assert late and not any(s.startswith("sat-P02") for s in late)

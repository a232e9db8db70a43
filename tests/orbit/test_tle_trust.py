"""Element sets that cannot be trusted are refused, never propagated into wrong positions.

Three failure modes the checksum alone misses: a damaged character that keeps the modulo-10 sum
(an 'O' for a '0'), elements SGP4 cannot propagate over the window (it returns error codes, and
NaN positions used to flow into the plan), and an epoch far from the window (1957 propagates to
finite, confident, wrong positions).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from research.orbit import OrbitConfigError, build_contact_plan, parse_config
from research.orbit.cli import main
from research.orbit.constellation import from_tles
from research.orbit.propagate import PropagationError, check_element_ages, propagate_teme
from research.orbit.timegrid import TimeGrid
from research.orbit.tle import TLEError, parse_tle_text, tle_checksum

LINE1 = "1 25544U 98067A   24198.50000000  .00016717  00000+0  30000-3 0  9990"
LINE2 = "2 25544  51.6400 200.0000 0005000  90.0000 270.0000 15.50000000 00000"
GRID = TimeGrid("2024-07-16T12:00:00Z", 3600, 60)


def _signed(line: str) -> str:
    return line[:68] + str(tle_checksum(line))


def _text(line1: str = LINE1, line2: str = LINE2, fix_checksum: bool = True) -> str:
    if fix_checksum:
        line1, line2 = _signed(line1), _signed(line2)
    return f"TESTSAT\n{line1}\n{line2}\n"


def _edit(line: str, start: int, text: str) -> str:
    return line[:start] + text + line[start + len(text):]


def test_the_reference_set_parses_and_propagates():
    sat = from_tles(parse_tle_text(_text()))
    r, _, err = propagate_teme(sat, *GRID.jd_utc(), strict=True)
    assert np.isfinite(r).all() and not err.any()


@pytest.mark.parametrize("line, start, text, match", [
    (1, 18, "24l98.50000000", "epoch .*columns 19-32.*YYDDD"),
    (1, 7, "X", "classification"),
    (1, 33, " .0001671 ", "mean motion derivative"),
    (1, 32, "0", "column 33 must be blank"),
    (2, 26, "OO05000", "eccentricity"),
    (2, 8, " 51.64O0", "inclination"),
    (2, 52, "00.00000000", "mean motion is 0, outside"),
    (2, 8, "181.0000", "inclination is 181, outside"),
    (2, 17, "360.0000", "ascending node is 360, outside"),
    (1, 18, "24400.50000000", "day of year is 400.5"),
])
def test_damaged_fields_are_named(line, start, text, match):
    l1 = _edit(LINE1, start, text) if line == 1 else LINE1
    l2 = _edit(LINE2, start, text) if line == 2 else LINE2
    with pytest.raises(TLEError, match=match):
        parse_tle_text(_text(l1, l2))


def test_a_damage_the_checksum_misses_is_still_caught():
    # 'O' counts 0 in the checksum like '0': the sum holds, the field format does not.
    l2 = _edit(_signed(LINE2), 26, "OO05000")
    assert tle_checksum(l2) == int(l2[68])
    with pytest.raises(TLEError, match="eccentricity"):
        parse_tle_text(_text(_signed(LINE1), l2, fix_checksum=False))


def test_sgp4_failure_names_the_satellite_time_and_reason():
    # e = 0.9 at 15.5 rev/day puts the perigee under the surface: SGP4 returns error 6.
    sat = from_tles(parse_tle_text(_text(LINE1, _edit(LINE2, 26, "9000000"))))
    r, _, err = propagate_teme(sat, *GRID.jd_utc())  # the lenient call marks NaN
    assert err.any() and np.isnan(r).any()
    with pytest.raises(PropagationError, match=r"1 of 1 satellites.*sat-TESTSAT \(from 2024-07-16T"
                                               r".*decayed.*altitude_km"):
        propagate_teme(sat, *GRID.jd_utc(), strict=True)
    with pytest.raises(PropagationError, match="decayed"):
        build_contact_plan(sat, [], GRID)


def test_stale_epochs_are_refused_and_the_limit_is_configurable():
    sat_1957 = from_tles(parse_tle_text(_text(_edit(LINE1, 18, "57198.50000000"))))
    with pytest.raises(PropagationError, match=r"more than 30 days.*epoch 1957-07-17.*max_age_days"):
        check_element_ages(sat_1957, GRID)
    week_old = from_tles(parse_tle_text(_text(_edit(LINE1, 18, "24191.50000000"))))
    check_element_ages(week_old, GRID)
    with pytest.raises(PropagationError, match="more than 5 days"):
        check_element_ages(week_old, GRID, max_age_days=5)
    check_element_ages(sat_1957, GRID, max_age_days=None)
    with pytest.raises(ValueError, match="max element age must be > 0"):
        check_element_ages(week_old, GRID, max_age_days=0)


@pytest.fixture
def tle_scenario(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text(_text(_edit(LINE1, 18, "24150.50000000")))  # 46 days before the window
    return {"name": "one", "epoch": "2024-07-16T12:00:00Z", "duration_s": 1800, "step_s": 30,
            "constellation": {"tle": {"file": str(path)}}, "stations": {"names": ["Matera"]},
            "isl": {"topology": "none"}}


def test_scenario_max_age_days(tle_scenario):
    with pytest.raises(PropagationError, match="more than 30 days"):
        parse_config(tle_scenario, "one.yaml").build()
    tle_scenario["constellation"]["tle"]["max_age_days"] = 60
    assert parse_config(tle_scenario, "one.yaml").build().summary()["satellites"] == 1
    for bad in (0, "soon", True):
        tle_scenario["constellation"]["tle"]["max_age_days"] = bad
        with pytest.raises(OrbitConfigError, match="max_age_days must be a (finite )?number"):
            parse_config(tle_scenario, "one.yaml")


def test_cli_reports_a_stale_snapshot_in_one_line(tle_scenario, tmp_path, capsys):
    cfg = tmp_path / "one.yaml"
    cfg.write_text(yaml.safe_dump(tle_scenario))
    assert main(["plan", "--config", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "more than 30 days" in err and "sat-TESTSAT" in err


def test_synthetic_shells_have_no_element_age():
    # a Walker shell is built at the plan's epoch: a month-long plan of it is fine
    from research.orbit.constellation import walker

    grid = TimeGrid("2024-07-16T12:00:00Z", 31 * 86400, 3600)
    shell = walker(2, 2, 550.0, 53.0, epoch=grid.epoch)
    assert build_contact_plan(shell, [], grid, eclipse=False).summary()["satellites"] == 4

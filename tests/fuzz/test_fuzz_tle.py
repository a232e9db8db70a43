"""Fuzz TLE parsing and element-set trust: damaged text is refused or propagates to sane orbits.

Real element sets (the mid-July 2024 CelesTrak snapshot, inline so the test needs no files:
LEO, polar, GEO, a highly eccentric orbit and one beyond GEO) are mutated character by character
(replacements with digits, letters, signs, Unicode digits and line breaks; insertions,
deletions, swaps; lines dropped, doubled or exchanged), with the checksum re-fixed or not, and
whole fields are overwritten with random text of their width with the checksum re-fixed (so only
the field checks can catch it). ``parse_tle_text`` must raise ``TLEError`` or return element
sets that SGP4 reads as the same numbers the parser checked, and that propagate over a short
window near their epoch to finite positions, or raise ``PropagationError``
(``propagate_teme(..., strict=True)``); never another exception. ``check_element_ages`` is
fuzzed with random windows and limits against the ages computed here.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from research.orbit.constellation import from_tles
from research.orbit.propagate import PropagationError, check_element_ages, propagate_teme
from research.orbit.timegrid import TimeGrid
from research.orbit.tle import LINE_FIELDS, TLE, TLEError, parse_tle_text, tle_checksum

SETS = {
    "ISS (ZARYA)": (
        "1 25544U 98067A   24198.87855652  .00024459  00000+0  43544-3 0  9996",
        "2 25544  51.6389 168.2459 0010351  73.3628  14.5853 15.49936071463158"),
    "STARLINK-1007": (
        "1 44713U 19074A   24198.58334491  .01390166  00000+0  19503-1 0  9995",
        "2 44713  53.0541   2.0722 0001210  69.0296 177.1483 15.53199148258369"),
    "CALSPHERE 1": (
        "1 00900U 64063C   24198.83883912  .00000907  00000+0  93803-3 0  9995",
        "2 00900  90.2026  56.0144 0023512 251.0782 240.7890 13.75128250975104"),
    "NOAA 15": (
        "1 25338U 98030A   24198.13262118  .00000390  00000+0  17910-3 0  9991",
        "2 25338  98.5672 224.6536 0009302 236.1797 123.8499 14.26628431361561"),
    "SES-1": (
        "1 36516U 10016A   24198.83205713 -.00000096  00000+0  00000+0 0  9996",
        "2 36516   0.0426 292.4234 0002779 174.6056  26.6523  1.00272364 52012"),
    "PHASE 3B (AO-10)": (
        "1 14129U 83058B   24196.58229057 -.00000027  00000+0  00000+0 0  9999",
        "2 14129  27.4226 334.7417 6033588 284.6196  18.9633  2.05867822281023"),
    "CXO": (
        "1 25867U 99040B   24199.59791054  .00000580  00000+0  00000+0 0  9996",
        "2 25867  41.7638 151.1853 8857581 298.2798   0.4846  0.37808948 14677"),
}
NAMES = list(SETS)

# Characters a damaged line may get: what the format uses, what it must refuse, and look-alikes
# that str.isdigit(), int(), float() or \d accept although SGP4's column parser does not.
ALPHABET = st.one_of(
    st.sampled_from("0123456789"), st.sampled_from(" +-.UCSAXZ"),
    st.sampled_from(["O", "l", "e", "E", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028",
                     "\x00", "\u0663", "\u06f5", "\u00b2", "\u2460", "\U0001d7d8", "\uff11",
                     "\u00e9", "\ufffd"]),
    st.characters(max_codepoint=0x7F),
)


def sign(line: str) -> str:
    """``line`` with its checksum digit re-fixed (lines too short to carry one: unchanged)."""
    if len(line) < 69:
        return line
    return line[:68] + str(tle_checksum(line)) + line[69:]


def text_of(name: str, line1: str, line2: str, named: bool = True) -> str:
    return (f"{name}\n" if named else "") + f"{line1}\n{line2}\n"


@st.composite
def mutated_text(draw) -> tuple[str, str]:
    """``(how, text)``: one or a few element sets with one to three character-level edits, or
    one field overwritten, the checksums re-fixed or not."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))
    lines = []
    for name in names:
        lines += [name, *SETS[name]] if draw(st.booleans()) else list(SETS[name])
    how = []
    if draw(st.integers(0, 3)) == 0:  # a whole field of a data line, re-signed
        i = draw(st.sampled_from([k for k, line in enumerate(lines) if line[:2] in ("1 ", "2 ")]))
        number = int(lines[i][0])
        field, start, end, _, _ = draw(st.sampled_from(LINE_FIELDS[number]))
        value = "".join(draw(st.lists(ALPHABET, min_size=end - start, max_size=end - start)))
        lines[i] = sign(lines[i][:start] + value + lines[i][end:])
        how.append(f"line {i} {field} = {value!r}")
        return "; ".join(how), "\n".join(lines) + "\n"
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "replace", "insert", "delete", "swap", "drop-line",
                                   "double-line", "swap-lines"]))
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        pos = draw(st.integers(0, max(0, len(line) - 1)))
        if op == "replace" and line:
            line = line[:pos] + draw(ALPHABET) + line[pos + 1:]
        elif op == "insert":
            line = line[:pos] + draw(ALPHABET) + line[pos:]
        elif op == "delete":
            line = line[:pos] + line[pos + 1:]
        elif op == "swap" and len(line) > 1:
            j = draw(st.integers(0, len(line) - 1))
            chars = list(line)
            chars[pos], chars[j] = chars[j], chars[pos]
            line = "".join(chars)
        elif op == "drop-line" and len(lines) > 1:
            del lines[i]
            how.append(f"{op} {i}")
            continue
        elif op == "double-line":
            lines.insert(i, line)
        elif op == "swap-lines" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            how.append(f"{op} {i} {j}")
            continue
        lines[i] = line
        how.append(f"{op} line {i} col {pos}")
    if draw(st.booleans()):
        lines = [sign(line) if line[:2] in ("1 ", "2 ") else line for line in lines]
        how.append("checksums re-fixed")
    return "; ".join(how), "\n".join(lines) + "\n"


def check_parsed(tle: TLE) -> None:
    """What the parser checked is what SGP4 reads, and the orbit is physical."""
    assert tle.line1.isascii() and tle.line2.isascii(), f"non-ASCII line accepted: {tle!r}"
    inc, ecc, n = tle.inclination_deg, tle.eccentricity, tle.mean_motion_rev_per_day
    assert 0 <= inc <= 180 and 0 <= ecc < 1 and 1e-3 <= n < 18, f"out of range: {tle!r}"
    sat = tle.satrec()
    assert math.isclose(sat.inclo, math.radians(inc), abs_tol=1e-9), "SGP4 reads another inclination"
    assert math.isclose(sat.ecco, ecc, abs_tol=1e-9), "SGP4 reads another eccentricity"
    assert math.isclose(sat.no_kozai, n * 2 * math.pi / 1440, rel_tol=1e-9), \
        "SGP4 reads another mean motion"
    assert math.isclose(sat.nodeo, math.radians(tle.raan_deg), abs_tol=1e-9)
    doy = float(tle.line1[20:32])
    assert math.isclose(sat.epochdays, doy, abs_tol=1e-8), "SGP4 reads another epoch"
    per, apo = tle.perigee_apogee_km()
    assert math.isfinite(per) and math.isfinite(apo) and per <= apo


def propagate_near_epoch(tle: TLE) -> None:
    """Finite TEME states over +-3 h of the epoch, or a ``PropagationError``."""
    constellation = from_tles([tle])
    sat = constellation.satrecs[0]
    offsets = np.linspace(-0.125, 0.125, 7)
    jd = np.full(offsets.shape, sat.jdsatepoch)
    fr = sat.jdsatepochF + offsets
    try:
        r, v, err = propagate_teme(constellation, jd, fr, strict=True)
    except PropagationError as e:
        assert constellation.names[0] in str(e)
        return
    assert not err.any() and np.isfinite(r).all() and np.isfinite(v).all(), \
        f"strict propagation returned NaN: {tle!r}"
    radius = np.linalg.norm(r, axis=-1)
    assert (radius > 6000).all(), f"a position inside the Earth without an error: {tle!r}"


# ----------------------------------------------------------------------------- properties
def test_mutated_tles_are_refused_or_propagate(fuzz):
    @fuzz.settings(scale=4)
    @given(case=mutated_text())
    def prop(case):
        how, text = case
        with fuzz.case(lambda: f"{how}: {text!r}"):
            try:
                tles = parse_tle_text(text, source="fuzz.tle")
            except TLEError as err:
                assert "fuzz.tle" in str(err), f"the error does not name the source: {err}"
                return
            for tle in tles:
                check_parsed(tle)
                propagate_near_epoch(tle)

    prop()


def test_any_text_is_refused_or_parsed(fuzz):
    """Arbitrary text (and arbitrary lines starting like data lines) never escapes TLEError."""
    lines = st.one_of(
        st.text(max_size=80),
        st.tuples(st.sampled_from(["1 ", "2 "]), st.text(ALPHABET, min_size=60, max_size=70)
                  ).map("".join),
    )

    @fuzz.settings(scale=3)
    @given(body=st.lists(lines, max_size=6).map("\n".join))
    def prop(body):
        with fuzz.case(lambda: repr(body)):
            try:
                tles = parse_tle_text(body)
            except TLEError:
                return
            for tle in tles:
                check_parsed(tle)
                propagate_near_epoch(tle)

    prop()


EPOCH_FIELD = LINE_FIELDS[1][3]
assert EPOCH_FIELD[0] == "epoch"


@st.composite
def constellations(draw):
    """1 to 3 real element sets with their epochs moved to a drawn year and day."""
    tles = []
    for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True)):
        line1, line2 = SETS[name]
        year, day = draw(st.integers(0, 99)), draw(st.floats(1.0, 366.99999999))
        epoch = f"{year:02d}{day:012.8f}"
        line1 = sign(line1[:18] + epoch + line1[32:])
        (tle,) = parse_tle_text(text_of(name, line1, line2))
        tles.append(tle)
    return from_tles(tles)


WINDOW_START = st.datetimes(min_value=datetime(1957, 1, 1), max_value=datetime(2056, 12, 31),
                            timezones=st.just(timezone.utc))


def test_element_ages_are_checked_against_the_window(fuzz):
    @fuzz.settings(scale=2)
    @given(constellation=constellations(), start=WINDOW_START,
           duration=st.floats(1.0, 60 * 86400.0), steps=st.integers(1, 50),
           max_age=st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 10**6),
                             st.sampled_from([0.0, 1e-9, 30.0, float("inf")])))
    def prop(constellation, start, duration, steps, max_age):
        grid = TimeGrid(start, duration, duration / steps)
        with fuzz.case(lambda: f"{constellation.names} window {start} + {duration} s, "
                               f"max_age_days={max_age!r}"):
            jd, fr = grid.jd_utc(np.array([0.0, grid.end_s]))
            window = (jd + fr)
            epochs = np.array([s.jdsatepoch + s.jdsatepochF for s in constellation.satrecs])
            age = np.maximum(np.abs(epochs - window[0]), np.abs(epochs - window[1]))
            try:
                check_element_ages(constellation, grid, max_age)
            except PropagationError as err:
                assert max_age is not None and max_age > 0 and (age > max_age).any(), \
                    f"refused ages {age} under max_age_days={max_age}"
                stale = int((age > max_age).sum())
                assert str(err).startswith(f"{stale} of {len(constellation)} element sets")
                return
            except ValueError as err:
                assert not (max_age is None or max_age > 0), f"refused max_age_days={max_age}"
                assert "max element age" in str(err)
                return
            assert max_age is None or (age <= max_age).all(), \
                f"accepted ages {age} (days) over max_age_days={max_age}"

    prop()


def test_window_start_is_the_epoch_for_sgp4(fuzz):
    """A grid's Julian dates agree with the epoch it was built from (to a millisecond)."""

    @fuzz.settings(scale=2)
    @given(start=WINDOW_START, offset=st.floats(0, 30 * 86400.0))
    def prop(start, offset):
        with fuzz.case(lambda: f"{start} + {offset} s"):
            grid = TimeGrid(start, offset + 1.0, 1.0)
            jd, fr = grid.jd_utc(np.array([offset]))
            got = datetime(2000, 1, 1, 12, tzinfo=timezone.utc) + timedelta(
                days=float(jd[0] - 2451545.0) + float(fr[0]))
            want = start + timedelta(seconds=offset)
            assert abs((got - want).total_seconds()) < 1e-3

    prop()


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_sets_parse_and_propagate(name):
    (tle,) = parse_tle_text(text_of(name, *SETS[name]))
    check_parsed(tle)
    propagate_near_epoch(tle)

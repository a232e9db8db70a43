"""TLE parsing: checksums, lengths, structure, filters, unique ids."""

from __future__ import annotations

import pytest

from research.orbit import TLEError, filter_tles, load_tle_file, parse_tle_text
from research.orbit.tle import tle_checksum, unique_node_ids

# From the shared mid-July 2024 CelesTrak snapshot (stations.txt), so the test needs no files.
ISS = """ISS (ZARYA)
1 25544U 98067A   24198.87855652  .00024459  00000+0  43544-3 0  9996
2 25544  51.6389 168.2459 0010351  73.3628  14.5853 15.49936071463158
"""


def _lines(text: str) -> list[str]:
    return text.strip("\n").split("\n")


def test_parse_three_line_set():
    (t,) = parse_tle_text(ISS)
    assert t.name == "ISS (ZARYA)"
    assert t.catalog_number == "25544"
    assert 51.0 < t.inclination_deg < 52.0
    per, apo = t.perigee_apogee_km()
    assert 380 < per < apo < 450


def test_checksum_matches_file_digit():
    _, l1, l2 = _lines(ISS)
    assert tle_checksum(l1) == int(l1[68]) and tle_checksum(l2) == int(l2[68])


def test_wrong_checksum_is_rejected_with_location():
    name, l1, l2 = _lines(ISS)
    bad = l1[:68] + str((int(l1[68]) + 1) % 10)
    with pytest.raises(TLEError, match=r"mem\.tle line 2 \(ISS \(ZARYA\)\).*checksum"):
        parse_tle_text("\n".join([name, bad, l2]), source="mem.tle")


def test_corrupted_digit_is_caught_by_checksum():
    name, l1, l2 = _lines(ISS)
    bad = l2[:20] + ("1" if l2[20] != "1" else "2") + l2[21:]
    with pytest.raises(TLEError, match="line 2.*checksum"):
        parse_tle_text("\n".join([name, l1, bad]))


def test_wrong_length_is_rejected():
    name, l1, l2 = _lines(ISS)
    with pytest.raises(TLEError, match="68 characters, expected 69"):
        parse_tle_text("\n".join([name, l1[:68], l2]))


def test_mismatched_catalogue_numbers():
    name, l1, l2 = _lines(ISS)
    l2b = l2[:2] + "25545" + l2[7:68]
    l2b += str(tle_checksum(l2b))
    with pytest.raises(TLEError, match="catalogue numbers differ"):
        parse_tle_text("\n".join([name, l1, l2b]))


def test_missing_data_lines():
    with pytest.raises(TLEError):
        parse_tle_text("LONELY NAME\n")


def test_real_files_load_and_filter(tle_folder):
    tles = load_tle_file(tle_folder / "starlink.txt")
    assert len(tles) == 6227
    shell = filter_tles(tles, altitude_km=(530, 570))
    assert 3000 < len(shell) < len(tles)
    assert all(530 <= t.perigee_apogee_km()[0] for t in shell)
    two = filter_tles(tles, names=["STARLINK-1007", "starlink-1008"])
    assert [t.name for t in two] == ["STARLINK-1007", "STARLINK-1008"]
    with pytest.raises(KeyError, match="NOPE"):
        filter_tles(tles, names=["NOPE"])
    assert len(filter_tles(tles, limit=5)) == 5


def test_unique_node_ids_on_duplicates():
    (t,) = parse_tle_text(ISS)
    ids = unique_node_ids([t, t])
    assert len(set(ids)) == 2 and ids[0].startswith("sat-ISS_(ZARYA)-25544")

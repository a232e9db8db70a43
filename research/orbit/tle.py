"""Two-line element sets: strict parsing, checksums and filters.

``sgp4`` accepts TLE lines without checking them, so a corrupted file would silently give wrong
orbits. This module checks every line (length, line number, modulo-10 checksum, matching
catalogue numbers) and every field against its fixed-column format and physical range (a damaged
character the checksum misses, such as a letter in the epoch or a mean motion of zero, is caught
here), and raises :class:`TLEError` naming the file, the line, the satellite and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sgp4.api import WGS72, Satrec

from research.constants import MU_EARTH_WGS72_KM3_S2, R_EARTH_WGS72_KM

TLE_LINE_LENGTH = 69

# Fixed-column fields of each data line (0-based slices), the format each must have and a
# description for errors. Separating blanks are checked too. Every line of the shared snapshots
# (35,148 lines) matches; a mangled character lands in a field whose pattern it breaks.
_ANGLE = r"[ \d]{3}\.\d{4}"
_EXP = r"[ +-]\d{5}[+-]\d"
_SATNUM = r"[0-9A-Z ][0-9 ]{3}[0-9]"
LINE_FIELDS: dict[int, tuple[tuple[str, int, int, str, str], ...]] = {
    1: (
        ("catalogue number", 2, 7, _SATNUM, "5 digits (or Alpha-5)"),
        ("classification", 7, 8, r"[UCS ]", "U, C or S"),
        ("international designator", 9, 17, r"[ 0-9A-Z]{8}", "8 letters, digits or blanks"),
        ("epoch", 18, 32, r"\d{2}[ \d]{2}\d\.\d{8}", "YYDDD.DDDDDDDD"),
        ("mean motion derivative", 33, 43, r"[ +-]\.\d{8}", "a sign and .DDDDDDDD"),
        ("mean motion second derivative", 44, 52, _EXP, "a sign, 5 digits and an exponent"),
        ("B* drag term", 53, 61, _EXP, "a sign, 5 digits and an exponent"),
        ("ephemeris type", 62, 63, r"[0-9 ]", "a digit"),
        ("element set number", 64, 68, r"[ \d]{3}\d", "up to 4 digits"),
    ),
    2: (
        ("catalogue number", 2, 7, _SATNUM, "5 digits (or Alpha-5)"),
        ("inclination", 8, 16, _ANGLE, "DDD.DDDD degrees"),
        ("right ascension of the ascending node", 17, 25, _ANGLE, "DDD.DDDD degrees"),
        ("eccentricity", 26, 33, r"\d{7}", "7 digits (leading decimal point assumed)"),
        ("argument of perigee", 34, 42, _ANGLE, "DDD.DDDD degrees"),
        ("mean anomaly", 43, 51, _ANGLE, "DDD.DDDD degrees"),
        ("mean motion", 52, 63, r"[ \d]{2}\.\d{8}", "DD.DDDDDDDD revolutions a day"),
        ("revolution number", 63, 68, r"[ \d]{4}\d", "up to 5 digits"),
    ),
}
_BLANKS = {1: (1, 8, 17, 32, 43, 52, 61, 63), 2: (1, 7, 16, 25, 33, 42, 51)}
# Physical ranges of the parsed values (inclusive low, exclusive high unless noted).
_RANGES: dict[str, tuple[float, float]] = {
    "inclination": (0.0, 180.0), "right ascension of the ascending node": (0.0, 360.0),
    "argument of perigee": (0.0, 360.0), "mean anomaly": (0.0, 360.0),
    # No Earth orbit turns faster than ~17 revolutions a day (one at the surface); 0 is no orbit.
    "mean motion": (1e-3, 18.0),
}


class TLEError(ValueError):
    """A TLE file or line that cannot be trusted (wrong checksum, length, structure)."""


@dataclass(frozen=True)
class TLE:
    """One element set: the optional name line and the two data lines."""

    name: str
    line1: str
    line2: str

    @property
    def catalog_number(self) -> str:
        """NORAD catalogue number (columns 3-7 of line 1), as text (may be Alpha-5)."""
        return self.line1[2:7].strip()

    @property
    def mean_motion_rev_per_day(self) -> float:
        return float(self.line2[52:63])

    @property
    def eccentricity(self) -> float:
        return float("0." + self.line2[26:33].strip())

    @property
    def inclination_deg(self) -> float:
        return float(self.line2[8:16])

    @property
    def raan_deg(self) -> float:
        return float(self.line2[17:25])

    def perigee_apogee_km(self) -> tuple[float, float]:
        """Perigee and apogee altitudes above the WGS72 equatorial radius (two-body, km)."""
        n = self.mean_motion_rev_per_day * 2.0 * math.pi / 86400.0
        a = (MU_EARTH_WGS72_KM3_S2 / n**2) ** (1.0 / 3.0)
        e = self.eccentricity
        return a * (1.0 - e) - R_EARTH_WGS72_KM, a * (1.0 + e) - R_EARTH_WGS72_KM

    def satrec(self) -> Satrec:
        return Satrec.twoline2rv(self.line1, self.line2, WGS72)


def tle_checksum(line: str) -> int:
    """Modulo-10 checksum of the first 68 columns: digits count as themselves, '-' as 1."""
    total = 0
    for ch in line[:68]:
        if "0" <= ch <= "9":  # ASCII digits only: str.isdigit() also takes '²' and '٣'
            total += ord(ch) - ord("0")
        elif ch == "-":
            total += 1
    return total % 10


def validate_tle_line(line: str, number: int, where: str) -> str:
    """Check one data line and return it without trailing whitespace.

    Args:
        line: the raw line.
        number: 1 or 2, the line number it must carry in column 1.
        where: a human-readable location used in error messages (file, line, satellite).

    Raises:
        TLEError: when the length, the line number, the checksum, a blank column or a field's
            format or range is wrong.
    """
    text = line.rstrip()
    if len(text) != TLE_LINE_LENGTH:
        raise TLEError(
            f"{where}: TLE line {number} has {len(text)} characters, expected "
            f"{TLE_LINE_LENGTH}: {text!r}"
        )
    if not text.isascii():  # SGP4 reads columns of ASCII; '٣' passes isdigit(), float() and \d
        bad = next(ch for ch in text if not ch.isascii())
        raise TLEError(f"{where}: TLE line {number} has the non-ASCII character {bad!r} in "
                       f"column {text.index(bad) + 1}: {text!r}")
    if text[0] != str(number) or text[1] != " ":
        raise TLEError(f"{where}: expected TLE line {number} to start with '{number} ': {text!r}")
    if text[68] not in "0123456789":
        raise TLEError(f"{where}: TLE line {number} has no checksum digit in column 69: {text!r}")
    expected = tle_checksum(text)
    if int(text[68]) != expected:
        raise TLEError(
            f"{where}: TLE line {number} checksum is {text[68]} but the line sums to {expected} "
            f"(corrupted line?): {text!r}"
        )
    for col in _BLANKS[number]:
        if text[col] != " ":
            raise TLEError(f"{where}: TLE line {number} column {col + 1} must be blank, got "
                           f"{text[col]!r} (shifted or corrupted line?): {text!r}")
    for name, start, end, pattern, expected in LINE_FIELDS[number]:
        value = text[start:end]
        if not re.fullmatch(pattern, value, re.ASCII):
            raise TLEError(f"{where}: TLE line {number} {name} (columns {start + 1}-{end}) is "
                           f"{value!r}, expected {expected}: {text!r}")
        if name in _RANGES:
            low, high = _RANGES[name]
            x = float(value)
            inside = low <= x <= high if name == "inclination" else low <= x < high
            if not inside:
                close = "]" if name == "inclination" else ")"
                raise TLEError(f"{where}: TLE line {number} {name} is {x:g}, outside "
                               f"[{low:g}, {high:g}{close}: {text!r}")
        if name == "epoch" and not 1.0 <= float(value[2:]) < 367.0:
            raise TLEError(f"{where}: TLE line 1 epoch day of year is {float(value[2:]):g}, "
                           f"expected 1 to 366.99999999: {text!r}")
    return text


def parse_tle_text(text: str, source: str = "<string>") -> list[TLE]:
    """Parse 2-line or 3-line (name + 2 lines) element sets from text.

    Args:
        text: file contents.
        source: name used in error messages, usually the file path.

    Raises:
        TLEError: on any malformed line, with the source and line number.
    """
    lines = text.splitlines()
    out: list[TLE] = []
    i = 0
    n = len(lines)
    while i < n:
        raw = lines[i]
        if not raw.strip():
            i += 1
            continue
        if raw.startswith("1 ") and i + 1 < n and lines[i + 1].startswith("2 "):
            name, first = "", i
        else:
            name, first = raw.strip(), i + 1
        if first + 1 >= n:
            raise TLEError(f"{source} line {i + 1}: element set {name!r} is missing its data lines")
        label = f"{source} line {first + 1} ({name or 'unnamed'})"
        l1 = validate_tle_line(lines[first], 1, label)
        label2 = f"{source} line {first + 2} ({name or 'unnamed'})"
        l2 = validate_tle_line(lines[first + 1], 2, label2)
        if l1[2:7] != l2[2:7]:
            raise TLEError(
                f"{label}: catalogue numbers differ between line 1 ({l1[2:7]!r}) and line 2 "
                f"({l2[2:7]!r})"
            )
        out.append(TLE(name=name or l1[2:7].strip(), line1=l1, line2=l2))
        i = first + 2
    return out


def load_tle_file(path: str | Path) -> list[TLE]:
    """Read and check every element set of a TLE file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"TLE file not found: {p}")
    return parse_tle_text(p.read_text(encoding="ascii", errors="replace"), source=str(p))


def resolve_tle_file(name: str | Path, folder: Path | None = None) -> Path:
    """Find a TLE file: an existing path, or a name in the shared folder (``.txt`` optional)."""
    p = Path(name)
    if p.is_file():
        return p
    if folder is None:
        from research.paths import tle_dir

        folder = tle_dir()
    for cand in (folder / p, folder / f"{p}.txt"):
        if cand.is_file():
            return cand
    avail = sorted(q.stem for q in folder.glob("*.txt")) if folder.is_dir() else []
    raise FileNotFoundError(
        f"TLE file {str(name)!r} not found (as a path or in {folder}); available: {avail}"
    )


def filter_tles(
    tles: Iterable[TLE],
    *,
    names: Sequence[str] | None = None,
    name_contains: str | None = None,
    name_regex: str | None = None,
    altitude_km: tuple[float, float] | None = None,
    limit: int | None = None,
) -> list[TLE]:
    """Select element sets.

    Args:
        tles: the candidates.
        names: exact names to keep (case-insensitive); unknown names raise ``KeyError``.
        name_contains: keep names containing this text (case-insensitive).
        name_regex: keep names matching this regular expression (``re.search``).
        altitude_km: ``(low, high)``: keep orbits whose perigee and apogee both lie in the band,
            e.g. ``(530, 570)`` for the operational Starlink shells (raising and deorbiting
            satellites drop out).
        limit: keep at most this many (first in file order), for quick runs.
    """
    out = list(tles)
    if names is not None:
        wanted = {n.upper() for n in names}
        have = {t.name.upper() for t in out}
        missing = sorted(wanted - have)
        if missing:
            raise KeyError(f"TLE names not found: {missing[:10]}")
        out = [t for t in out if t.name.upper() in wanted]
    if name_contains:
        key = name_contains.upper()
        out = [t for t in out if key in t.name.upper()]
    if name_regex:
        rx = re.compile(name_regex)
        out = [t for t in out if rx.search(t.name)]
    if altitude_km is not None:
        lo, hi = altitude_km
        if lo > hi:
            raise ValueError(f"altitude_km band must be (low, high), got {altitude_km}")
        keep = []
        for t in out:
            per, apo = t.perigee_apogee_km()
            if lo <= per and apo <= hi:
                keep.append(t)
        out = keep
    if limit is not None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        out = out[:limit]
    return out


def unique_node_ids(tles: Sequence[TLE]) -> list[str]:
    """Node ids ``sat-<NAME>`` (spaces as ``_``), with ``-<catalogue number>`` on duplicates."""
    base = ["sat-" + re.sub(r"\s+", "_", t.name.strip()) for t in tles]
    counts: dict[str, int] = {}
    for b in base:
        counts[b] = counts.get(b, 0) + 1
    ids = [b if counts[b] == 1 else f"{b}-{t.catalog_number}"
           for b, t in zip(base, tles, strict=True)]
    seen: dict[str, int] = {}
    out = []
    for i in ids:  # same name and number twice (a duplicated entry): number them
        k = seen.get(i, 0)
        seen[i] = k + 1
        out.append(i if k == 0 else f"{i}-{k}")
    return out

"""Physical constants, defined once (SI-derived units in the names).

No torch and no numpy here: any module of ``research`` may import it. Values are exact where the SI
or the IAU defines them; each carries its source.
"""

from __future__ import annotations

C_M_S = 299_792_458.0
"""Speed of light in vacuum, m/s (exact, SI definition of the metre)."""
C_KM_S = C_M_S / 1000.0
"""Speed of light in vacuum, km/s (299 792.458)."""

BOLTZMANN_J_K = 1.380649e-23
"""Boltzmann constant, J/K (exact, SI 2019)."""
BOLTZMANN_DBW = -228.5991
"""``10 log10(k)`` in dBW/(K Hz), to 4 decimals (-228.59917): the ``228.6`` of link budgets."""

R_EARTH_KM = 6378.137
"""Earth's equatorial radius, km: the WGS-84 semi-major axis ``a`` (NIMA TR8350.2, 3rd ed.,
table 3.1). Geodetic conversions, Earth blockage of ISLs and the eclipse cylinder use it."""
WGS84_F = 1.0 / 298.257223563
"""WGS-84 flattening ``f`` (NIMA TR8350.2, table 3.1)."""

R_EARTH_WGS72_KM = 6378.135
"""WGS-72 equatorial radius, km: the one SGP4 uses (Vallado et al. 2006, "Revisiting Spacetrack
Report #3", AIAA 2006-6753). Only for TLE mean motion <-> altitude, so that Walker shells built
with ``sgp4init(WGS72, ...)`` sit at the altitude asked for; keep it apart from WGS-84."""
MU_EARTH_WGS72_KM3_S2 = 398_600.8
"""Earth's gravitational parameter, km^3/s^2, WGS-72 (as in SGP4, same source as above)."""

OMEGA_EARTH_RAD_S = 7.2921159e-5
"""Earth's sidereal rotation rate, rad/s: ``2 pi / 86164.0905 s`` rounded (IERS: 7.292115e-5)."""

AU_KM = 149_597_870.7
"""Astronomical unit, km (exact, IAU 2012 Resolution B2)."""

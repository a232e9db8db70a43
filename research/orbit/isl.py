"""Inter-satellite links: topology (ring, +Grid, nearest) and per-step state (up, range, rate).

+Grid is the usual four-terminal layout of Walker shells: the next and previous satellite in the
plane, and the same slot in the neighbouring planes. Across the seam of a Walker-delta shell
(plane P-1 to plane 0) slot ``s`` meets slot ``s+F``; a Walker-star shell has no links across
its seam, where the planes counter-rotate. ``nearest`` picks, for satellites without planes
(TLE sets), the ``k`` nearest satellites at the plan epoch that are in range and in sight, and
keeps those links (laser terminals are not re-pointed every step). A link is up at a step when
its range is within the maximum, the line of sight clears the Earth plus a grazing altitude,
and (inter-plane only, if configured) neither end is above a latitude cut-off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from research.constants import R_EARTH_KM
from research.orbit.constellation import Constellation

KIND_GROUND, KIND_INTRA, KIND_INTER, KIND_NEAREST = 0, 1, 2, 3
KIND_NAMES = {KIND_GROUND: "ground", KIND_INTRA: "isl-intra", KIND_INTER: "isl-inter",
              KIND_NEAREST: "isl-nearest"}
TOPOLOGIES = ("none", "ring", "grid", "nearest")


@dataclass(frozen=True)
class IslConfig:
    """How satellites link to each other.

    Args:
        topology: ``none``, ``ring`` (intra-plane), ``grid`` (+Grid) or ``nearest``.
        nearest_k: links per satellite for ``nearest`` (also added on top of ``grid`` if
            ``add_nearest`` is set).
        add_nearest: add ``nearest_k`` nearest-neighbour links to ``ring``/``grid``.
        max_range_km: maximum link range; ``None`` takes the ISL link model's range.
        grazing_altitude_km: the line of sight must clear the Earth by this much (80 km keeps
            optical links out of the mesosphere).
        polar_cutoff_lat_deg: inter-plane links go down while either end is above this
            |latitude| (``None``: never).
    """

    topology: str = "grid"
    nearest_k: int = 4
    add_nearest: bool = False
    max_range_km: float | None = None
    grazing_altitude_km: float = 80.0
    polar_cutoff_lat_deg: float | None = None

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"unknown ISL topology {self.topology!r}; valid: {list(TOPOLOGIES)}")
        if self.nearest_k < 1:
            raise ValueError(f"isl nearest_k must be >= 1, got {self.nearest_k}")
        if self.max_range_km is not None and not self.max_range_km > 0:
            raise ValueError(f"isl max_range_km must be positive, got {self.max_range_km}")
        if self.grazing_altitude_km < 0:
            raise ValueError(
                f"isl grazing_altitude_km must be >= 0, got {self.grazing_altitude_km}"
            )
        if self.polar_cutoff_lat_deg is not None and not 0 < self.polar_cutoff_lat_deg <= 90:
            raise ValueError(f"isl polar_cutoff_lat_deg must be in (0, 90], got "
                             f"{self.polar_cutoff_lat_deg}")

    def to_dict(self) -> dict:
        return asdict(self)


def grid_edges(c: Constellation, inter_plane: bool = True) -> tuple[np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """Ring (and +Grid) edges of a Walker shell as ``(a, b, kind)`` index arrays, ``a < b``."""
    if not c.is_walker:
        raise ValueError(
            f"ring/grid ISLs need a Walker shell with planes; this constellation is {c.kind!r}: "
            "use isl topology 'nearest'"
        )
    n_p, n_s = int(c.params["planes"]), int(c.params["sats_per_plane"])
    f = int(c.params.get("phasing", 0))
    idx = {(int(p), int(s)): i for i, (p, s) in enumerate(zip(c.planes, c.slots, strict=True))}
    edges: dict[tuple[int, int], int] = {}

    def add(u: int, v: int, kind: int) -> None:
        if u != v:
            edges.setdefault((min(u, v), max(u, v)), kind)

    for (p, s), i in idx.items():
        if n_s > 1:
            add(i, idx[(p, (s + 1) % n_s)], KIND_INTRA)
        if inter_plane and n_p > 1:
            if p + 1 < n_p:
                add(i, idx[(p + 1, s)], KIND_INTER)
            elif c.kind == "walker-delta" and n_p > 2:
                add(i, idx[(0, (s + f) % n_s)], KIND_INTER)
    keys = sorted(edges)
    a = np.array([k[0] for k in keys], dtype=np.int64)
    b = np.array([k[1] for k in keys], dtype=np.int64)
    kind = np.array([edges[k] for k in keys], dtype=np.int8)
    return a, b, kind


def nearest_edges(r_km: np.ndarray, k: int, max_range_km: float | None,
                  grazing_altitude_km: float, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Undirected links to each satellite's ``k`` nearest visible neighbours, ``(N, 3)`` input.

    Satellites with an invalid position (NaN, e.g. decayed) get no links.
    """
    n = len(r_km)
    kk = min(k, n - 1)
    if kk <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lim = np.inf if max_range_km is None else max_range_km
    r = np.where(np.isfinite(r_km), r_km, np.nan)
    r2 = np.einsum("nk,nk->n", r, r)
    m = min(n - 1, 4 * kk)  # candidates checked for line of sight
    keys = []
    for lo in range(0, n, block):
        blk = r[lo:lo + block]
        rows = np.arange(len(blk))
        d2 = r2[lo:lo + block, None] + r2[None, :] - 2.0 * (blk @ r.T)  # BLAS, (B, N)
        d2[rows, lo + rows] = np.inf
        d2 = np.where(np.isfinite(d2) & (d2 <= lim * lim), d2, np.inf)
        cand = np.argpartition(d2, m - 1, axis=1)[:, :m]  # (B, m) nearest in range
        dc = np.take_along_axis(d2, cand, axis=1)
        los = line_of_sight(blk[:, None, :], r[cand], grazing_altitude_km)
        dc = np.where(los & np.isfinite(dc), dc, np.inf)
        pick = np.argsort(dc, axis=1)[:, :kk]
        nn = np.take_along_axis(cand, pick, axis=1)
        good = np.isfinite(np.take_along_axis(dc, pick, axis=1))
        i = np.broadcast_to((lo + rows)[:, None], nn.shape)[good]
        j = nn[good]
        keys.append(np.minimum(i, j) * n + np.maximum(i, j))
    u = np.unique(np.concatenate(keys))
    return u // n, u % n


def line_of_sight(p: np.ndarray, q: np.ndarray, grazing_altitude_km: float) -> np.ndarray:
    """True where the segment p-q stays above ``R_earth + grazing_altitude_km`` (km inputs)."""
    d = q - p
    dd = np.einsum("...k,...k->...", d, d)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(-np.einsum("...k,...k->...", p, d) / dd, 0.0, 1.0)
    t = np.where(dd > 0, t, 0.0)
    closest = p + t[..., None] * d
    rg = R_EARTH_KM + grazing_altitude_km
    return np.einsum("...k,...k->...", closest, closest) >= rg * rg


def isl_chunk(xyz: np.ndarray, r2: np.ndarray, a: np.ndarray, b: np.ndarray,
              kind: np.ndarray, cfg: IslConfig, max_range_km: float | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Up flag and range (km) of each edge at each chunk time, both ``(E, Tc)``.

    Ranges are frame-independent, so TEME positions are used directly, as float32 component
    planes (sub-metre at LEO radii, and half the memory traffic of float64).

    Args:
        xyz: positions as ``(3, N, Tc)`` float32.
        r2: squared radius per satellite and time, ``(N, Tc)`` float32.
        a, b, kind: edge end points and kinds.
        cfg: ISL constraints.
        max_range_km: maximum range (``None``: unlimited).
    """
    xa, ya, za = xyz[0][a], xyz[1][a], xyz[2][a]
    dx = xyz[0][b]
    dx -= xa
    dy = xyz[1][b]
    dy -= ya
    dz = xyz[2][b]
    dz -= za
    dd = dx * dx
    dd += dy * dy
    dd += dz * dz
    rg = R_EARTH_KM + cfg.grazing_altitude_km
    # A chord no longer than 2 sqrt(r_min^2 - rg^2) between points at radius >= r_min cannot
    # dip below rg: test the line of sight only on the (usually zero) longer links.
    r2_min = float(np.nanmin(r2)) if np.isfinite(r2).any() else 0.0
    long_ = np.flatnonzero(dd.ravel() > 4.0 * (r2_min - rg * rg) * (1.0 - 1e-5))
    blocked = np.zeros(dd.shape, bool)
    if len(long_):
        ea, ta = np.divmod(long_, dd.shape[1])
        pa = xyz[:, a[ea], ta].astype(np.float64)  # (3, L)
        d = xyz[:, b[ea], ta].astype(np.float64) - pa
        ddl = np.einsum("kl,kl->l", d, d)
        npd = -np.einsum("kl,kl->l", pa, d)  # -(pa . d) > 0: closest point lies beyond pa
        # Blocked when that point is inside the segment and below the grazing sphere:
        # |pa|^2 - npd^2/dd < rg^2.
        bl = (npd > 0) & (npd < ddl) & (np.einsum("kl,kl->l", pa, pa) * ddl - npd * npd
                                         < rg * rg * ddl)
        blocked.ravel()[long_] = bl
    del dx, dy, dz, xa, ya, za
    dist = np.sqrt(dd, out=dd)
    up = ~blocked
    if max_range_km is not None:
        up &= dist <= max_range_km
    if cfg.polar_cutoff_lat_deg is not None:
        inter = np.nonzero(kind == KIND_INTER)[0]
        if len(inter):
            s2 = np.float32(np.sin(np.radians(cfg.polar_cutoff_lat_deg)) ** 2)
            z2 = xyz[2] * xyz[2]
            polar = z2 > r2 * s2  # (N, Tc): |latitude| above the cut-off
            up[inter] &= ~(polar[a[inter]] | polar[b[inter]])
    up &= np.isfinite(dist)
    return up, dist

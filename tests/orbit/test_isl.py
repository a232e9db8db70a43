"""ISL topologies, line of sight, maximum range and polar cut-off."""

from __future__ import annotations

import numpy as np
import pytest

from research.orbit import (
    IslConfig,
    TimeGrid,
    build_contact_plan,
    constellation_preset,
    walker,
)
from research.orbit.isl import KIND_INTER, grid_edges, isl_chunk, line_of_sight, nearest_edges

EPOCH = "2024-07-16T12:00:00Z"


def test_grid_edges_delta_and_star():
    d = walker(6, 11, 550, 53, phasing=2, epoch=EPOCH)
    a, b, kind = grid_edges(d)
    assert len(a) == 66 + 66 and np.all(a < b)
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    idx = {n: i for i, n in enumerate(d.names)}
    for s in range(11):  # seam of a delta shell: (P-1, s) meets (0, s + F)
        u, v = idx[f"sat-P05-S{s:02d}"], idx[f"sat-P00-S{(s + 2) % 11:02d}"]
        assert (min(u, v), max(u, v)) in pairs
    s_ = walker(6, 11, 780, 86.4, kind="star", epoch=EPOCH)
    a, _, kind = grid_edges(s_)
    assert len(a) == 66 + 55 and (kind == KIND_INTER).sum() == 55  # no links across the seam
    ring = grid_edges(d, inter_plane=False)
    assert len(ring[0]) == 66


def test_grid_needs_planes():
    from research.orbit.constellation import Constellation, circular_satrec

    c = Constellation(["sat-a", "sat-b"], [circular_satrec(EPOCH, 550, 53, 0, m) for m in (0, 10)],
                      [-1, -1], [-1, -1], "tle")
    with pytest.raises(ValueError, match="use isl topology 'nearest'"):
        grid_edges(c)


def test_line_of_sight():
    p = np.array([7000.0, 0, 0])
    assert not line_of_sight(p, -p, 80.0)  # through the Earth
    assert line_of_sight(p, np.array([6900.0, 1000.0, 0]), 80.0)
    q = np.array([7000.0 * np.cos(1.0), 7000.0 * np.sin(1.0), 0])  # chord dips to 6143 km
    assert not line_of_sight(p, q, 80.0)


def test_isl_chunk_matches_brute_force():
    rng = np.random.default_rng(0)
    n, tc = 40, 7
    u = rng.normal(size=(n, tc, 3))
    r = u / np.linalg.norm(u, axis=-1, keepdims=True) * rng.uniform(6900, 7400, (n, tc, 1))
    a, b = np.triu_indices(n, 1)
    xyz = np.moveaxis(r, -1, 0).astype(np.float32)
    r2 = np.einsum("knt,knt->nt", xyz, xyz)
    cfg = IslConfig(topology="nearest", grazing_altitude_km=80.0)
    up, dist = isl_chunk(xyz, r2, a, b, np.zeros(len(a), np.int8), cfg, 9000.0)
    ref_d = np.linalg.norm(r[b] - r[a], axis=-1)
    ref_up = line_of_sight(r[a], r[b], 80.0) & (ref_d <= 9000.0)
    assert np.allclose(dist, ref_d, atol=2e-3)
    assert (up == ref_up).mean() > 0.999 and up.any() and (~up).any()


def test_nearest_edges_match_brute_force():
    c = walker(4, 8, 550, 53, epoch=EPOCH)
    grid = TimeGrid(EPOCH, 10, 10)
    from research.orbit import propagate_teme

    r, _, _ = propagate_teme(c, *grid.jd_utc())
    p = r[:, 0]
    a, b = nearest_edges(p, 3, 6000.0, 80.0)
    assert np.all(a < b) and len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(a)
    edges = set(zip(a.tolist(), b.tolist(), strict=True))
    expected = set()
    for i in range(len(p)):
        d = np.linalg.norm(p - p[i], axis=1)
        ok = [j for j in np.argsort(d) if j != i and d[j] <= 6000.0
              and line_of_sight(p[i], p[j], 80.0)]
        expected |= {(min(i, j), max(i, j)) for j in ok[:3]}
    assert edges == expected and len(edges) > 0


def test_max_range_and_polar_cutoff():
    c = constellation_preset("iridium_like", epoch=EPOCH)
    grid = TimeGrid(EPOCH, 2 * 3600, 20)
    cut = build_contact_plan(c, [], grid, isl=IslConfig(topology="grid", polar_cutoff_lat_deg=60),
                             eclipse=False)
    free = build_contact_plan(c, [], grid, isl=IslConfig(topology="grid"), eclipse=False)
    inter_cut = [w for w in cut.contacts(kind="isl-inter")]
    inter_free = [w for w in free.contacts(kind="isl-inter")]
    assert sum(w.duration_s for w in inter_cut) < 0.8 * sum(w.duration_s for w in inter_free)
    assert all(w.duration_s == grid.end_s for w in cut.contacts(kind="isl-intra"))
    short = build_contact_plan(c, [], grid, isl=IslConfig(topology="grid", max_range_km=1000),
                               eclipse=False)
    # In-plane neighbours are ~4000 km apart; neighbouring planes only meet near the poles.
    assert not short.contacts(kind="isl-intra")
    assert 0 < sum(w.duration_s for w in short.contacts(kind="isl-inter")) < 0.3 * sum(
        w.duration_s for w in inter_free)
    with pytest.raises(ValueError, match="unknown ISL topology 'mesh'"):
        IslConfig(topology="mesh")

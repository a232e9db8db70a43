"""A hand-made contact plan with constant-rate windows: closed forms for network tests."""

from __future__ import annotations

import math

import numpy as np

from research.orbit import ContactPlan, TimeGrid
from research.orbit.link_budget import OpticalLink

RATE = 8e6  # bit/s: 1 MB per second on every link
RANGE_KM = 1000.0
DELAY = RANGE_KM / 299_792.458


def toy_plan(windows: dict[tuple[int, int, int], list[tuple[float, float]]], n_sat: int,
             n_gs: int, horizon: float = 10_000.0,
             far_until: dict[tuple[int, int, int], float] | None = None) -> ContactPlan:
    """Satellites ``s0..``, stations ``g0..``; ``windows[(a, b, kind)] = [(start, end), ...]``.

    Every link runs at :data:`RATE` in both directions at a constant range of 1000 km, except
    before ``far_until[key]`` s, where it is out of the terminal's range (rate 0).
    """
    step = 10.0
    link_a, link_b, kinds = [], [], []
    w_link, w_start, w_end, w_k0, w_n, w_off = [], [], [], [], [], []
    ranges: list[float] = []
    for li, ((a, b, kind), wins) in enumerate(windows.items()):
        link_a.append(a)
        link_b.append(b)
        kinds.append(kind)
        for s, e in wins:
            k0 = int(s // step)
            n = int(math.ceil(e / step)) - k0
            w_link.append(li)
            w_start.append(s)
            w_end.append(e)
            w_k0.append(k0)
            w_n.append(n)
            w_off.append(len(ranges))
            far = (far_until or {}).get((a, b, kind), -1.0)
            ranges.extend([9e3 if (k0 + i) * step < far else RANGE_KM for i in range(n)])
    model = OpticalLink("const", RATE, 5e6, 10.0)
    return ContactPlan(
        grid=TimeGrid("2024-07-16T12:00:00Z", horizon, step),
        satellites=[f"s{i}" for i in range(n_sat)], stations=[f"g{i}" for i in range(n_gs)],
        planes=np.zeros(n_sat), link_a=np.array(link_a), link_b=np.array(link_b),
        link_kind=np.array(kinds), win_link=np.array(w_link), win_start=np.array(w_start),
        win_end=np.array(w_end), win_k0=np.array(w_k0), win_n=np.array(w_n),
        win_off=np.array(w_off), range_km=np.array(ranges),
        models={"downlink": model, "uplink": model, "isl": model},
    )

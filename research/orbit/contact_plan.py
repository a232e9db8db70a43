"""The ContactPlan: who sees whom, when, at what rate and delay; built once, saved, queried.

Storage is columnar. Links (satellite-ground and ISLs) have contact windows; each window holds
the range and range rate at the grid steps inside it. The state at a grid step holds until the
next one (sample-and-hold); ground windows start and end at refined times between steps, ISL
windows on steps. Rates come from the link models at query time (downlink for satellite ->
ground, uplink for ground -> satellite, the ISL model both ways), so a saved plan is geometry
plus the models that were configured. Saved as one ``.npz`` (no pickle) with a JSON header.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from research.constants import C_KM_S
from research.orbit.isl import KIND_GROUND, KIND_NAMES
from research.orbit.link_budget import LinkModel, doppler_shift_hz, link_from_dict
from research.orbit.routing import TransferResult, earliest_transfer
from research.orbit.timegrid import TimeGrid

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Contact:
    """One contact window of a link: ``a`` -> ``b`` naming order is (satellite, station)."""

    a: str
    b: str
    kind: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class ContactPlan:
    """A time-varying network of satellites and ground stations (see module docstring).

    Build it with :func:`research.orbit.builder.build_contact_plan` or load it with
    :meth:`ContactPlan.load`; times are seconds from ``grid.epoch``.
    """

    def __init__(self, *, grid: TimeGrid, satellites: Sequence[str], stations: Sequence[str],
                 planes: np.ndarray, link_a: np.ndarray, link_b: np.ndarray,
                 link_kind: np.ndarray, win_link: np.ndarray, win_start: np.ndarray,
                 win_end: np.ndarray, win_k0: np.ndarray, win_n: np.ndarray,
                 win_off: np.ndarray, range_km: np.ndarray,
                 models: dict[str, LinkModel], sunlit_bits: np.ndarray | None = None,
                 meta: dict | None = None):
        self.grid = grid
        self.satellites = list(satellites)
        self.stations = list(stations)
        self.nodes = self.satellites + self.stations
        self._index = {n: i for i, n in enumerate(self.nodes)}
        if len(self._index) != len(self.nodes):
            raise ValueError("node ids must be unique across satellites and stations")
        self._planes = np.asarray(planes, dtype=np.int32)
        self.link_a = np.asarray(link_a, dtype=np.int64)
        self.link_b = np.asarray(link_b, dtype=np.int64)
        self.link_kind = np.asarray(link_kind, dtype=np.int8)
        order = np.lexsort((win_start, win_link))
        self.win_link = np.asarray(win_link, dtype=np.int64)[order]
        self.win_start = np.asarray(win_start, dtype=np.float64)[order]
        self.win_end = np.asarray(win_end, dtype=np.float64)[order]
        self.win_k0 = np.asarray(win_k0, dtype=np.int64)[order]
        self.win_n = np.asarray(win_n, dtype=np.int64)[order]
        self.win_off = np.asarray(win_off, dtype=np.int64)[order]
        self.range_km = np.asarray(range_km, dtype=np.float32)
        missing = {"downlink", "uplink", "isl"} - set(models)
        if missing:
            raise ValueError(f"link models missing: {sorted(missing)}")
        self.models = dict(models)
        self.sunlit_bits = sunlit_bits
        self.meta = dict(meta or {})
        n_links = len(self.link_a)
        self.link_wbeg = np.searchsorted(self.win_link, np.arange(n_links), side="left")
        self.link_wend = np.searchsorted(self.win_link, np.arange(n_links), side="right")
        self._pair: dict[tuple[int, int], int] = {
            (int(a), int(b)): i
            for i, (a, b) in enumerate(zip(self.link_a, self.link_b, strict=True))
        }
        self._node_windows: list[np.ndarray] | None = None
        self._adjacency: list[list[tuple[int, bool, int]]] | None = None
        self._profiles: dict[tuple[int, bool], tuple] = {}
        self._n_sat = len(self.satellites)

    # ------------------------------------------------------------------ basics
    @property
    def times(self) -> np.ndarray:
        """Grid times, seconds from the epoch."""
        return self.grid.times

    @property
    def horizon_s(self) -> float:
        return self.grid.end_s

    @property
    def step_s(self) -> float:
        return self.grid.step_s

    @property
    def has_isl(self) -> bool:
        """Whether any satellite can relay through another (an inter-satellite link exists)."""
        return bool((self.link_kind != KIND_GROUND).any())

    def index(self, node: str) -> int:
        try:
            return self._index[node]
        except KeyError:
            raise KeyError(
                f"unknown node {node!r}; nodes look like {self.nodes[:3]} ... "
                f"{self.stations[:3]} ({len(self.satellites)} satellites, "
                f"{len(self.stations)} stations)"
            ) from None

    def is_station(self, node: str) -> bool:
        return self.index(node) >= self._n_sat

    def plane_of(self, sat: str) -> int:
        """Plane index of a satellite (-1 when unknown, e.g. TLE satellites)."""
        i = self.index(sat)
        if i >= self._n_sat:
            raise ValueError(f"{sat!r} is a ground station, not a satellite")
        return int(self._planes[i])

    def _check_t(self, t: float) -> float:
        t = float(t)
        if not (0.0 <= t < self.horizon_s):
            raise ValueError(f"time {t} s is outside the plan horizon [0, {self.horizon_s}) s")
        return t

    # ------------------------------------------------------------------ links at time t
    def _link(self, a: str, b: str) -> tuple[int, bool]:
        ia, ib = self.index(a), self.index(b)
        if (ia, ib) in self._pair:
            return self._pair[(ia, ib)], True
        if (ib, ia) in self._pair:
            return self._pair[(ib, ia)], False
        return -1, True

    def model_for(self, link: int, forward: bool) -> LinkModel:
        """The link model for one direction (forward = ``link_a -> link_b``)."""
        if self.link_kind[link] == KIND_GROUND:
            return self.models["downlink" if forward else "uplink"]
        return self.models["isl"]

    def window_at(self, link: int, t: float) -> int:
        """Index of the window of ``link`` containing ``t``, or -1."""
        wb, we = self.link_wbeg[link], self.link_wend[link]
        pos = wb + int(np.searchsorted(self.win_start[wb:we], t, side="right")) - 1
        if pos >= wb and t < self.win_end[pos]:
            return pos
        return -1

    def _sample(self, w: int, t: float) -> int:
        j = int(math.floor(t / self.step_s + 1e-9)) - int(self.win_k0[w])
        return int(self.win_off[w]) + min(max(j, 0), int(self.win_n[w]) - 1)

    def _state(self, a: str, b: str, t: float) -> tuple[int, bool, int]:
        t = self._check_t(t)
        link, fwd = self._link(a, b)
        if link < 0:
            return -1, fwd, -1
        w = self.window_at(link, t)
        return link, fwd, (self._sample(w, t) if w >= 0 else -1)

    def in_contact(self, a: str, b: str, t: float) -> bool:
        return self._state(a, b, t)[2] >= 0

    def range_m(self, a: str, b: str, t: float) -> float:
        """Range at ``t`` in metres (``inf`` when not in contact)."""
        _, _, s = self._state(a, b, t)
        return float(self.range_km[s]) * 1e3 if s >= 0 else math.inf

    def rate_bps(self, a: str, b: str, t: float) -> float:
        """Rate from ``a`` to ``b`` at ``t`` (0 when not in contact)."""
        link, fwd, s = self._state(a, b, t)
        if s < 0:
            return 0.0
        return float(self.model_for(link, fwd).rate_bps(float(self.range_km[s]) * 1e3))

    def delay_s(self, a: str, b: str, t: float) -> float:
        """One-way propagation delay at ``t`` (``inf`` when not in contact)."""
        _, _, s = self._state(a, b, t)
        return float(self.range_km[s]) / C_KM_S if s >= 0 else math.inf

    def range_rate_m_s(self, a: str, b: str, t: float) -> float:
        """Range rate at ``t`` in m/s (``nan`` when not in contact).

        Differentiated from the range samples: 5-point central differences (4th order, a few
        cm/s at 10 s steps), 3-point or one-sided near a window's ends.
        """
        link, _, s = self._state(a, b, t)
        if s < 0:
            return math.nan
        w = self.window_at(link, float(t))
        return self._rdot(s, int(self.win_off[w]), int(self.win_n[w])) * 1e3

    def _rdot(self, s: int, off: int, n: int) -> float:
        h = self.step_s
        i = s - off
        if n == 1:
            return 0.0
        r = self.range_km[max(s - 2, off):min(s + 3, off + n)].astype(np.float64)
        r = dict(zip(range(max(s - 2, off), min(s + 3, off + n)), r.tolist(), strict=True))
        if 2 <= i <= n - 3:
            return float((r[s - 2] - 8.0 * r[s - 1] + 8.0 * r[s + 1] - r[s + 2]) / (12.0 * h))
        if 1 <= i <= n - 2:
            return float((r[s + 1] - r[s - 1]) / (2.0 * h))
        sign = 1.0 if i == 0 else -1.0
        if n >= 3:
            return float(sign * (-3.0 * r[s] + 4.0 * r[s + int(sign)] - r[s + 2 * int(sign)])
                         / (2.0 * h))
        return float(sign * (r[s + int(sign)] - r[s]) / h)

    def doppler_hz(self, a: str, b: str, t: float) -> float:
        """Doppler shift of the ``a -> b`` carrier at ``t`` (``nan`` when not in contact)."""
        link, fwd, _ = self._state(a, b, t)
        rdot = self.range_rate_m_s(a, b, t)
        if math.isnan(rdot):
            return math.nan
        return float(doppler_shift_hz(rdot, self.model_for(link, fwd).carrier_hz))

    def _windows_of_node(self, i: int) -> np.ndarray:
        if self._node_windows is None:
            wa = self.link_a[self.win_link]
            wb = self.link_b[self.win_link]
            nodes = np.concatenate([wa, wb])
            wins = np.concatenate([np.arange(len(wa))] * 2)
            order = np.argsort(nodes, kind="stable")
            nodes, wins = nodes[order], wins[order]
            cuts = np.searchsorted(nodes, np.arange(len(self.nodes) + 1))
            self._node_windows = [wins[cuts[k]:cuts[k + 1]] for k in range(len(self.nodes))]
        return self._node_windows[i]

    def neighbours(self, node: str, t: float) -> list[str]:
        """Nodes linked to ``node`` at time ``t`` (any link kind), sorted."""
        t = self._check_t(t)
        i = self.index(node)
        w = self._windows_of_node(i)
        w = w[(self.win_start[w] <= t) & (t < self.win_end[w])]
        links = self.win_link[w]
        other = np.where(self.link_a[links] == i, self.link_b[links], self.link_a[links])
        return sorted(self.nodes[k] for k in other)

    def visible_pairs(self, t: float) -> list[tuple[str, str, float]]:
        """``(satellite, station, downlink rate bit/s)`` for every ground contact at ``t``."""
        t = self._check_t(t)
        kinds = self.link_kind[self.win_link]
        w = np.nonzero((kinds == KIND_GROUND) & (self.win_start <= t) & (t < self.win_end))[0]
        out = []
        model = self.models["downlink"]
        for wi in w:
            s = self._sample(int(wi), t)
            link = self.win_link[wi]
            rate = float(model.rate_bps(float(self.range_km[s]) * 1e3))
            out.append((self.nodes[self.link_a[link]], self.nodes[self.link_b[link]], rate))
        return sorted(out)

    def contacts(self, node: str | None = None, kind: str | None = "ground") -> list[Contact]:
        """Contact windows (optionally of one node and/or one kind), ordered by start."""
        w = np.arange(len(self.win_link)) if node is None else self._windows_of_node(
            self.index(node))
        if kind is not None:
            valid = list(KIND_NAMES.values())
            if kind not in valid and kind != "isl":
                raise ValueError(f"unknown contact kind {kind!r}; valid: {valid + ['isl']}")
            k = self.link_kind[self.win_link[w]]
            w = w[(k != KIND_GROUND) if kind == "isl" else
                  (k == {v: c for c, v in KIND_NAMES.items()}[kind])]
        w = w[np.argsort(self.win_start[w], kind="stable")]
        return [Contact(self.nodes[self.link_a[self.win_link[i]]],
                        self.nodes[self.link_b[self.win_link[i]]],
                        KIND_NAMES[int(self.link_kind[self.win_link[i]])],
                        float(self.win_start[i]), float(self.win_end[i])) for i in w]

    # ------------------------------------------------------------------ rate profiles
    def segment_bounds(self, w: int) -> np.ndarray:
        """Times bounding the samples of window ``w`` (``n + 1`` values)."""
        k0, n = int(self.win_k0[w]), int(self.win_n[w])
        inner = (k0 + 1 + np.arange(n - 1)) * self.step_s
        return np.concatenate([[self.win_start[w]], inner, [self.win_end[w]]])

    def window_profile(self, w: int, forward: bool) -> tuple[np.ndarray, ...]:
        """``(bounds, rates, cumulative bits, cumulative active time)`` of a window, cached."""
        key = (w, forward)
        prof = self._profiles.get(key)
        if prof is None:
            bounds = self.segment_bounds(w)
            off, n = int(self.win_off[w]), int(self.win_n[w])
            model = self.model_for(int(self.win_link[w]), forward)
            rates = model.rate_bps(self.range_km[off:off + n].astype(np.float64) * 1e3)
            dur = np.diff(bounds)
            cum = np.concatenate([[0.0], np.cumsum(rates * dur)])
            act = np.concatenate([[0.0], np.cumsum(np.where(rates > 0, dur, 0.0))])
            prof = (bounds, rates, cum, act)
            if len(self._profiles) > 200_000:
                self._profiles.clear()
            self._profiles[key] = prof
        return prof

    def adjacency(self, i: int) -> list[tuple[int, bool, int]]:
        """``(link, forward, other node)`` for every link of node ``i``."""
        if self._adjacency is None:
            adj: list[list[tuple[int, bool, int]]] = [[] for _ in self.nodes]
            pairs = zip(self.link_a.tolist(), self.link_b.tolist(), strict=True)
            for link, (a, b) in enumerate(pairs):
                adj[a].append((link, True, b))
                adj[b].append((link, False, a))
            self._adjacency = adj
        return self._adjacency[i]

    def transfer(self, src: str | Sequence[str], dst: str | Sequence[str], n_bytes: float,
                 t0: float, *,
                 relay_via_stations: bool = False) -> TransferResult:
        """Earliest arrival of ``n_bytes`` from ``src`` to ``dst`` starting at ``t0``.

        ``src`` and ``dst`` may each be several nodes (e.g. ``plan.stations``, which share a
        terrestrial network): the bytes leave whichever source gets them to whichever
        destination first, found in one search.

        Store-and-forward over the time-varying graph: each hop waits for its next contact,
        transmits (resuming in later contacts of the same link if one ends), then the bytes
        propagate. Returns a :class:`TransferResult` (unpacks as ``t_arrival, path, energy_j``)
        with the waiting / transmission / propagation split. Raises
        :class:`research.orbit.routing.UnreachableError` when no route completes within the
        horizon.
        """
        return earliest_transfer(self, src, dst, n_bytes, t0,
                                 relay_via_stations=relay_via_stations)

    # ------------------------------------------------------------------ eclipse
    def sunlit(self, sat: str, t: float) -> bool:
        """Whether ``sat`` is in sunlight at ``t`` (requires a plan built with eclipse)."""
        bits = self._sunlit_matrix()
        return bool(bits[self.index(sat), int(self._check_t(t) // self.step_s)])

    def sunlit_fraction(self) -> dict[str, float]:
        """Fraction of grid steps each satellite spends in sunlight."""
        bits = self._sunlit_matrix()
        return dict(zip(self.satellites, bits.mean(axis=1).astype(float).tolist(), strict=True))

    def _sunlit_matrix(self) -> np.ndarray:
        if self.sunlit_bits is None:
            raise RuntimeError("this plan was built without eclipse (set eclipse: true)")
        return np.unpackbits(self.sunlit_bits, axis=1, count=self.grid.n_steps).astype(bool)

    # ------------------------------------------------------------------ summary / IO
    def summary(self) -> dict:
        """Counts and means for reports: contacts are satellite-ground windows."""
        ground = self.link_kind[self.win_link] == KIND_GROUND
        dur = self.win_end - self.win_start
        out = {
            "satellites": len(self.satellites),
            "stations": len(self.stations),
            "horizon_s": self.horizon_s,
            "step_s": self.step_s,
            "contacts": int(ground.sum()),
            "mean_contact_duration_s": float(dur[ground].mean()) if ground.any() else 0.0,
            "mean_downlink_rate_bps": self._mean_rate(ground, "downlink"),
            "isl_links": int((self.link_kind != KIND_GROUND).sum()),
            "isl_windows": int((~ground).sum()),
            "mean_isl_rate_bps": self._mean_rate(~ground, "isl"),
        }
        if self.sunlit_bits is not None:
            out["mean_sunlit_fraction"] = float(np.mean(list(self.sunlit_fraction().values())))
        return out

    def _mean_rate(self, mask: np.ndarray, model: str) -> float:
        """Time-weighted mean rate over the windows in ``mask``."""
        w = np.nonzero(mask)[0]
        if len(w) == 0:
            return 0.0
        idx = np.concatenate([np.arange(o, o + n) for o, n in
                              zip(self.win_off[w], self.win_n[w], strict=True)])
        rates = self.models[model].rate_bps(self.range_km[idx].astype(np.float64) * 1e3)
        # Segment durations: full steps, except the first / last of each window.
        dur = np.full(len(idx), float(self.step_s))
        first = np.cumsum(np.concatenate([[0], self.win_n[w][:-1]]))
        last = first + self.win_n[w] - 1
        dur[first] = (self.win_k0[w] + 1) * self.step_s - self.win_start[w]
        dur[last] = self.win_end[w] - (self.win_k0[w] + self.win_n[w] - 1) * self.step_s
        single = self.win_n[w] == 1
        dur[first[single]] = (self.win_end - self.win_start)[w][single]
        return float(np.sum(rates * dur) / np.sum(dur))

    def save(self, path: str | Path) -> Path:
        """Write the plan as an ``.npz`` file (columnar, no pickle)."""
        p = Path(path)
        if p.suffix != ".npz":
            p = p.with_suffix(".npz")
        p.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "format_version": FORMAT_VERSION,
            "grid": self.grid.to_dict(),
            "satellites": self.satellites,
            "stations": self.stations,
            "models": {k: m.to_dict() for k, m in self.models.items()},
            "meta": self.meta,
        }
        arrays = dict(
            header=np.frombuffer(json.dumps(header, default=str).encode(), dtype=np.uint8),
            planes=self._planes, link_a=self.link_a, link_b=self.link_b,
            link_kind=self.link_kind, win_link=self.win_link, win_start=self.win_start,
            win_end=self.win_end, win_k0=self.win_k0, win_n=self.win_n, win_off=self.win_off,
            range_km=self.range_km,
        )
        if self.sunlit_bits is not None:
            arrays["sunlit_bits"] = self.sunlit_bits
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)
        return p

    @classmethod
    def load(cls, path: str | Path) -> ContactPlan:
        """Read a plan written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"contact plan file not found: {p}")
        with np.load(p, allow_pickle=False) as z:
            if "header" not in z.files:
                raise ValueError(f"{p} is not a contact plan (no header)")
            header = json.loads(z["header"].tobytes().decode())
            if header.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{p}: contact plan format {header.get('format_version')} is "
                                 f"not supported (expected {FORMAT_VERSION})")
            arr = {k: z[k] for k in z.files if k != "header"}
        g = header["grid"]
        return cls(
            grid=TimeGrid(g["epoch"], g["duration_s"], g["step_s"]),
            satellites=header["satellites"], stations=header["stations"],
            models={k: link_from_dict(v) for k, v in header["models"].items()},
            sunlit_bits=arr.pop("sunlit_bits", None), meta=header.get("meta", {}), **arr,
        )

"""The offline bound: the least on-board energy (or mean latency) any policy could reach on a
known workload.

With the whole workload known in advance, choosing an option per capture is a linear programme on
a fluid model of the downlink (after the time-expanded-graph bounds of DTN scheduling). Per
capture ``c`` and option ``o``, ``x[c, o]`` is the fraction of the scene answered with ``o`` and
``g[c, o, k]`` the fraction of it delivered in time cell ``k``; ``u[c]`` is the fraction not
delivered within the deadline. Constraints:

- ``sum_o x[c, o] + u[c] = 1`` and ``sum_k g[c, o, k] = x[c, o]``, with ``k`` from the cell in
  which the option's on-board compute could end (its accelerator assumed free) to the cell of
  ``t_c + deadline``;
- capacity per cell: the bits delivered fit what the ground stations could receive (each antenna
  taking the best satellite in view) and what the transmitters could send (each satellite its best
  station in view). With ISLs, bytes may leave through any satellite, so the capacity is pooled
  over the constellation; without, each satellite's own cell capacity bounds its own scenes;
- each satellite's accelerator: the compute of every run of consecutive scenes fits between the
  first capture and the last one's deadline;
- the accuracy floor: on every chosen option (``capture``) or on the mean over delivered scenes
  (``mean``).

Two objectives, each plus a large price per undelivered scene, so the bound first delivers all
it can:

- ``energy``: on-board energy (compute from the device profile; transmission at the
  constellation's peak downlink rate and least transmitter power, a lower bound on any real
  transmission);
- ``latency``: the mean latency of the scenes, each fraction delivered in cell ``k`` counted at
  the earliest instant it could arrive there (the later of its compute's end and the cell's start),
  with on-board energy as a tie-break worth under a millisecond in all. A scene's real latency is
  the arrival of its last byte, never earlier, so this is a lower bound on the mean latency of any
  schedule that delivers as much (p95 is not linear; the rounded schedule's p95 is what is
  compared).

Every relaxation (fluid bytes, whole cells, free accelerators, peak rates, no ISL limits) makes the
bound **optimistic**: no policy in the simulator can spend less (or, for ``latency``, answer sooner
on average) at the same floor and delivery. Solved with HiGHS through
:func:`scipy.optimize.linprog`.

:class:`OraclePolicy` rounds the fractional solution (per capture, its largest ``x``) and plays it
in the simulator; its ledger rows are a realisable schedule, ``bound`` the number no schedule beats.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, vstack

from research.opt.outlook import ground_cells
from research.opt.policies import (
    OBJECTIVES,
    CaptureLike,
    FloorPolicy,
    PolicyContext,
    check_choice,
    register_policy,
)

__all__ = ["OfflineBound", "OraclePolicy", "offline_bound", "pareto_options"]

BITS_SCALE = 1e9  # LP rows in Gbit: keeps coefficients near 1 for the solver
ACCEL_RUN = 8  # consecutive scenes per accelerator row (more rows: a tighter, slower bound)
TIE_BREAK_S = 1e-3  # latency objective: the whole energy tie-break is worth under this


@dataclass
class OfflineBound:
    """The LP's answer: per-capture option fractions and the numbers of its fluid solution. The
    one it minimised (``objective``) is the bound; its energy under ``latency`` only describes
    that solution, and its latency under ``energy`` is not defined (``nan``: the energy optimum
    leaves the cells of delivery free)."""

    x: np.ndarray
    undelivered: np.ndarray
    energy_onboard_j_per_capture: float
    latency_mean_s: float
    delivered_fraction: float
    accuracy: float
    objective: str
    status: str
    variables: int
    constraints: int
    solve_s: float

    def summary(self) -> dict[str, Any]:
        numbers = ({"bound_energy_onboard_j": self.energy_onboard_j_per_capture}
                   if self.objective == "energy" else
                   {"bound_latency_mean_s": self.latency_mean_s,
                    "lp_energy_onboard_j": self.energy_onboard_j_per_capture})
        return {**numbers, "bound_objective": self.objective,
                "bound_delivered_fraction": self.delivered_fraction,
                "bound_accuracy": self.accuracy, "lp_status": self.status,
                "lp_variables": self.variables, "lp_constraints": self.constraints,
                "lp_solve_s": self.solve_s}


def pareto_options(acc: np.ndarray, payload: np.ndarray, compute: np.ndarray,
                   energy: np.ndarray) -> list[int]:
    """Options not dominated by another (at least as accurate, no more bytes, compute or energy,
    and better in one): dropping dominated options cannot worsen the bound."""
    keep = []
    for o in range(len(acc)):
        dominated = any(
            acc[p] >= acc[o] and payload[p] <= payload[o] and compute[p] <= compute[o]
            and energy[p] <= energy[o]
            and (acc[p], -payload[p], -compute[p], -energy[p])
            != (acc[o], -payload[o], -compute[o], -energy[o])
            for p in range(len(acc)) if p != o)
        if not dominated:
            keep.append(o)
    return keep


def offline_bound(ctx: PolicyContext, floor: float, floor_mode: str, deadline_s: float,
                  cell_s: float = 600.0, objective: str = "energy") -> OfflineBound:
    """Solve the LP of the module docstring for ``ctx.captures``, minimising ``objective``."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    caps = list(ctx.captures)
    bank = ctx.bank
    n, n_opt = len(caps), len(bank)
    if n == 0:
        raise ValueError("the oracle needs the workload: no captures")
    compute_s = ctx.compute_s()
    e_compute = ctx.onboard_energy_j()
    cells = ground_cells(ctx.plan)
    edges, bits, power, peak = cells.edges, cells.bits, cells.tx_power_w, cells.peak_rate_bps
    if peak <= 0:
        raise ValueError("the contact plan has no ground contact: nothing can be delivered")
    p_tx = float(power[power > 0].min()) if (power > 0).any() else 0.0
    e_tx = p_tx * 8.0 * bank.payload_bytes / peak  # per tile, J
    keep = pareto_options(bank.accuracy, bank.payload_bytes, compute_s, e_compute + e_tx)
    if floor_mode == "capture":
        keep = [o for o in keep if bank.accuracy[o] >= floor]

    # capacity per LP cell, in Gbit
    per_sat = bits.max(axis=1)  # [sat, cell]: best station, one transmitter
    per_sat = per_sat * ctx.downlink_transmitters
    a = ctx.station_antennas
    per_station = -np.sort(-bits, axis=0)[:a].sum(axis=0)  # [station, cell]: best `a` satellites
    n_lp = max(1, math.ceil(ctx.plan.horizon_s / cell_s - 1e-9))
    group = np.minimum((edges[:-1] // cell_s).astype(int), n_lp - 1)

    def lp_cells(arr: np.ndarray) -> np.ndarray:
        out = np.zeros(arr.shape[:-1] + (n_lp,))
        for k in range(n_lp):
            out[..., k] = arr[..., group == k].sum(axis=-1)
        return out / BITS_SCALE

    sat_cap = lp_cells(per_sat)
    pooled = np.minimum(lp_cells(per_station.sum(axis=0)), sat_cap.sum(axis=0))
    sat_of = {s: i for i, s in enumerate(ctx.plan.satellites)}

    # variables: x (n * n_opt), u (n), then g
    nx = n * n_opt
    cost = [np.zeros(nx), np.zeros(n)]
    ub_x = np.zeros(nx)
    rows_eq, cols_eq, vals_eq = [], [], []
    rows_cap, cols_cap, vals_cap = [], [], []
    g_cost_len = 0
    g_latency: list[float] = []  # earliest arrival of each g's fraction, s after its capture
    e_opt = e_compute + e_tx
    e_max = max(float((e_opt * max(c.tiles for c in caps)).max()), 1.0)
    if objective == "energy":
        price, e_weight = 1e3 * e_max, 1.0
    else:  # seconds: worse than any delivery; energy only breaks ties
        price, e_weight = 10.0 * deadline_s, TIE_BREAK_S / (e_max * n)
    for c, cap in enumerate(caps):
        rows_eq.append(c), cols_eq.append(nx + c), vals_eq.append(1.0)
        cost[1][c] = price
        end = min(cap.t_s + deadline_s, ctx.plan.horizon_s)
        k_end = min(int(end // cell_s), n_lp - 1)
        for o in keep:
            ready = cap.t_s + compute_s[o] * cap.tiles
            if ready >= end:
                continue
            i = c * n_opt + o
            ub_x[i] = 1.0
            cost[0][i] = e_weight * e_opt[o] * cap.tiles
            rows_eq.append(c), cols_eq.append(i), vals_eq.append(1.0)
            row = n + i  # sum_k g - x = 0
            rows_eq.append(row), cols_eq.append(i), vals_eq.append(-1.0)
            gbits = 8.0 * bank.payload_bytes[o] * cap.tiles / BITS_SCALE
            for k in range(int(ready // cell_s), k_end + 1):
                col = nx + n + g_cost_len
                g_cost_len += 1
                g_latency.append(max(ready, k * cell_s) - cap.t_s)
                rows_eq.append(row), cols_eq.append(col), vals_eq.append(1.0)
                cap_row = k if ctx.relay else sat_of[cap.satellite] * n_lp + k
                rows_cap.append(cap_row), cols_cap.append(col), vals_cap.append(gbits)
    g_lat = np.asarray(g_latency, dtype=float)
    n_var = nx + n + g_cost_len
    a_eq = coo_matrix((vals_eq, (rows_eq, cols_eq)), shape=(n + nx, n_var)).tocsr()
    b_eq = np.concatenate([np.ones(n), np.zeros(nx)])
    ub_blocks, b_ub = [], []
    if ctx.relay:
        ub_blocks.append(coo_matrix((vals_cap, (rows_cap, cols_cap)), shape=(n_lp, n_var)))
        b_ub.append(pooled)
    else:
        n_sat = len(ctx.plan.satellites)
        ub_blocks.append(coo_matrix((vals_cap, (rows_cap, cols_cap)),
                                    shape=(n_sat * n_lp, n_var)))
        b_ub.append(sat_cap.reshape(-1))
        pool_rows = [r % n_lp for r in rows_cap]
        ub_blocks.append(coo_matrix((vals_cap, (pool_rows, cols_cap)), shape=(n_lp, n_var)))
        b_ub.append(pooled)
    # the accuracy floor over delivered scenes
    if floor_mode == "mean":
        cols = np.arange(nx)
        vals = np.tile(floor - bank.accuracy, n) * ub_x
        ub_blocks.append(coo_matrix((vals, (np.zeros(nx, int), cols)), shape=(1, n_var)))
        b_ub.append(np.zeros(1))
    # each accelerator: runs of consecutive scenes fit between first capture and last deadline
    r_rows, r_cols, r_vals, r_b = [], [], [], []
    by_sat: dict[str, list[int]] = {}
    for c, cap in enumerate(caps):
        by_sat.setdefault(cap.satellite, []).append(c)
    for idx in by_sat.values():
        for i in range(len(idx)):
            for j in range(i + 1, min(i + ACCEL_RUN, len(idx))):
                row = len(r_b)
                for c in idx[i:j + 1]:
                    for o in keep:
                        r_rows.append(row), r_cols.append(c * n_opt + o)
                        r_vals.append(compute_s[o] * caps[c].tiles)
                r_b.append(caps[idx[j]].t_s + deadline_s - caps[idx[i]].t_s)
    if r_b:
        ub_blocks.append(coo_matrix((r_vals, (r_rows, r_cols)), shape=(len(r_b), n_var)))
        b_ub.append(np.array(r_b))
    a_ub = vstack(ub_blocks).tocsr()
    c_vec = np.concatenate([*cost, g_lat if objective == "latency" else np.zeros(g_cost_len)])
    bounds = np.stack([np.zeros(n_var), np.concatenate([ub_x, np.ones(n),
                                                         np.ones(g_cost_len)])], axis=1)
    t0 = time.perf_counter()
    res = linprog(c_vec, A_ub=a_ub, b_ub=np.concatenate(b_ub), A_eq=a_eq, b_eq=b_eq,
                  bounds=bounds, method="highs")
    solve_s = time.perf_counter() - t0
    if res.status != 0:
        raise RuntimeError(f"the oracle LP did not solve: {res.message}")
    x = res.x[:nx].reshape(n, n_opt)
    u = res.x[nx:nx + n]
    tiles = np.array([c.tiles for c in caps], dtype=float)
    energy = float((x * e_opt[None, :] * tiles[:, None]).sum()) / n
    delivered = float(x.sum())
    acc = float((x * bank.accuracy[None, :]).sum() / delivered) if delivered > 0 else float("nan")
    latency = (float(res.x[nx + n:] @ g_lat / delivered)
               if objective == "latency" and delivered > 0 else float("nan"))
    return OfflineBound(x, u, energy, latency, delivered / n, acc, objective, str(res.message),
                        n_var, a_eq.shape[0] + a_ub.shape[0], solve_s)


@register_policy("oracle")
class OraclePolicy(FloorPolicy):
    """Offline: solves :func:`offline_bound` on the whole workload (``objective: energy`` or
    ``latency``), then answers each capture with the option the LP gave most of it (``bound``
    holds the LP's optimistic number)."""

    PARAMS: ClassVar[dict[str, Any]] = {**FloorPolicy.PARAMS, "objective": "energy",
                                        "cell_s": 600.0}
    offline: ClassVar[bool] = True

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str = "policy") -> dict[str, Any]:
        out = super().check_params(params, where)
        check_choice(out, "objective", where, OBJECTIVES)
        v = out["cell_s"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{where}.cell_s must be a number of seconds > 0, got {v!r}")
        return out

    @property
    def label(self) -> str:
        return self.labelled(f"oracle-{self.params['objective']}@{self.params['floor']:g}",
                             ("objective", "floor"))

    def prepare(self, ctx: PolicyContext) -> None:
        super().prepare(ctx)
        self.bound = offline_bound(ctx, self.params["floor"], self.params["floor_mode"],
                                   self.deadline_s, float(self.params["cell_s"]),
                                   self.params["objective"])
        x = self.bound.x
        meeting = [o for o in range(len(ctx.bank)) if ctx.bank.accuracy[o] >= self.params["floor"]]
        fallback = min(meeting, key=lambda o: ctx.bank.payload_bytes[o])
        self.choice = {cap.index: int(np.argmax(x[c])) if x[c].max() > 1e-6 else fallback
                       for c, cap in enumerate(ctx.captures)}

    def decide(self, capture: CaptureLike, accel_free_at: float) -> int:
        return self.choice[capture.index]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.bound.summary()}

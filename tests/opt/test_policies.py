"""Per-capture options, the contact-plan outlook, the greedy controller and the oracle LP bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from devices import get_device
from research.opt import (
    DownlinkOutlook,
    GreedyPolicy,
    Option,
    OptionBank,
    PolicyContext,
    UnreachableFloorError,
    build_policy,
    list_policies,
    offline_bound,
    parse_policy_section,
)
from research.opt.oracle import pareto_options
from research.orbit.isl import KIND_GROUND, KIND_INTRA
from research.workload import Capture
from tests.orbit.toy import toy_plan

NANO, A100 = get_device("jetson_nano"), get_device("a100")
MB = 1e6


def bank(*options: Option) -> OptionBank:
    return OptionBank(list(options))


def context(options: OptionBank, plan, captures=(), relay=False) -> PolicyContext:
    return PolicyContext(bank=options, plan=plan, satellite_profile=NANO, ground_profile=A100,
                         period_s=5000.0, captures=list(captures), relay=relay)


def captures(n: int, sat: str = "s0", every: float = 50.0, tiles: int = 1) -> list[Capture]:
    return [Capture(i, sat, 10.0 + i * every, tiles, (i,)) for i in range(n)]


# ---------------------------------------------------------------- options
def test_options_and_banks_refuse_bad_numbers_with_their_names():
    with pytest.raises(ValueError, match="option 'x': accuracy must be in"):
        Option("x", 1.2, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="option 'x': payload_bytes must be a finite"):
        Option("x", 0.9, -1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="at least one option"):
        OptionBank([])
    with pytest.raises(ValueError, match="unique"):
        bank(Option("a", 0.9, 1, 0, 0), Option("a", 0.8, 1, 0, 0))
    b = bank(Option("a", 0.9, 1, 0, 0), Option("b", 0.95, 2, 0, 0))
    with pytest.raises(ValueError, match=r"unknown option 'c'; the options are \['a', 'b'\]"):
        b.index("c")
    with pytest.raises(UnreachableFloorError,
                       match=r"0\.9900 cannot be met: the best reachable expected accuracy is "
                             r"0\.9500 \(b\)"):
        b.check_floor(0.99)
    b.check_floor(0.95)
    with pytest.raises(ValueError, match=r"options \['u'\] have no calibrated accuracy"):
        bank(Option("u", float("nan"), 1, 0, 0)).check_floor(0.5)


def test_pareto_keeps_only_undominated_options():
    acc = np.array([0.96, 0.96, 0.94, 0.97])
    payload = np.array([100.0, 50.0, 10.0, 1.0])
    compute = np.array([0.0, 0.0, 0.0, 9.0])
    energy = np.array([5.0, 3.0, 1.0, 20.0])
    # raw-like option 0 is dominated by 1 (same accuracy, fewer bytes, less energy)
    assert pareto_options(acc, payload, compute, energy) == [1, 2, 3]


# ---------------------------------------------------------------- outlook
def test_outlook_finish_times_have_the_closed_form_of_constant_rate_windows():
    plan = toy_plan({(0, 1, KIND_GROUND): [(100.0, 200.0), (500.0, 1000.0)]}, n_sat=1, n_gs=1)
    out = DownlinkOutlook(plan)  # 1 MB/s while a window is up
    assert out.finish("s0", 0.0, 50 * MB) == pytest.approx((150.0, 50.0))
    assert out.finish("s0", 150.0, 100 * MB) == pytest.approx((550.0, 100.0))
    assert out.finish("s0", 300.0, 0.0) == (300.0, 0.0)
    assert out.finish("s0", 0.0, 601 * MB) == (math.inf, math.inf)
    assert out.capacity_bits("s0", 0.0, 10_000.0) == pytest.approx(8 * 600 * MB)
    t, _ = out.finish("s0", 120.0, 30 * MB)
    assert out.capacity_bits("s0", 120.0, t) == pytest.approx(8 * 30 * MB)


def test_outlook_relays_reach_a_neighbour_with_a_contact():
    plan = toy_plan({(1, 2, KIND_GROUND): [(100.0, 200.0)],
                     (0, 1, KIND_INTRA): [(0.0, 10_000.0)]}, n_sat=2, n_gs=1)
    out = DownlinkOutlook(plan)
    assert out.relays("s0", 0) == ["s0"]
    assert out.relays("s0", 1) == ["s0", "s1"]
    assert out.finish("s0", 0.0, MB) == (math.inf, math.inf)
    assert out.finish_via(out.relays("s0", 1), 0.0, MB) == pytest.approx((101.0, 1.0))


def chain_plan() -> tuple:
    """s0 - s1 - s2 - s3 joined by ISLs throughout; s2 sees the station but for the last 50 s,
    s1 only then: s0 must count 2 hops to (nearly) always have a relay in view."""
    isl = [(0.0, 10_000.0)]
    return toy_plan({(2, 4, KIND_GROUND): [(0.0, 9950.0)],
                     (1, 4, KIND_GROUND): [(9950.0, 10_000.0)],
                     (0, 1, KIND_INTRA): isl, (1, 2, KIND_INTRA): isl, (2, 3, KIND_INTRA): isl},
                    n_sat=4, n_gs=1)


def test_outlook_reach_is_the_fewest_hops_that_keep_a_relay_in_view():
    out = DownlinkOutlook(chain_plan())
    assert out.coverage("s0", 0) == 0.0
    assert out.coverage("s0", 1) == pytest.approx(0.005)
    assert out.coverage("s0", 2) == out.coverage("s0", None) == 1.0
    assert out.coverage("s3", 1) == pytest.approx(0.995)
    assert out.reach() == 2  # s0 needs two; s3 is within 0.99 of its best at one
    assert out.reach(1.0) == 2
    assert out.reach(0.004) == 1  # one hop is enough for a share of 0.5% of the time
    no_isl = toy_plan({(0, 1, KIND_GROUND): [(0.0, 100.0)]}, n_sat=1, n_gs=1)
    assert DownlinkOutlook(no_isl).reach() == 0
    with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\], got 1.5"):
        out.reach(1.5)


def test_greedy_counting_too_few_hops_waits_for_a_contact_the_router_does_not_need():
    # The image: 200 s on the downlink; the student: 300 s of Nano compute, then a few bytes.
    # Within one hop of s0 nothing is in view until 9950 s, so both options look like a long
    # wait and the student's fewer bytes win; counting the plan's reach (2 hops) finds s2 in view.
    options = bank(Option("image", 0.97, 200 * MB, 0.0, 0.0),
                   Option("student", 0.97, 10.0, 1.5e14 * 300 / 1060, 0.0))
    plan, cap = chain_plan(), captures(1)[0]
    near = GreedyPolicy(floor=0.95, relay_hops=1)
    near.prepare(context(options, plan, relay=True))
    auto = GreedyPolicy(floor=0.95)
    auto.prepare(context(options, plan, relay=True))
    assert (near.hops, auto.hops) == (1, 2)
    assert auto.estimate(cap, 0.0, 0)[0] == pytest.approx(200.0, abs=10.0)
    assert near.estimate(cap, 0.0, 0)[0] > 9000.0
    assert near.decide(cap, 0.0) == 1
    assert auto.decide(cap, 0.0) == 0
    alone = GreedyPolicy(floor=0.95)
    alone.prepare(context(options, plan, relay=False))  # without ISLs only its own contacts
    assert alone.hops == 0


# ---------------------------------------------------------------- policies
def test_registry_and_parameters_fail_with_clear_messages():
    assert {"fixed", "greedy", "oracle"} <= set(list_policies())
    with pytest.raises(ValueError, match=r"policy.kind: unknown policy kind 'best'.*greedy"):
        build_policy({"kind": "best"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['flor'\].*valid keys"):
        build_policy({"kind": "greedy", "flor": 0.9})
    with pytest.raises(ValueError, match=r"policy.floor must be a number in \[0.0, 1.0\]"):
        build_policy({"kind": "greedy", "floor": 1.5})
    with pytest.raises(ValueError, match="floor_mode 'avg' is not one of"):
        build_policy({"kind": "oracle", "floor_mode": "avg"})
    with pytest.raises(ValueError, match=r"policy 'fixed' needs \['option'\]"):
        build_policy({"kind": "fixed"})
    with pytest.raises(ValueError, match="relay_hops must be an integer >= 0 or 'auto'"):
        build_policy({"kind": "greedy", "relay_hops": -1})
    with pytest.raises(ValueError, match="relay_hops must be an integer >= 0 or 'auto'"):
        build_policy({"kind": "greedy", "relay_hops": "far"})
    assert build_policy({"kind": "greedy", "floor": 0.9}).label == "greedy-latency@0.9"


def test_labels_name_every_parameter_off_its_default():
    """Two policies that differ in any parameter must not share ledger rows."""
    assert build_policy({"kind": "greedy", "floor": 0.9, "relay_hops": "auto"}).label == \
        "greedy-latency@0.9"  # a default spelt out keeps the short label
    assert build_policy({"kind": "greedy", "floor": 0.9, "relay_hops": 2}).label == \
        "greedy-latency@0.9,relay_hops=2"
    assert build_policy({"kind": "greedy", "floor": 0.9, "relay_hops": 0,
                         "floor_mode": "capture"}).label == \
        "greedy-latency@0.9,floor_mode=capture,relay_hops=0"
    assert build_policy({"kind": "oracle", "floor": 0.95, "objective": "latency",
                         "deadline_s": 600.0}).label == "oracle-latency@0.95,deadline_s=600"
    assert build_policy({"kind": "fixed", "option": "jpeg90"}).label == "jpeg90"
    specs = [{"kind": "greedy", "relay_hops": 0}, {"kind": "greedy", "relay_hops": 1}]
    assert len(parse_policy_section(specs, [], "policy")) == 2
    with pytest.raises(ValueError, match="must be unique"):
        parse_policy_section([specs[0], dict(specs[0])], [], "policy")


def three_options() -> OptionBank:
    return bank(Option("cheap", 0.90, 1 * MB, 0.0, 0.0),
                Option("good", 0.97, 4 * MB, 0.0, 0.0),
                Option("onboard", 0.97, 2.0, 3e12, 0.0))


def test_greedy_keeps_the_floor_per_capture_or_on_each_satellites_mean():
    plan = toy_plan({(0, 1, KIND_GROUND): [(0.0, 10_000.0)]}, n_sat=1, n_gs=1)
    caps = captures(60)
    strict = build_policy({"kind": "greedy", "floor": 0.95, "floor_mode": "capture"})
    strict.prepare(context(three_options(), plan))
    assert {strict.decide(c, 0.0) for c in caps} <= {1, 2}
    mean = build_policy({"kind": "greedy", "floor": 0.95, "floor_mode": "mean"})
    b = three_options()
    mean.prepare(context(b, plan))
    chosen = [mean.decide(c, 0.0) for c in caps]
    running = np.cumsum(b.accuracy[chosen]) / np.arange(1, len(chosen) + 1)
    assert (running >= 0.95 - 1e-12).all()
    # 0.97 k + 0.90 m >= 0.95 (k + m) allows m / (k + m) <= 2/7: it banks accuracy and spends it
    assert chosen.count(0) >= int(len(chosen) * 2 / 7) - 1
    with pytest.raises(UnreachableFloorError, match="best reachable expected accuracy is 0.9700"):
        build_policy({"kind": "greedy", "floor": 0.99}).prepare(context(b, plan))


def test_greedy_does_not_block_the_accelerator_when_every_option_waits_for_a_contact():
    # No contact before t = 5000 s: sending the image and computing on board (1,060 s of the
    # Nano) both arrive right after 5000 s; on board would delay every later scene by 1,060 s.
    plan = toy_plan({(0, 1, KIND_GROUND): [(5000.0, 6000.0)]}, n_sat=1, n_gs=1)
    options = bank(Option("image", 0.97, 1 * MB, 0.0, 0.0),
                   Option("onboard", 0.97, 2.0, 1.5e14, 0.0))
    policy = GreedyPolicy(floor=0.95)
    policy.prepare(context(options, plan))
    cap = captures(1)[0]
    image, onboard = policy.estimate(cap, 0.0, 0), policy.estimate(cap, 0.0, 1)
    assert onboard[0] < image[0]  # on board is (barely) sooner for this scene alone...
    assert policy.decide(cap, 0.0) == 0  # ...but its occupancy makes the image the choice


def test_priced_controller_spends_its_credit_where_it_saves_most():
    # Scenes of 1 and 10 tiles in turn; the cheap option saves 1.5 s a tile on the downlink.
    # The greedy controller spends its credit on whichever scene comes first; at a price of
    # 1 s a point (7 points between the options) only the 10-tile scenes are worth it.
    plan = toy_plan({(0, 1, KIND_GROUND): [(0.0, 10_000.0)]}, n_sat=1, n_gs=1)
    options = bank(Option("good", 0.97, 2 * MB, 0.0, 0.0),
                   Option("cheap", 0.90, 0.5 * MB, 0.0, 0.0))
    caps = [Capture(i, "s0", 10.0 + 50.0 * i, 10 if i % 2 else 1, (i,)) for i in range(80)]

    def run(spec: dict) -> list[int]:
        policy = build_policy(spec)
        policy.prepare(context(options, plan))
        return [policy.decide(c, 0.0) for c in caps]

    greedy = run({"kind": "greedy", "floor": 0.95})
    priced = run({"kind": "priced", "floor": 0.95, "price_s": 1.0, "price_rate": 0.0})

    def cheap(chosen: list[int], tiles: int) -> int:
        return sum(1 for c, o in zip(caps, chosen, strict=True) if o == 1 and c.tiles == tiles)

    assert cheap(greedy, 1) > 0 and cheap(priced, 1) == 0
    assert cheap(priced, 10) >= cheap(greedy, 10) > 0
    for chosen in (greedy, priced):  # both keep the mean floor at every scene
        running = np.cumsum(options.accuracy[chosen]) / np.arange(1, len(chosen) + 1)
        assert (running >= 0.95 - 1e-12).all()
    tiles = np.array([c.tiles for c in caps])
    saved = {k: float(tiles[np.array(ch) == 1].sum()) for k, ch in (("g", greedy), ("p", priced))}
    assert saved["p"] > saved["g"]  # more tiles sent cheaply for the same credit


def test_priced_controllers_price_falls_as_its_credit_grows_and_zero_is_greedy():
    plan = toy_plan({(0, 1, KIND_GROUND): [(0.0, 10_000.0)]}, n_sat=1, n_gs=1)
    policy = build_policy({"kind": "priced", "floor": 0.95, "price_s": 2.0, "price_rate": 0.1})
    policy.prepare(context(three_options(), plan, relay=False))
    assert policy.price("s0") == 2.0  # no credit yet
    chosen = [policy.decide(c, 0.0) for c in captures(30)]
    banked = sum(three_options().accuracy[chosen]) - 0.95 * len(chosen)
    assert banked >= -1e-12 and policy.banked["s0"] == pytest.approx(banked)
    assert policy.price("s0") == pytest.approx(2.0 * math.exp(-0.1 * 100 * banked))
    assert policy.label == "priced-latency@0.95,price_s=2"
    free = build_policy({"kind": "priced", "floor": 0.95, "price_s": 0.0})
    greedy = build_policy({"kind": "greedy", "floor": 0.95})
    for p in (free, greedy):
        p.prepare(context(three_options(), plan))
    caps = captures(40)
    assert [free.decide(c, 0.0) for c in caps] == [greedy.decide(c, 0.0) for c in caps]
    with pytest.raises(ValueError, match="objective must be 'latency' for policy 'priced'"):
        build_policy({"kind": "priced", "objective": "energy"})
    with pytest.raises(ValueError, match="floor_mode must be 'mean' for policy 'priced'"):
        build_policy({"kind": "priced", "floor_mode": "capture"})
    for bad in (-1, math.inf):
        with pytest.raises(ValueError, match=r"policy.price_s must be a number in \[0.0, "):
            build_policy({"kind": "priced", "price_s": bad})


# ---------------------------------------------------------------- oracle
def oracle_bank() -> OptionBank:
    # same bytes, different on-board compute: the energy difference is compute alone
    return bank(Option("small", 0.90, 1000.0, 1e9, 0.0), Option("big", 1.00, 1000.0, 5e9, 0.0))


def test_oracle_bound_mixes_options_to_meet_a_mean_floor_exactly():
    plan = toy_plan({(0, 1, KIND_GROUND): [(0.0, 10_000.0)]}, n_sat=1, n_gs=1)
    caps = captures(10, every=100.0)
    ctx = context(oracle_bank(), plan, caps)
    e = ctx.onboard_energy_j() + 10.0 * 8 * 1000.0 / 8e6  # + transmit at the peak rate
    mean = offline_bound(ctx, 0.95, "mean", deadline_s=1000.0, cell_s=100.0)
    assert mean.delivered_fraction == pytest.approx(1.0)
    assert mean.energy_onboard_j_per_capture == pytest.approx(0.5 * e[0] + 0.5 * e[1], rel=1e-6)
    assert mean.accuracy == pytest.approx(0.95, abs=1e-9)
    strict = offline_bound(ctx, 0.95, "capture", deadline_s=1000.0, cell_s=100.0)
    assert strict.energy_onboard_j_per_capture == pytest.approx(e[1], rel=1e-6)


def test_oracle_bound_drops_what_no_schedule_could_deliver():
    # 1 MB/s for 100 s in all: at most 100 scenes of 1 MB can be delivered
    plan = toy_plan({(0, 1, KIND_GROUND): [(0.0, 100.0)]}, n_sat=1, n_gs=1)
    caps = [Capture(i, "s0", 1.0, 1, (i,)) for i in range(200)]
    heavy = bank(Option("img", 0.9, 1 * MB, 0.0, 0.0))
    bound = offline_bound(context(heavy, plan, caps), 0.5, "mean", deadline_s=5000.0, cell_s=50.0)
    assert bound.delivered_fraction == pytest.approx(0.5, abs=1e-6)


def test_latency_oracle_trades_energy_for_time_where_the_energy_oracle_does_not():
    # "send": no compute, 50 MB to transmit (fluid: arrives at once, but 50 s of transmitter
    # energy); "compute": a few MB after ~20 s on board (less energy, later). Capacity is ample.
    plan = toy_plan({(0, 1, KIND_GROUND): [(0.0, 10_000.0)]}, n_sat=1, n_gs=1)
    caps = captures(5, every=200.0)
    options = bank(Option("send", 0.95, 50 * MB, 0.0, 0.0),
                   Option("compute", 0.95, 1 * MB, 20.0 * NANO.effective_flops, 0.0))
    ctx = context(options, plan, caps)
    wait = ctx.compute_s()[1]
    assert 5.0 < wait < 100.0  # same 100-s cell as the capture: only the compute delays it
    energy = offline_bound(ctx, 0.9, "mean", deadline_s=1000.0, cell_s=100.0)
    latency = offline_bound(ctx, 0.9, "mean", deadline_s=1000.0, cell_s=100.0,
                            objective="latency")
    assert energy.x[:, 1] == pytest.approx(np.ones(5))  # compute: cheaper on board...
    assert latency.x[:, 0] == pytest.approx(np.ones(5))  # ...but sending is sooner
    assert math.isnan(energy.latency_mean_s)  # not what the energy LP decides
    assert latency.latency_mean_s == pytest.approx(0.0, abs=1e-9)
    forced = offline_bound(context(bank(options.options[1]), plan, caps), 0.9, "mean",
                           deadline_s=1000.0, cell_s=100.0, objective="latency")
    assert forced.latency_mean_s == pytest.approx(wait, rel=1e-6)
    assert latency.energy_onboard_j_per_capture > energy.energy_onboard_j_per_capture
    assert set(latency.summary()) >= {"bound_latency_mean_s", "lp_energy_onboard_j"}
    assert "bound_energy_onboard_j" not in latency.summary()  # not a bound there
    with pytest.raises(ValueError, match="objective must be one of"):
        offline_bound(ctx, 0.9, "mean", deadline_s=1000.0, objective="p95")


def test_latency_oracle_waits_for_a_later_cell_only_when_capacity_forces_it():
    # 10 s of contact per 100-s cell at 1 MB/s: 10 MB a cell. Six scenes of 5 MB captured at
    # once fill three cells: the fluid mean latency is (0 + 0 + 100 + 100 + 200 + 200) / 6 s
    # minus the capture's offset into its cell.
    wins = [(k * 100.0, k * 100.0 + 10.0) for k in range(20)]
    plan = toy_plan({(0, 1, KIND_GROUND): wins}, n_sat=1, n_gs=1)
    caps = [Capture(i, "s0", 0.0, 1, (i,)) for i in range(6)]
    ctx = context(bank(Option("img", 0.9, 5 * MB, 0.0, 0.0)), plan, caps)
    bound = offline_bound(ctx, 0.5, "mean", deadline_s=5000.0, cell_s=100.0, objective="latency")
    assert bound.delivered_fraction == pytest.approx(1.0)
    assert bound.latency_mean_s == pytest.approx(100.0, rel=1e-6)


def test_oracle_policy_plays_the_lp_choice():
    plan = toy_plan({(0, 1, KIND_GROUND): [(0.0, 10_000.0)]}, n_sat=1, n_gs=1)
    caps = captures(10, every=100.0)
    policy = build_policy({"kind": "oracle", "floor": 0.95, "floor_mode": "capture",
                           "cell_s": 100.0})
    policy.prepare(context(oracle_bank(), plan, caps))
    assert [policy.decide(c, 0.0) for c in caps] == [1] * 10
    assert policy.describe()["bound_delivered_fraction"] == pytest.approx(1.0)


def test_ground_cells_keep_every_bit_of_a_real_plan_where_its_contact_is():
    # real windows start between grid samples (refined edges): their first segment straddles a
    # cell edge and must be split, not moved a cell later
    from research.opt.outlook import ground_cells
    from research.orbit.config import load_config

    plan = load_config("experiments/orbit/demo_6x11.yaml").build()
    cells = ground_cells(plan)
    total = 0.0
    n_sat = len(plan.satellites)
    for w in range(len(plan.win_link)):
        link = int(plan.win_link[w])
        if int(plan.link_kind[link]) == KIND_GROUND:
            total += plan.window_profile(w, int(plan.link_a[link]) < n_sat)[2][-1]
    assert cells.bits.sum() == pytest.approx(total, rel=1e-9)
    out = DownlinkOutlook(plan)
    for sat in plan.satellites[:10]:
        first = min(c.start_s for c in plan.contacts(sat, "ground"))
        # capacity is spread evenly over its grid cell: never more than a step early
        assert first - plan.step_s <= out.finish(sat, 0.0, 1.0)[0] < first + plan.step_s
    rates = [plan.window_profile(w, True)[1].max() for w in range(len(plan.win_link))
             if int(plan.link_kind[int(plan.win_link[w])]) == KIND_GROUND]
    assert cells.peak_rate_bps == pytest.approx(max(rates))


def test_oracle_bound_is_below_every_feasible_fixed_schedule_on_random_banks():
    """The LP is a bound: on random option banks (a window long enough for every scene), it
    spends no more on board than any single option that meets the floor, delivers everything
    and meets the floor itself. A mis-specified objective or capacity row breaks one of these."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    plan = toy_plan({(0, 1, KIND_GROUND): [(0.0, 20_000.0)]}, n_sat=1, n_gs=1)
    option = st.tuples(st.floats(0.5, 1.0), st.floats(100.0, 50_000.0), st.floats(0.0, 2e10))

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(opts=st.lists(option, min_size=1, max_size=4), n=st.integers(1, 12),
           floor=st.floats(0.5, 1.0), mode=st.sampled_from(["mean", "capture"]))
    def prop(opts, n, floor, mode):
        options = bank(*(Option(f"o{i}", a, b, f, 0.0) for i, (a, b, f) in enumerate(opts)))
        if max(a for a, _, _ in opts) < floor:
            return  # no option meets the floor: the error is tested elsewhere
        ctx = context(options, plan, captures(n, every=200.0))
        per_tile = ctx.onboard_energy_j() + 10.0 * 8.0 * options.payload_bytes / 8e6
        bound = offline_bound(ctx, floor, mode, deadline_s=10_000.0, cell_s=200.0)
        assert bound.delivered_fraction == pytest.approx(1.0, abs=1e-6)
        assert bound.accuracy >= floor - 1e-6
        for o, (a, _, _) in enumerate(opts):
            if a >= floor:
                assert bound.energy_onboard_j_per_capture <= per_tile[o] * (1 + 1e-6) + 1e-12

        lat = offline_bound(ctx, floor, mode, deadline_s=10_000.0, cell_s=200.0,
                            objective="latency")
        assert lat.delivered_fraction == pytest.approx(1.0, abs=1e-6)
        assert lat.accuracy >= floor - 1e-6
        wait = ctx.compute_s()  # ample capacity: a fixed option's earliest arrival
        for o, (a, _, _) in enumerate(opts):
            if a >= floor:
                assert lat.latency_mean_s <= _cell_wait(captures(n, every=200.0), wait[o],
                                                        200.0) + 1e-6

    prop()


def _cell_wait(caps: list[Capture], compute_s: float, cell_s: float) -> float:
    """Mean fluid latency of one option for every capture with ample capacity: its compute."""
    return float(np.mean([compute_s * c.tiles for c in caps]))


def test_outlook_finish_via_is_the_best_relays_finish_whatever_the_order_of_calls():
    rng = np.random.default_rng(0)
    wins = {(i, 4, KIND_GROUND): [(float(a), float(a) + float(w))]
            for i, (a, w) in enumerate(zip(rng.uniform(0, 8000, 4), rng.uniform(50, 900, 4),
                                           strict=True))}
    out = DownlinkOutlook(toy_plan(wins, n_sat=4, n_gs=1))
    relays = ["s0", "s1", "s2", "s3"]
    for t, size in zip(rng.uniform(0, 9000, 300), rng.choice([0.0, 1e3, 5e7, 4e8], 300),
                       strict=True):
        expected = min(out.finish(r, t, size) for r in relays)  # every relay in full
        assert out.finish_via(relays, t, size) == expected
        assert out.finish_via(relays[::-1], t, size) == expected

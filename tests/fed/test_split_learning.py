"""Trainable cuts (``model.trainable: split``): the patch embedding, LoRA and head train; on board
the whole model trains on the satellite, collaborative by split learning whose activations and
gradients cross the network every step."""

from __future__ import annotations

import copy

import pytest
import torch

from research.fed.clients import build_model, local_update, split_sgd_step
from research.fed.config import FedConfig, FedConfigError, ModelConfig, TrainConfig, parse_config
from research.fed.rounds import ModelTooLarge
from research.fed.runner import prepare, run
from tests.fed.conftest import tiny_raw

SPLIT = {"model": {"backbone": "satvit_tiny", "weights": None, "trainable": "split"},
         "comm": {"reuse_features": False}}


def split_raw(**overrides) -> dict:
    raw = tiny_raw(**SPLIT)
    raw["train"] = {**raw["train"], "lr": 0.05}
    raw.update(overrides)
    return raw


@pytest.fixture(scope="module")
def split_setup(tiny_plan):
    return prepare(parse_config(split_raw()), plan=tiny_plan)


def test_gossip_trains_the_split_model_over_isls(tmp_path):
    """The third topology with the encoder trained: both schemes, on the 6 x 10 shell whose
    ISLs join every satellite; no model byte touches the ground."""
    from research.fed.runner import build_plan
    from tests.fed.conftest import GRID_SCENARIO

    raw = split_raw(scenario=GRID_SCENARIO, topology="gossip", comm={
        **SPLIT["comm"], "gossip_tol": 0.05}, train={"rounds": 2, "local_epochs": 2,
                                                    "batch_size": 16, "lr": 0.05})
    setup = prepare(parse_config(raw), plan=build_plan(GRID_SCENARIO))
    for scheme in ("collaborative", "onboard"):
        cfg = parse_config({**raw, "scheme": scheme, "out_dir": str(tmp_path / scheme)})
        res = run(cfg, setup=setup)
        assert res.rows[-1]["accuracy"] > res.initial_accuracy + 0.05, scheme
        assert all(r["aggregation"] == "gossip" and r["bytes_isl"] > 0 for r in res.rows)
        assert all(r["gossip_steps"] > 0 and 0 < r["gossip_disagreement"] < 1
                   for r in res.rows)
        if scheme == "onboard":
            assert all(r["bytes_downlink"] == r["bytes_uplink"] == 0 for r in res.rows)
        else:  # activations down and gradients up, the embedding gossiped
            assert res.rows[0]["bytes_downlink"] > 0 and res.rows[0]["bytes_uplink"] > 0


def test_a_split_step_computes_the_gradients_of_one_backward_pass():
    model = build_model(ModelConfig(backbone="satvit_tiny", weights=None, trainable="split"))
    model.train()
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    twin = copy.deepcopy(model)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    split_sgd_step(twin, x, y)
    grads = {k: p.grad for k, p in model.named_parameters() if p.requires_grad}
    assert any("patch_embed" in k for k in grads) and any("lora_B" in k for k in grads)
    for k, p in twin.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.allclose(p.grad, grads[k], atol=1e-6), k
            assert k.startswith("vit.head") or "lora_A" in k or p.grad.abs().sum() > 0, k


def test_a_split_step_through_a_lossy_link_sends_its_bitstream_and_is_straight_through():
    """int8 at the cut: the ground trains on the decoded bitstream, and the gradient goes up
    straight through the codec, as the link's own forward does in one backward pass."""
    lossy = build_model(ModelConfig(backbone="satvit_tiny", weights=None, trainable="split",
                                    link="int8"))
    lossy.train()
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    twin, exact = copy.deepcopy(lossy), copy.deepcopy(lossy)
    exact.link = torch.nn.Identity()  # same weights, no codec: what int8 must change
    exact.link.forward = lambda t: {"y_hat": t, "likelihoods": {}}
    torch.nn.functional.cross_entropy(lossy(x), y).backward()
    torch.nn.functional.cross_entropy(exact(x), y).backward()
    calls = []
    compress = twin.link.compress
    twin.link.compress = lambda t: calls.append(t.shape) or compress(t)
    split_sgd_step(twin, x, y)
    assert calls == [(4, *twin.satellite_part(x[:1]).shape[1:])]
    key = "vit.patch_embed.proj.weight"
    grads = dict(lossy.named_parameters())
    for k, p in twin.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, grads[k].grad, atol=1e-6), k
    assert not torch.allclose(dict(exact.named_parameters())[key].grad, grads[key].grad,
                              atol=1e-6)  # the codec is in the path


def test_split_learning_through_int8_learns_and_sends_fewer_bytes(split_setup, tiny_plan,
                                                                   tmp_path):
    rows = {}
    for link, setup in (("identity", split_setup), ("int8", None)):
        cfg = parse_config(split_raw(model={**SPLIT["model"], "link": link},
                                     train={**split_raw()["train"], "rounds": 1},
                                     out_dir=str(tmp_path / link)))
        setup = setup or prepare(cfg, plan=tiny_plan)
        res = run(cfg, setup=setup)
        rows[link] = (res.rows[0], res.initial_accuracy, setup.costs.cut_bytes)
    (int8, init, cut), (ident, _, cut_id) = rows["int8"], rows["identity"]
    assert int8["accuracy"] > init
    assert cut < 0.4 * cut_id  # 1 byte a value and a scale per token, against 4 bytes
    assert int8["bytes_downlink"] < 0.5 * ident["bytes_downlink"]


def test_the_gradient_goes_up_through_its_link():
    """``model.gradient_link: int8``: the ground compresses the cut's gradient, the satellite
    backpropagates what it decodes; the ground's own gradients are unchanged."""
    lossy = build_model(ModelConfig(backbone="satvit_tiny", weights=None, trainable="split",
                                    gradient_link="int8"))
    lossy.train()
    exact = copy.deepcopy(lossy)
    exact.gradient_link = build_model(ModelConfig(backbone="satvit_tiny", weights=None,
                                                  trainable="split")).gradient_link
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    calls = []
    compress = lossy.gradient_link.compress
    lossy.gradient_link.compress = lambda g: calls.append(g.shape) or compress(g)
    split_sgd_step(lossy, x, y)
    split_sgd_step(exact, x, y)
    assert calls == [(4, *lossy.satellite_part(x[:1]).shape[1:])]
    a, b = dict(lossy.named_parameters()), dict(exact.named_parameters())
    assert torch.equal(a["vit.head.weight"].grad, b["vit.head.weight"].grad)  # on the ground
    board = "vit.patch_embed.proj.weight"
    assert not torch.equal(a[board].grad, b[board].grad)  # on board: the decoded gradient
    rel = (a[board].grad - b[board].grad).norm() / b[board].grad.norm()
    assert rel < 0.05  # int8 with a scale per token keeps the direction


def test_the_gradient_link_is_booked_and_checked(tiny_plan):
    cfg = parse_config(split_raw(model={**SPLIT["model"], "gradient_link": "int8"}))
    setup = prepare(cfg, plan=tiny_plan)
    plain = prepare(parse_config(split_raw()), plan=tiny_plan)
    assert setup.costs.grad_bytes < 0.4 * plain.costs.grad_bytes == 0.4 * plain.costs.cut_bytes
    for bad, match in (("factorized", "training-free link"), ("nope", "training-free link")):
        with pytest.raises(FedConfigError, match=match):
            parse_config(split_raw(model={**SPLIT["model"], "gradient_link": bad}))
    with pytest.raises(FedConfigError, match="gradient_link is for model.trainable 'split'"):
        parse_config(tiny_raw(model={"backbone": "satvit_tiny", "weights": None,
                                     "gradient_link": "int8"}))


def test_split_learning_and_onboard_updates_agree(split_setup):
    """SplitFed: the same local SGD as on board, only split across the cut."""
    c = split_setup.clients[0]
    idx = torch.from_numpy(c.indices)
    x, y = split_setup.data.train_x[idx], split_setup.data.train_y[idx]
    cfg = TrainConfig(local_epochs=1, batch_size=8, lr=0.05)
    whole = local_update(split_setup.template, split_setup.initial, x, y, cfg, seed=3)
    split = local_update(split_setup.template, split_setup.initial, x, y, cfg, seed=3,
                         split=True)
    for k in whole:
        assert torch.allclose(whole[k], split[k], atol=1e-5), k
    key = "vit.patch_embed.proj.weight"
    assert (whole[key] - split_setup.initial[key]).abs().max() > 0  # the embedding trains


@pytest.mark.parametrize("topology", ["ring", "star"])
@pytest.mark.parametrize("scheme", ["collaborative", "onboard"])
def test_every_scheme_and_topology_trains_the_split_model(scheme, topology, split_setup,
                                                          tmp_path):
    cfg = parse_config(split_raw(out_dir=str(tmp_path), scheme=scheme, topology=topology,
                                 train={"rounds": 3, "local_epochs": 2, "batch_size": 16,
                                        "lr": 0.05}))
    res = run(cfg, setup=split_setup)
    assert res.rows[-1]["accuracy"] > res.initial_accuracy + 0.05
    assert all(r["bytes_model_exchange"] > 0 for r in res.rows)
    costs = split_setup.costs
    row = res.rows[0]
    trained = [c for c in split_setup.clients if c.sat not in row["dropped_ids"]]
    assert len(trained) >= 10  # (plane 2 never sees a station in this 6-h plan)
    images = sum(c.n for c in trained) * 2  # two local epochs
    if scheme == "collaborative":  # every image's activations went down, gradients up
        assert row["bytes_downlink"] >= images * costs.cut_bytes
        assert row["bytes_uplink"] >= images * costs.grad_bytes
        assert row["energy_ground_j"] > 0
    else:  # nothing but model state leaves the satellite
        assert row["bytes_downlink"] + row["bytes_uplink"] <= row["bytes_model_exchange"]
        assert row["energy_ground_j"] == 0


def test_collaborative_updates_carry_only_the_embedding(split_setup, tmp_path):
    """The ground keeps its side, so ring chunks and broadcasts carry the embedding's weights;
    on board they carry everything that trains (embedding, LoRA, head)."""
    costs = split_setup.costs
    assert 0 < costs.embed_update_bytes < costs.update_bytes
    exchanged = {}
    for scheme in ("collaborative", "onboard"):
        cfg = parse_config(split_raw(out_dir=str(tmp_path / scheme), scheme=scheme,
                                     topology="star", train={"rounds": 2}))
        exchanged[scheme] = run(cfg, setup=split_setup).rows[1]["bytes_model_exchange"]
    ratio = exchanged["collaborative"] / exchanged["onboard"]
    assert ratio == pytest.approx(costs.embed_update_bytes / costs.update_bytes, rel=0.05)


def test_on_board_training_of_the_encoder_costs_its_flops(split_setup):
    c = split_setup.costs
    assert c.train_flops == pytest.approx(3 * (c.embed_flops + c.encode_flops + c.head_flops))
    assert c.embed_train_flops == pytest.approx(3 * c.embed_flops)
    assert c.grad_bytes == c.cut_bytes  # float32 activations and float32 gradients


def test_a_deadline_stops_split_sessions(split_setup, tmp_path):
    """With a deadline shorter than a split session's round trips, satellites mid-session are
    dropped at the deadline, and their later steps are never sent."""
    cfg = parse_config(split_raw(out_dir=str(tmp_path), scheme="collaborative", topology="star",
                                 comm={"reuse_features": False, "round_deadline_s": 2.0},
                                 train={"rounds": 1, "batch_size": 2}))
    res = run(cfg, setup=split_setup)
    row = res.rows[0]
    assert ":deadline" in row["dropped_ids"]
    assert row["participants"] + row["dropped"] == len(split_setup.clients)  # none left hanging
    images = sum(c.n for c in split_setup.clients)
    assert row["bytes_downlink"] < images * split_setup.costs.cut_bytes


def test_split_mode_refuses_what_it_does_not_support():
    with pytest.raises(FedConfigError, match="trainable must be one of.*'lora'"):
        parse_config(tiny_raw(model={"trainable": "lora"}))
    with pytest.raises(FedConfigError, match="reuse_features must be false"):
        parse_config(tiny_raw(model={"trainable": "split"}))
    with pytest.raises(FedConfigError, match="centralised"):
        parse_config(split_raw(scheme="centralised", topology="star"))
    with pytest.raises(FedConfigError, match="lora_rank"):
        parse_config(split_raw(model={**SPLIT["model"], "lora_rank": 0}))
    with pytest.raises(FedConfigError, match="secagg.enabled True"):
        parse_config(split_raw(secagg={"enabled": True}))
    with pytest.raises(FedConfigError, match="privacy.level 'satellite'"):
        parse_config(split_raw(privacy={"level": "satellite", "noise_multiplier": 1.0}))


def test_a_model_too_large_for_the_satellite_is_refused_on_board_only(split_setup, tmp_path):
    """On board needs every weight; split learning keeps only the embedding aloft."""
    import dataclasses

    big = dataclasses.replace(split_setup.costs, encode_param_bytes=2**40)
    for scheme, refused in (("onboard", True), ("collaborative", False)):
        cfg: FedConfig = parse_config(split_raw(out_dir=str(tmp_path / scheme), scheme=scheme,
                                                train={"rounds": 1}))
        s = dataclasses.replace(split_setup, costs=big)
        if refused:
            with pytest.raises(ModelTooLarge, match="onboard"):
                run(cfg, setup=s)
        else:
            assert run(cfg, setup=s).rows


def test_the_regime_prices_the_trained_encoder_and_split_learning_wins_on_slow_satellites(
        split_setup, monkeypatch):
    """With the encoder trained, on-board rounds cost the whole model's training FLOPs, so a
    slow enough satellite computer makes split learning the faster scheme (and a fast one the
    slower)."""
    from devices import profiles
    from research.fed.regime import model_costs, sample_images, simulate, what_if_device

    monkeypatch.setattr(profiles, "_DEVICES", dict(profiles._DEVICES))
    head = model_costs("satvit_tiny", sample_images(), trainable="head")
    split = model_costs("satvit_tiny", sample_images(), trainable="split")
    assert split.train_flops > 100 * head.train_flops
    assert split.update_bytes > split.embed_update_bytes > 0 == head.embed_update_bytes
    lossy = model_costs("satvit_tiny", sample_images(), trainable="split", gradient_link="int8")
    assert lossy.grad_bytes < 0.4 * split.grad_bytes and lossy.cut_bytes == split.cut_bytes
    cfg = parse_config(split_raw())
    t = {}
    for factor in (1.0, 1e-6):
        for scheme in ("collaborative", "onboard"):
            got = simulate(cfg, split_setup, split_setup.costs, split_setup.plan, 1, scheme,
                           "ring", what_if_device(factor), False, "satvit_tiny")
            t[factor, scheme] = got["t_s"]
    assert t[1.0, "onboard"] < t[1.0, "collaborative"]
    assert t[1e-6, "collaborative"] < t[1e-6, "onboard"] / 2


def test_the_embedding_lora_and_head_train_at_their_own_rates(split_setup):
    from research.fed.clients import param_groups

    cfg = TrainConfig(lr=0.05, encoder_lr=5e-3, embed_lr=5e-5)
    groups = param_groups(split_setup.template, cfg)
    assert sorted(g["lr"] for g in groups) == [5e-5, 5e-3, 0.05]
    named = {id(p): n for n, p in split_setup.template.named_parameters()}
    for g in groups:
        names = [named[id(p)] for p in g["params"]]
        kind = {5e-5: "patch_embed.", 5e-3: "lora_", 0.05: "head"}[g["lr"]]
        assert all(kind in n or (kind == "head" and "fc_norm" in n) for n in names), names
    assert [g["lr"] for g in param_groups(split_setup.template, TrainConfig(lr=0.1))] == [0.1] * 3
    with pytest.raises(FedConfigError, match="train.embed_lr is for model.trainable 'split'"):
        parse_config(tiny_raw(train={"embed_lr": 1e-4}))
    with pytest.raises(FedConfigError, match="train.encoder_lr must be a finite number > 0"):
        parse_config(split_raw(train={"encoder_lr": -1.0}))


def test_accuracy_is_float32_as_the_committed_ledgers_have_it(tiny_setup):
    """Batched evaluation must not change a head-only run's ledger digits."""
    import numpy as np

    from research.fed.clients import accuracy

    acc = accuracy(tiny_setup.template, tiny_setup.initial, tiny_setup.data.test_x,
                   tiny_setup.data.test_y)
    assert acc == float(np.float32(acc))
    head = copy.deepcopy(tiny_setup.template)
    want = (head(tiny_setup.data.test_x).argmax(1) == tiny_setup.data.test_y).float().mean()
    assert acc == float(want)


@pytest.mark.slow
def test_split_learning_on_the_flower_engine_equals_in_process(split_setup, tmp_path):
    """Flower's ClientApps train the split model by split learning too (the same update)."""
    pytest.importorskip("ray")
    from research.fed.flower import run_flower

    cfg = parse_config(split_raw(out_dir=str(tmp_path / "flower"), scheme="collaborative"))
    flower = run_flower(cfg, split_setup)
    local = run(cfg.replace(out_dir=str(tmp_path / "local")), setup=split_setup)
    assert len(flower.rows) == len(local.rows) == 2
    for k in local.head:
        assert torch.allclose(flower.head[k], local.head[k], atol=1e-5), k
    assert [r["t_end_s"] for r in flower.rows] == [r["t_end_s"] for r in local.rows]

"""A trained codec at block k in serving: blocks 0..k pinned on board as the front, the codec's
encoder charged on the source by microservices only, payload sizes measured on real tiles."""

from __future__ import annotations

import pytest
import torch

from research.serving.config import ServingConfigError, parse_serve_config
from research.serving.experiment import (
    load_trained_codec,
    measured_token_bytes,
    token_bytes_per_tile,
)
from research.serving.placement import Demand, PlacementProblem, default_nodes
from research.serving.runtime import InProcessRuntime
from research.serving.schema import Request
from research.serving.simulator import make_requests, onboard_shared_routes
from research.serving.tasks import build_catalog
from research.tasks.loading import load_classifier

TASKS = ("landcover", "coarse", "retrieval")
STATS = {"EuroSATDataModule": {"mean": [0.34, 0.38, 0.41], "std": [0.2, 0.14, 0.12]}}


def _save(task, path) -> str:
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict(), **STATS},
               path)
    return str(path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny classifier and a factorized codec trained (here: initialised) at block 1 of the
    same frozen encoder, saved the way Lightning saves them."""
    from research.tasks.classification import ClassificationTask
    from research.tasks.codec import CodecTask

    torch.manual_seed(0)
    clf = ClassificationTask(backbone="satvit_tiny", finetune="full")
    codec = CodecTask(backbone="satvit_tiny", split_index=1, codec="factorized", latent_dim=4,
                      merge_tokens=4, hidden_dim=8, head_placement="ground")
    codec.model.vit.load_state_dict(clf.model.vit.state_dict())
    codec.model.link.update(force=True)
    d = tmp_path_factory.mktemp("ckpt")
    return _save(clf, d / "clf.ckpt"), _save(codec, d / "codec.ckpt")


@pytest.fixture(scope="module")
def served(checkpoints):
    clf_path, codec_path = checkpoints
    clf = load_classifier(clf_path)
    vit = clf.model.vit.eval()
    link, cut = load_trained_codec(codec_path, vit)
    return clf, build_catalog(vit, clf.mean, clf.std, codec=link, codec_cut=cut)


def test_load_trained_codec_gives_its_link_and_block(checkpoints, served):
    _, cat = served
    assert cat.codec_cut == 1 and cat.codec == "codec_factorized"
    assert cat.embedders["rgb"] == "front_rgb_encoder_0_1"
    assert cat.segments[0].startswith("encoder_1_")


def test_a_codec_of_another_encoder_is_refused(checkpoints):
    clf_path, codec_path = checkpoints
    vit = load_classifier(clf_path).model.vit
    with torch.no_grad():
        vit.blocks[0].mlp.fc1.weight.add_(0.01)
    with pytest.raises(ValueError, match="model.codec .* another encoder .* blocks.0.mlp.fc1"):
        load_trained_codec(codec_path, vit)
    with pytest.raises(ValueError, match="not a CodecTask checkpoint"):
        load_trained_codec(clf_path, vit)


def test_served_chain_equals_the_codec_checkpoint_model(checkpoints, served, images):
    """Front -> codec bitstream -> ground segments gives the split model's own logits."""
    _, cat = served
    split = load_classifier(checkpoints[1])
    resp = InProcessRuntime(cat).handle(Request("r", TASKS, "s", payload=images))
    assert resp.ok, resp.error
    m = split.model.eval()
    with torch.no_grad():
        tokens = m.satellite_part(split.normalize(images))
        decoded = m.link.decompress(m.link.compress(tokens), tokens.shape[1:])
        ref = m.head(m.ground_part(decoded))
    torch.testing.assert_close(resp.outputs["landcover"], ref, rtol=0, atol=1e-6)
    assert resp.served_by[:2] == ["front_rgb_encoder_0_1@local", "codec_factorized@local"]


def test_front_costs_the_blocks_it_runs(served, vit):
    _, cat = served
    costs = {n: s.cost for n, s in cat.services.items()}
    plain = build_catalog(vit, [0.5] * 3, [0.25] * 3, cuts=(1,))
    plain_costs = {n: s.cost for n, s in plain.services.items()}
    assert costs["front_rgb_encoder_0_1"].flops == (plain_costs["embed_rgb"].flops
                                                    + plain_costs["encoder_0_1"].flops)
    assert costs["front_rgb_encoder_0_1"].param_bytes == (
        plain_costs["embed_rgb"].param_bytes + plain_costs["encoder_0_1"].param_bytes)
    assert costs["codec_factorized"].flops > 0  # its analysis transform runs on board
    link = cat.services["codec_factorized"].link  # on board: the analysis transform's weights
    assert costs["codec_factorized"].param_bytes == 4 * sum(p.numel() for p in link.g_a.parameters())


def test_bad_cuts_and_cut_without_codec_are_refused(vit):
    with pytest.raises(ValueError, match=r"in 2\.\.1 \(blocks 0\.\.1 run on board"):
        build_catalog(vit, [0.5] * 3, [0.25] * 3, cuts=(1,), codec="int8", codec_cut=1)
    with pytest.raises(ValueError, match="above 0 only with a codec"):
        build_catalog(vit, [0.5] * 3, [0.25] * 3, codec_cut=1)


def test_microservices_alone_pay_the_codec_on_board(served, plan):
    _, cat = served
    nodes = default_nodes(plan.satellites, plan.stations)
    demands = [Demand(plan.satellites[0], TASKS, 0.01, tiles=8)]
    p = PlacementProblem.from_catalog(cat, nodes, demands,
                                      modality_token_bytes={"rgb": 12.5})
    assert p.source_services("rgb") == ["front_rgb_encoder_0_1", "codec_factorized"]
    assert p.payload_bytes("rgb", 8) == 100.0
    assert p.payload_bytes("pan", 8) == 8 * p.token_bytes  # not measured: one example's size
    reqs = make_requests(demands, 600, deadline_s=300, seed=0)
    from research.serving.placement import optimise
    from research.serving.routing import Network
    from research.serving.simulator import microservice_routes

    micro = microservice_routes(p, [optimise(p, Network(plan))], 3600, reqs)[0]
    assert micro[0].flops == 8 * (p.flops["front_rgb_encoder_0_1"] + p.flops["codec_factorized"])
    assert micro[0].out_bytes == 100.0
    shared = onboard_shared_routes(p, reqs)[0][0]
    full = p.flops["front_rgb_encoder_0_1"] + sum(p.flops[s] for s in p.stages)
    assert shared.flops == 8 * (full + sum(p.flops[p.heads[t]] for t in TASKS))
    # the decoder runs (and weighs) where the first stage after the cut runs
    assert p.stage_services(demands[0], 0)[0] == "decode_factorized"
    assert micro[1].flops >= 8 * p.flops["decode_factorized"] > 0
    assert p.param_bytes["decode_factorized"] > 0
    # weights: microservices hold the codec's encoder on the source, the baselines never do
    from research.serving.compare import monolithic_memory, onboard_shared_memory

    src = plan.satellites[0]
    pl = optimise(p, Network(plan))
    assert "codec_factorized" in pl.replicas and src in pl.replicas["codec_factorized"]
    assert pl.memory_by_node(p.param_bytes)[src] >= (p.param_bytes["front_rgb_encoder_0_1"]
                                                     + p.param_bytes["codec_factorized"])
    full_mem = (p.param_bytes["front_rgb_encoder_0_1"] + sum(p.param_bytes[s] for s in p.stages)
                + sum(p.param_bytes[p.heads[t]] for t in TASKS))
    assert onboard_shared_memory(p)[src] == full_mem
    heads = sum(p.param_bytes[p.heads[t]] for t in TASKS)
    assert monolithic_memory(p)[src] == 3 * (full_mem - heads) + heads  # a model per task


def test_results_go_down_as_answers_not_logits(served):
    _, cat = served
    assert cat.services["head_landcover"].cost.out_bytes == 1  # a class index
    assert cat.services["head_coarse"].cost.out_bytes == 1
    dim = cat.services["head_retrieval"].in_features
    assert cat.services["head_retrieval"].cost.out_bytes == 2 * dim  # float16 embedding


def test_an_int8_retrieval_answer_is_a_byte_a_dimension(vit):
    cat = build_catalog(vit, [0.5] * 3, [0.25] * 3, retrieval_answer="int8")
    dim = cat.services["head_retrieval"].in_features
    assert cat.services["head_retrieval"].cost.out_bytes == dim + 4
    with pytest.raises(ValueError, match="retrieval answer 'int4'"):
        build_catalog(vit, [0.5] * 3, [0.25] * 3, retrieval_answer="int4")
    raw = {"orbit": {"file": "experiments/orbit/demo_6x11.yaml"},
           "model": {"retrieval_answer": "int4"}}
    with pytest.raises(ServingConfigError, match="model.retrieval_answer 'int4'"):
        parse_serve_config(raw)


def test_token_bytes_are_measured_on_the_tiles(served, images, catalog):
    _, cat = served
    n = token_bytes_per_tile(cat, images, "rgb")
    with torch.no_grad():
        tokens = cat.services["front_rgb_encoder_0_1"](cat.normalize(images))
    sizes = [len(b) for b in cat.services["codec_factorized"].encode(tokens)]
    assert n == pytest.approx(sum(sizes) / len(sizes))
    assert token_bytes_per_tile(catalog, images, "rgb") is None  # no codec: fixed float32 size
    acc = {"modalities": {"rgb": {"token_bytes_per_tile": n}, "pan": {}}}
    assert measured_token_bytes(acc) == {"rgb": n}


def test_a_missing_codec_checkpoint_is_a_config_error():
    raw = {"orbit": {"file": "experiments/orbit/demo_6x11.yaml"},
           "model": {"codec": "checkpoints/no_such_codec.ckpt"}}
    with pytest.raises(ServingConfigError, match="model.codec .*no_such_codec.ckpt.* not a file"):
        parse_serve_config(raw)

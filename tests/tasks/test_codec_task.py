"""CodecTask: every registered link trains, codes real bytes and is tested on them; the CLI runs it."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from encoders import HEADER_SIZE, list_links
from research.cli import main
from research.paths import REPO_ROOT
from research.tasks.codec import CodecTask

CODEC_DIR = REPO_ROOT / "experiments" / "codec"
TINY_CODEC = {"latent_dim": 4, "hidden_dim": 32, "hyper_dim": 4, "hyper_hidden_dim": 16, "num_steps": 4}


def _task(codec: str, **overrides: object) -> CodecTask:
    torch.manual_seed(0)
    args = {"backbone": "satvit_tiny", "codec": codec, "lmbda": 1e-2, **TINY_CODEC, **overrides}
    return CodecTask(**args)


def _loader() -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 3, 64, 64, generator=gen), torch.randint(0, 10, (16,), generator=gen))
    return DataLoader(data, batch_size=8)


def _trainer(**kwargs: object) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, **kwargs,
    )


@pytest.mark.parametrize("codec", list_links())
def test_every_link_trains_and_is_tested_on_real_bytes(codec: str) -> None:
    task = _task(codec, finetune="head", distill_weight=0.5)
    before = {n: p.detach().clone() for n, p in task.named_parameters()}
    trainer = _trainer(max_epochs=1, limit_val_batches=1)
    trainer.fit(task, _loader(), _loader())
    assert trainer.global_step == 2  # one per batch, although the quantiles step too
    for name, param in task.named_parameters():
        changed = not torch.equal(param, before[name])
        assert changed == param.requires_grad, f"{name}: trainable={param.requires_grad}"
    assert any(n.startswith("model.vit.blocks") for n in before)
    assert not any(p.requires_grad for p in task.model.vit.blocks.parameters())
    result = trainer.test(task, _loader(), verbose=False)[0]
    assert result["test/bytes_per_inference"] > HEADER_SIZE
    assert result["test/bits_per_inference"] == pytest.approx(8 * result["test/bytes_per_inference"])
    assert 0.0 <= result["test/acc"] <= 1.0
    if task.link.aux_loss().requires_grad:  # learned codecs: estimated bits and the gap
        est = result["test/bits_per_inference_estimated"]
        assert result["test/bits_gap_per_inference"] == pytest.approx(result["test/bits_per_inference"] - est, rel=1e-4)
    else:  # the real-byte path equals forward for links that quantise in forward
        assert result["test/acc"] == result["test/acc_forward"]


@pytest.mark.parametrize("finetune", ["frozen", "head", "lora", "full"])
@pytest.mark.parametrize("codec", ["factorized", "hyperprior"])
def test_main_and_aux_parameters_partition_the_trainable_ones(codec: str, finetune: str) -> None:
    task = _task(codec, finetune=finetune)
    main_params, aux = task.main_and_aux_parameters()
    ids = [id(p) for p in main_params], [id(p) for p in aux]
    trainable = {id(p) for p in task.parameters() if p.requires_grad}
    assert aux and not set(ids[0]) & set(ids[1])
    assert set(ids[0]) | set(ids[1]) == trainable
    grouped = {id(p) for g in task.parameter_groups() for p in g["params"]}
    assert grouped == set(ids[0])
    link_params = {id(p) for p in task.link.parameters()}
    assert link_params <= trainable
    if finetune == "frozen":
        assert trainable == link_params


def test_rate_weight_lowers_the_rate() -> None:
    rates = []
    for lmbda in (0.0, 1.0):
        task = _task("factorized", finetune="frozen", lmbda=lmbda, lr=1e-2)
        trainer = _trainer(max_epochs=4, limit_val_batches=0)
        trainer.fit(task, _loader())
        rates.append(trainer.test(task, _loader(), verbose=False)[0]["test/bits_per_inference"])
    assert rates[1] < rates[0]


def test_rate_weight_makes_spike_trains_cheaper_under_the_spike_prior(tmp_path: Path) -> None:
    """``codec_options.prior``: likelihoods from the running counts, so lmbda trains sparser
    (cheaper) spikes; tested on range-coded bytes, and the counts survive a checkpoint."""
    results = []
    for lmbda in (0.0, 1.0):
        task = _task("spike", lmbda=lmbda, lr=3e-2, num_steps=2,
                     codec_options={"prior": True, "prior_momentum": 0.5})
        trainer = _trainer(max_epochs=4, limit_val_batches=0)
        trainer.fit(task, _loader())
        results.append(trainer.test(task, _loader(), verbose=False)[0])
    assert results[1]["test/bits_per_inference"] < results[0]["test/bits_per_inference"]
    assert "test/bits_per_inference_estimated" in results[1]
    assert float(task.link.prior_seen) > 0
    path = tmp_path / "prior.ckpt"
    trainer.save_checkpoint(path)
    again = CodecTask.load_from_checkpoint(path)
    assert torch.equal(again.link.prior_ones, task.link.prior_ones)


# ----------------------------------------------------------------- the real CLI and YAMLs
@pytest.fixture
def cli_args(fake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tmp_path)  # the YAMLs write under ./outputs
    return [
        "--config", str(CODEC_DIR / "base.yaml"),
        "--config", str(CODEC_DIR / "lambda_1e-2.yaml"),
        "--config", str(CODEC_DIR / "split_0.yaml"),
        "--model.init_args.backbone", "satvit_tiny", "--model.init_args.pretrained", "null",
        "--model.init_args.latent_dim", "4", "--model.init_args.hidden_dim", "32",
        "--data.init_args.root", str(fake_root), "--data.init_args.batch_size", "8",
        "--data.init_args.split_file", str(tmp_path / "split.json"),
        "--trainer.enable_progress_bar", "false",
    ]


def test_cli_fast_dev_run(cli_args: list[str]) -> None:
    assert main(["fit", *cli_args, "--trainer.fast_dev_run", "1"]) == 0
    assert main(["test", *cli_args, "--trainer.fast_dev_run", "1"]) == 0


def test_cli_checkpoint_then_test_on_real_bytes(cli_args: list[str], tmp_path: Path) -> None:
    fit = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    assert main(["fit", *cli_args, *fit]) == 0
    last = next(tmp_path.rglob("last.ckpt"))
    hparams = torch.load(last, weights_only=False)["hyper_parameters"]
    assert hparams["lmbda"] == pytest.approx(1e-2) and hparams["codec"] == "factorized"
    assert main(["test", *cli_args, "--ckpt_path", str(last)]) == 0
    logs = [p for p in (tmp_path / "outputs" / "codec").rglob("metrics.csv") if "test/acc" in p.read_text()]
    rows = list(csv.DictReader(logs[0].open()))
    test = next(r for r in rows if r.get("test/acc"))
    assert float(test["test/bytes_per_inference"]) > HEADER_SIZE
    assert float(test["test/bits_per_inference_estimated"]) > 0


def test_cached_cut_tokens_give_the_same_losses_as_images() -> None:
    task = _task("factorized", split_index=1).eval()
    images, labels = next(iter(_loader()))
    tokens = task.model.satellite_part(images)
    torch.manual_seed(0)
    from_images = task._losses(images, labels)
    torch.manual_seed(0)
    from_tokens = task._losses(tokens, labels)
    torch.testing.assert_close(from_tokens["loss"], from_images["loss"])
    trainer = _trainer(max_epochs=1, limit_val_batches=0)
    token_data = TensorDataset(tokens.detach(), labels)
    trainer.fit(task, DataLoader(token_data, batch_size=4))
    assert trainer.global_step == 2


def test_cached_tokens_are_refused_when_the_satellite_part_trains() -> None:
    task = _task("factorized", split_index=1, finetune="lora")
    images, labels = next(iter(_loader()))
    with pytest.raises(ValueError, match="finetune='lora' trains the satellite part"):
        task._losses(task.model.satellite_part(images).detach(), labels)
    at_zero = _task("factorized", split_index=0, finetune="lora")  # LoRA adapts only ground blocks
    assert not at_zero.satellite_part_trains()
    at_zero._losses(at_zero.model.satellite_part(images).detach(), labels)  # cached tokens are fine


def test_cli_merged_codec_yaml(cli_args: list[str]) -> None:
    """experiments/codec/merge8_split6.yaml parses and runs (tiny model: its last cut is 2)."""
    args = [*cli_args, "--config", str(CODEC_DIR / "merge8_split6.yaml"),
            "--model.init_args.split_index", "2", "--model.init_args.hidden_dim", "16"]
    assert main(["fit", *args, "--trainer.fast_dev_run", "1"]) == 0


def test_checkpoints_leave_the_teacher_out_and_load_it_back(tmp_path: Path) -> None:
    """The distillation teacher never trains: checkpoints skip it, loading rebuilds it from
    ``pretrained``."""
    weights = tmp_path / "vit.pt"
    torch.save(_task("identity").model.vit.state_dict(), weights)
    task = _task("factorized", finetune="head", distill_weight=1.0, pretrained=str(weights))
    trainer = _trainer(max_epochs=1, limit_val_batches=0)
    trainer.fit(task, _loader())
    path = tmp_path / "codec.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["state_dict"]
    assert state and not any(k.startswith("teacher.") for k in state)
    loaded = CodecTask.load_from_checkpoint(path)
    for key, value in task.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)


def test_a_checkpoint_saved_outside_the_cli_is_testable_by_it(cli_args: list[str], tmp_path: Path) -> None:
    """Sweep scripts train with a plain Trainer; ``satedge test --ckpt_path`` must still rebuild them."""
    task = _task("factorized", split_index=0)
    trainer = _trainer(max_epochs=1, limit_val_batches=0)
    trainer.fit(task, _loader())
    path = tmp_path / "script.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)["hyper_parameters"]
    assert saved["_class_path"] == "research.tasks.codec.CodecTask"
    assert main(["test", *cli_args, "--ckpt_path", str(path), "--trainer.logger", "false"]) == 0


def test_variable_rate_student_draws_a_level_per_step_and_tests_at_the_chosen_one() -> None:
    task = _task("student", codec_options={"num_rates": 3}, lmbdas=[1.0, 1e-2, 1e-4])
    drawn = []
    original = task.link.set_rate
    task.link.set_rate = lambda index: drawn.append(index) or original(index)
    _trainer(max_steps=12).fit(task, DataLoader(_loader().dataset, batch_size=2))
    assert set(drawn) == {0, 1, 2}  # every level trains
    for level in (0, 2):
        task.hparams.rate_index = level
        _trainer().test(task, _loader(), verbose=False)
        assert task.link.rate_index == level
        payload = task.link.compress(task.model.cut_tokens(torch.randn(1, 3, 64, 64)))[0]
        assert payload[4] == level  # the header's flags byte carries the level


@pytest.mark.parametrize(("overrides", "match"), [
    ({"codec_options": {"num_rates": 3}, "lmbdas": [1e-2, 1e-3]}, "lmbdas has 2 rate weights"),
    ({"codec_options": {"num_rates": 3}}, "give lmbdas"),
    ({"codec_options": {"num_rates": 2}, "lmbdas": [1e-2, 1e-3], "rate_index": 2}, "rate_index=2"),
    ({"feature_distill_weight": 1.0}, "needs the teacher that distill_weight > 0 builds"),
])
def test_rate_weights_must_match_the_levels(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _task("student", **overrides)


# ----------------------------------------------------------------- spiking satellite part
def _spiking_task(**overrides: object) -> CodecTask:
    args = {"split_index": 1, "spiking_blocks": [0], "block_steps": 2, "finetune": "frozen",
            "distill_weight": 1.0, "cut_distill_weight": 1.0, "rate_penalty": 0.1, **overrides}
    return _task("spike", **args)


def test_spiking_blocks_are_calibrated_trained_and_reloaded(tmp_path: Path) -> None:
    """Only the spiking blocks and the link train; a checkpoint rebuilds the same spiking model."""
    from research.tasks.loading import load_classifier
    from snn.blocks import SpikingBlock

    weights = tmp_path / "vit.pt"
    torch.save(_task("identity").model.vit.state_dict(), weights)
    task = _spiking_task(pretrained=str(weights))
    images, _ = next(iter(_loader()))
    task.calibrate(images)
    blocks = task.model.vit.blocks
    assert [isinstance(b, SpikingBlock) for b in blocks] == [True, False]
    assert blocks[0].enc2.threshold != 1.0  # set from data
    before = {n: p.detach().clone() for n, p in task.named_parameters()}
    trainer = _trainer(max_epochs=1, limit_val_batches=0)
    trainer.fit(task, _loader())
    changed = {n for n, p in task.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("model.vit.blocks.0.") for n in changed)
    assert any(n.startswith("model.link.") for n in changed)
    assert not any(n.startswith(("model.vit.blocks.1.", "model.vit.head", "teacher.")) for n in changed)
    path = tmp_path / "snn.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=False)
    ckpt["EuroSATDataModule"] = {"mean": [0.0] * 3, "std": [1.0] * 3}
    torch.save(ckpt, path)
    clf = load_classifier(path)
    with torch.no_grad():
        torch.testing.assert_close(clf.model(images), task.eval().model(images))


@pytest.mark.parametrize(("overrides", "match"), [
    ({"spiking_blocks": [1]}, "not on board"),
    ({"block_steps": 0}, "T >= 1"),
    ({"spiking_attention": "softmax"}, "spiking_attention"),
    ({"distill_weight": 0.0, "rate_penalty": 0.0}, "cut_distill_weight"),
    ({"rate_penalty": -1.0}, "rate_penalty"),
    ({"cut_distill_on": "link"}, "cut_distill_on='link'"),
])
def test_impossible_spiking_parts_are_refused(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _spiking_task(**overrides)


def test_a_spike_link_larger_than_the_identity_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="identity payload"):
        _task("spike", num_steps=64, latent_dim=64)  # 4096 bits per token >= 32 x 128


def test_init_from_carries_trained_spiking_blocks_into_a_spike_link_task(tmp_path: Path) -> None:
    """Stage 1 (identity link) initialises stage 2 (spike link); no re-calibration overwrites it."""
    stage1 = _task("identity", split_index=1, spiking_blocks=[0], block_steps=2)
    stage1.calibrate(next(iter(_loader()))[0])
    path = tmp_path / "stage1.ckpt"
    torch.save({"state_dict": stage1.state_dict()}, path)
    link_model = _task("spike", split_index=1)  # a spike link trained behind ANN blocks
    link_path = tmp_path / "link.ckpt"
    torch.save({"state_dict": link_model.state_dict()}, link_path)
    stage2 = _task("spike", split_index=1, spiking_blocks=[0], block_steps=2,
                   init_from=[str(path), str(link_path)])
    # the ANN blocks of the link checkpoint share names and shapes but must not overwrite them
    for key, value in stage1.model.vit.state_dict().items():
        torch.testing.assert_close(stage2.model.vit.state_dict()[key], value, msg=key)
    for key, value in link_model.model.link.state_dict().items():
        torch.testing.assert_close(stage2.model.link.state_dict()[key], value, msg=key)
    assert stage2._calibrated
    only_link = _task("spike", split_index=1, spiking_blocks=[0], init_from=[str(link_path)])
    assert not only_link._calibrated  # its spiking block still needs converting
    with pytest.raises(ValueError, match="no model weight matches"):
        torch.save({"state_dict": {"other.x": torch.zeros(1)}}, tmp_path / "bad.ckpt")
        _task("spike", init_from=[str(tmp_path / "bad.ckpt")])


def test_frozen_spiking_blocks_stay_while_the_link_learns() -> None:
    task = _spiking_task(train_spiking_blocks=False)
    task.calibrate(next(iter(_loader()))[0])
    before = {n: p.detach().clone() for n, p in task.named_parameters()}
    _trainer(max_epochs=1, limit_val_batches=0).fit(task, _loader())
    changed = {n for n, p in task.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("model.link.") for n in changed)


@pytest.mark.parametrize(("target", "link_learns"), [("tokens", False), ("decoded", True)])
def test_cut_distillation_on_decoded_tokens_trains_the_link(target: str, link_learns: bool) -> None:
    """Behind frozen blocks the tokens before the link are a constant: only ``decoded`` (the
    link's output) gives the link a gradient from the cut distillation."""
    task = _spiking_task(train_spiking_blocks=False, cut_distill_on=target, rate_penalty=0.0)
    images, labels = next(iter(_loader()))
    task.calibrate(images)
    task.train()
    cd = task._losses(images, labels)["cut_distill"]
    assert cd.requires_grad == link_learns  # nothing before the link trains
    if link_learns:
        grads = torch.autograd.grad(cd, list(task.model.link.parameters()), allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)

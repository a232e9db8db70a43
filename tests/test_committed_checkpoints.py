"""The committed checkpoints: intact (sha256), loadable, and as accurate as the README says."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch

from research.data import EuroSATDataModule
from research.models import build_backbone, load_backbone_weights
from research.paths import checkpoints_dir, eurosat_dir

MANIFEST = checkpoints_dir() / "manifest.json"
RESULTS = checkpoints_dir().parent / "results" / "foundation_eurosat.json"


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def test_manifest_hashes_match_files() -> None:
    entries = _manifest()
    assert "satvit_small_mae.pt" in entries
    for name, entry in entries.items():
        path = checkpoints_dir() / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], name
        assert path.stat().st_size <= 10 * 2**20, f"{name} exceeds 10 MB"


@pytest.mark.parametrize("name", ["satvit_small_mae.pt", "satvit_small_mae_long.pt"])
def test_mae_foundation_loads_into_the_default_backbone(name: str) -> None:
    vit = build_backbone("satvit_small")
    missing = load_backbone_weights(vit, checkpoints_dir() / name)
    assert set(missing) == {"head.weight", "head.bias"}  # a new task head


@pytest.mark.parametrize("mode", ["head", "lora", "full", "full_long", "full_ema", "full_mae_long", "head_mae_long", "lora_mae_long"])
def test_finetuned_checkpoint_on_embedded_images(mode: str) -> None:
    """The embedded images come from the full test split: an unseen check of each checkpoint."""
    path = checkpoints_dir() / f"satvit_small_{mode}.ckpt"
    if not path.exists():
        pytest.skip(f"{path.name} not committed")
    from research.tasks import ClassificationTask

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    hparams = {**ckpt["hyper_parameters"], "pretrained": None}
    task = ClassificationTask(**{k: v for k, v in hparams.items() if not k.startswith("_")})
    task.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    task.eval()
    dm = EuroSATDataModule(root=None, batch_size=250)
    dm.setup()
    stats = ckpt["EuroSATDataModule"]
    dm.mean, dm.std = stats["mean"], stats["std"]
    data = dm.load()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data), 250):
            batch = [data.images[start : start + 250], data.labels[start : start + 250]]
            images, labels = dm.prepare_batch(batch, train=False)
            correct += int((task(images).argmax(1) == labels).sum())
    accuracy = correct / len(data)
    reported = json.loads(RESULTS.read_text())[mode]["test_acc"]
    # 1,000 images: a 95% binomial interval is about +-2.5 points around the full-test accuracy.
    assert abs(accuracy - reported) < 0.04, (accuracy, reported)


def moved_configs(args: list[str]) -> list[str]:
    """Recorded arguments name the foundation configs where they were when measured
    (``experiments/<name>.yaml``); the same files now live in ``experiments/foundation/``."""
    return [re.sub(r"^experiments/(?=[^/]+\.yaml$)", "experiments/foundation/", a) for a in args]


def test_recorded_arguments_name_existing_configs() -> None:
    from research.paths import REPO_ROOT

    for name, row in json.loads(RESULTS.read_text()).items():
        args = moved_configs(row["args"])
        configs = [args[i + 1] for i, a in enumerate(args) if a == "--config"]
        assert configs and all((REPO_ROOT / c).is_file() for c in configs), (name, configs)


@pytest.mark.slow
@pytest.mark.skipif(not eurosat_dir().is_dir(), reason="full EuroSAT copy not present")
def test_full_test_split_reproduces_the_reported_accuracy(tmp_path, monkeypatch) -> None:
    from research.cli import run_lightning
    from research.paths import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    for name, row in json.loads(RESULTS.read_text()).items():
        cli = run_lightning([
            *moved_configs(row["args"]), "--trainer.default_root_dir", str(tmp_path),
            "--trainer.logger", "false",
        ])
        assert abs(float(cli.trainer.callback_metrics["test/acc"]) - row["test_acc"]) < 1e-4, name


CODEC = "satvit_small_codec_split5_m8.ckpt"
CODEC_SETTING = "merge=8,hidden=32,distill=1,lambda=0.0001"


STUDENT = "satvit_small_student_split0.ckpt"
STUDENT_RUN = "gpu_g4l16h64_views8_e12"


def _rows(results: str) -> list[dict]:
    return [json.loads(r) for r in (checkpoints_dir().parent / "results" / results / "rows.jsonl").read_text().splitlines()]


def _codec_row() -> dict:
    return next(r for r in _rows("rate_accuracy") if r["split_index"] == 5 and r["setting"] == CODEC_SETTING)


def _student_row() -> dict:
    return next(r for r in _rows("codec_frontier_gpu") if r["run"] == STUDENT_RUN)


@pytest.mark.parametrize(("name", "row_of"), [(CODEC, _codec_row), (STUDENT, _student_row)])
def test_committed_codec_on_embedded_images(name, row_of) -> None:
    """Real bytes through a committed codec on the 1,000 embedded (unseen, test-split) images."""
    from encoders import payload_bits
    from research.tasks.loading import load_classifier

    clf = load_classifier(checkpoints_dir() / name)
    model, row = clf.model, row_of()
    dm = EuroSATDataModule(root=None, batch_size=250)
    dm.setup()
    dm.mean, dm.std = clf.mean, clf.std
    data = dm.load()
    correct, bits = 0, []
    with torch.no_grad():
        for start in range(0, len(data), 250):
            batch = [data.images[start : start + 250], data.labels[start : start + 250]]
            images, labels = dm.prepare_batch(batch, train=False)
            tokens = model.cut_tokens(images)
            payloads = model.link.compress(tokens)
            decoded = model.link.decompress(payloads, tokens.shape)
            correct += int((model.head(model.ground_part(decoded)).argmax(1) == labels).sum())
            bits.append(payload_bits(payloads))
    bytes_per_inference = float(torch.cat(bits).float().mean()) / 8
    assert abs(correct / len(data) - row["acc"]) < 0.04, (correct / len(data), row["acc"])
    assert abs(bytes_per_inference - row["bytes_per_inference"]) < 0.1 * row["bytes_per_inference"]


@pytest.mark.slow
@pytest.mark.skipif(not eurosat_dir().is_dir(), reason="full EuroSAT copy not present")
def test_committed_codec_reproduces_its_row(tmp_path, monkeypatch) -> None:
    """``satedge test`` on the committed codec gives its rate-accuracy row on the full test split."""
    from research.cli import run_lightning
    from research.paths import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    cli = run_lightning(["test", "--config", "experiments/codec/base.yaml", "--ckpt_path", f"checkpoints/{CODEC}",
                         "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"])
    metrics, row = cli.trainer.callback_metrics, _codec_row()
    assert abs(float(metrics["test/acc"]) - row["acc"]) < 1e-4
    assert abs(float(metrics["test/bytes_per_inference"]) - row["bytes_per_inference"]) < 0.05


SPIKING = {"satvit_small_snn_cut3_ssa.ckpt": "snn_cut",        # the k = 8 link trained jointly
           "satvit_small_snn_cut3_link.ckpt": "snn_cut_link",  # the merged link, blocks frozen
           "satvit_small_snn_cut3_e4_link.ckpt": "snn_cut_e4",  # 4-epoch blocks, merged link
           "satvit_small_snn_cut3_e4_link_e9.ckpt": "snn_cut_e4_e9"}  # the same link, 9 epochs


def _spiking_row(name: str = "satvit_small_snn_cut3_ssa.ckpt") -> dict:
    record = checkpoints_dir().parent / "results" / SPIKING[name] / "snn_cut.json"
    rows = json.loads(record.read_text())["rows"]
    return next(r for r in rows if r["checkpoint"].endswith(name) and r["link"] != "identity")


@pytest.mark.parametrize("name", sorted(SPIKING))
def test_committed_spiking_part_on_embedded_images(name: str) -> None:
    """A spiking satellite part at cut 3 on the 1,000 embedded (unseen, test-split) images:
    accuracy, real bytes and 45 nm on-board energy near its committed full-test row."""
    from research.data import EuroSATDataModule
    from research.eval.spiking_cut import from_checkpoint, measure

    row = _spiking_row(name)
    images, labels = EuroSATDataModule(root=None).subset("test").tensors
    got = measure(from_checkpoint(checkpoints_dir() / name), images, labels)
    assert got["family"] == "snn" and got["cut"] == 3
    assert abs(got["accuracy"] - row["accuracy"]) < 0.04, (got["accuracy"], row["accuracy"])
    for key in ("bytes_per_inference", "energy_j_cmos45nm", "energy_j_loihi"):
        assert abs(got[key] - row[key]) < 0.1 * row[key], (key, got[key], row[key])


@pytest.mark.slow
@pytest.mark.skipif(not eurosat_dir().is_dir(), reason="full EuroSAT copy not present")
def test_committed_spiking_row_is_reproduced() -> None:
    """Re-measure the committed spiking row on the full test split: same numbers."""
    from research.data import EuroSATDataModule
    from research.eval.evaluate import random_subset
    from research.eval.spiking_cut import from_checkpoint, measure

    row = _spiking_row()
    dm = EuroSATDataModule(root=str(eurosat_dir()))
    images, labels = random_subset(*dm.subset("test").tensors, None)
    got = measure(from_checkpoint(checkpoints_dir() / "satvit_small_snn_cut3_ssa.ckpt"), images,
                  labels)
    assert got["images"] == row["images"]
    for key in ("accuracy", "bytes_per_inference", "synops", "macs", "energy_j_cmos45nm"):
        assert got[key] == pytest.approx(row[key], rel=1e-6), key

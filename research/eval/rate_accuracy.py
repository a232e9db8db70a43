"""Rate-accuracy experiment: learned token codecs at several cuts against image and token baselines.

Every point is measured on the same test images with real bytes: image codecs (raw, PNG, JPEG,
WebP via Pillow) are decoded and classified by the unsplit fine-tuned model; token baselines
(identity, float16, int8, int4) and learned codecs (``CodecTask``, one run per cut and rate
weight and token merge) go through ``decompress(compress(tokens))`` into the ground part.
:func:`rate_accuracy` writes ``rate_accuracy.{csv,json,png,pdf}`` to ``config.out`` and prints, per
cut, the fewest bytes within 1 and within 3 accuracy points of the uncompressed model. Every row
lands in ``config.out/rows.jsonl`` as soon as it is measured: a rerun skips what is there, and the
figure shows every row there, so a sweep can be run in parts (one cut, or one token merge, at a
time).

With a frozen satellite part (``finetune="frozen"`` or ``"head"``), codecs train on the tokens at
the cut, computed once per cut and cached on disk (:class:`research.data.features.FeatureDataModule`),
so an epoch costs only the ground part; testing always runs the whole pipeline on images.

``scripts/fig_rate_accuracy.py`` is the command line.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import lightning as L
import matplotlib
import numpy as np
import torch
from PIL import Image

from research.data import EuroSATDataModule
from research.data.features import FeatureDataModule, default_device, weights_key
from research.data.transforms import normalize
from research.models.presets import build_backbone, get_preset
from research.models.weights import export_task_checkpoint, load_backbone_weights
from research.paths import DEFAULT_CLASSIFIER
from research.tasks.classification import ClassificationTask
from research.tasks.codec import CodecTask

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from research.eval.figure_run import FigureRunConfig  # noqa: E402
from research.figures import save_figure  # noqa: E402

__all__ = ["QUALITIES", "TOKEN_BASELINES", "RateAccuracyConfig", "Reference", "by_depth",
           "codec_setting", "image_baselines", "rate_accuracy", "reference_model", "summarise"]

TOKEN_BASELINES = ("identity", "float16", "int8", "int4")
QUALITIES = (10, 30, 50, 75, 90)


@dataclass
class RateAccuracyConfig(FigureRunConfig):
    """One rate-accuracy run; ``None`` fields take the quick or full defaults (:meth:`with_defaults`).

    The fields are the options of ``scripts/fig_rate_accuracy.py`` (``--merge-tokens`` is
    ``merge_tokens``), whose help describes each.
    """

    split_file: str | None = None
    splits: list[int] | None = None
    lambdas: list[float] | None = None
    codec: str = "factorized"
    latent_dim: int | None = None
    num_steps: int | None = None
    spike_prior: bool = False
    merge_tokens: list[int] | None = None
    hidden_dim: int | None = None
    distill_weight: float = 0.0
    views: int = 1
    skip_images: bool = False
    finetune: str = "frozen"
    epochs: int | None = None
    ref_epochs: int = 4
    lr: float | None = None
    batch_size: int | None = None

    def with_defaults(self) -> RateAccuracyConfig:
        """A copy with every unset field filled: satvit_tiny on the embedded subset when ``quick``,
        else satvit_small from the fine-tuned checkpoint on full EuroSAT; cuts ``{0, depth/2,
        depth-1, depth}`` unless given."""
        if self.quick:
            defaults = {"backbone": "satvit_tiny", "splits": [1], "lambdas": [1e-3, 1e-1],
                        "merge_tokens": [1, 8], "epochs": 2, "latent_dim": 8, "lr": 1e-2,
                        "batch_size": 32}
        else:
            defaults = {"backbone": "satvit_small", "pretrained": DEFAULT_CLASSIFIER,
                        "root": "../shared/data/eurosat_rgb",
                        "split_file": "research/data/splits/eurosat_rgb_seed0.json",
                        "lambdas": [3e-4, 3e-3, 3e-2], "merge_tokens": [1, 8], "epochs": 10,
                        "latent_dim": 16, "lr": 1e-3, "batch_size": 128}
        config = replace(self, out=Path(self.out),
                         **{k: v for k, v in defaults.items() if getattr(self, k) is None})
        if config.splits is None:
            depth = get_preset(config.backbone).depth
            config.splits = sorted({0, depth // 2, depth - 1, depth})
        return config


def _trainer(epochs: int = 1) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, accelerator="auto", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0,
    )


def reference_weights(config: RateAccuracyConfig, dm: EuroSATDataModule, out: Path) -> str:
    """The fine-tuned model's weights file; without one (quick mode) train one briefly."""
    if config.pretrained:
        return config.pretrained
    torch.manual_seed(0)
    task = ClassificationTask(backbone=config.backbone, finetune="full", lr=2e-3, warmup_epochs=0.0)
    _trainer(config.ref_epochs).fit(task, datamodule=dm)
    path = out / "reference_vit.pt"
    torch.save(task.model.vit.state_dict(), path)
    return str(path)


@torch.no_grad()
def classify(vit: torch.nn.Module, images: torch.Tensor, dm: EuroSATDataModule, batch: int = 256) -> torch.Tensor:
    """Predicted labels of uint8 images ``[N, C, H, W]`` by the unsplit model."""
    device = next(vit.parameters()).device
    preds = [vit(normalize(images[i : i + batch].to(device), dm.mean, dm.std)).argmax(1).cpu()
             for i in range(0, len(images), batch)]
    return torch.cat(preds)


def _pil_roundtrip(image: torch.Tensor, fmt: str, quality: int | None) -> tuple[int, torch.Tensor]:
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    buf = io.BytesIO()
    kwargs = {"optimize": True} if fmt == "PNG" else {"quality": quality}
    pil.save(buf, format=fmt, **kwargs)
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return buf.tell(), torch.from_numpy(decoded.copy()).permute(2, 0, 1)


def image_baselines(vit: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    dm: EuroSATDataModule) -> list[dict]:
    """Raw, PNG, JPEG and WebP at several qualities, decoded and classified by the unsplit model."""
    settings = [("raw", None), ("PNG", None)]
    settings += [(fmt, q) for fmt in ("JPEG", "WEBP") for q in QUALITIES]
    rows = []
    for fmt, quality in settings:
        if fmt == "raw":
            sizes, decoded = [images[0].numel()] * len(images), images
        else:
            pairs = [_pil_roundtrip(img, fmt, quality) for img in images]
            sizes, decoded = [p[0] for p in pairs], torch.stack([p[1] for p in pairs])
        acc = (classify(vit, decoded, dm) == labels).float().mean().item()
        rows.append({"family": "image", "method": fmt.lower(), "split_index": "",
                     "setting": "" if quality is None else f"q={quality}",
                     "bytes_per_inference": float(np.mean(sizes)), "acc": acc})
    return rows


def _test_row(task: CodecTask, dm: EuroSATDataModule, family: str, setting: str) -> dict:
    result = _trainer().test(task, datamodule=dm, verbose=False)[0]
    return {
        "family": family, "method": task.hparams.codec, "split_index": task.hparams.split_index,
        "setting": setting, "bytes_per_inference": result["test/bytes_per_inference"],
        "acc": result["test/acc"], "acc_forward": result["test/acc_forward"],
        "bits_estimated": result.get("test/bits_per_inference_estimated", ""),
    }


def _done_rows(path: Path) -> dict[tuple, dict]:
    """Rows already measured by an earlier, interrupted run (one JSON object per line)."""
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["split_index"], r["method"], r["setting"]): r for r in rows}


def cut_tokens(config: RateAccuracyConfig, weights: str, dm: EuroSATDataModule, split: int) -> FeatureDataModule:
    """Tokens at cut ``split`` of the frozen model for every image split, cached on disk (fp16)."""
    device = default_device()
    model = CodecTask(codec="identity", split_index=split, backbone=config.backbone,
                      pretrained=weights).model.eval().to(device)
    key = weights_key(weights, f"split{split}-tokens")
    return FeatureDataModule(dm, model.satellite_part, key, train_views=config.views,
                             batch_size=config.batch_size, dtype=torch.float16, device=device)


def codec_setting(merge: int, lmbda: float, config: RateAccuracyConfig) -> str:
    """Row key of one learned codec (default transforms keep the key of earlier sweeps)."""
    parts = [] if merge == 1 else [f"merge={merge}"]
    if config.num_steps is not None:  # the spike link: its rate is T x k bits per token
        parts.append(f"k={config.latent_dim},T={config.num_steps}")
    if config.spike_prior:  # range-coded under a Bernoulli prior, rate-trained with lambda
        parts.append("prior")
    if config.hidden_dim:
        parts.append(f"hidden={config.hidden_dim}")
    if config.distill_weight:
        parts.append(f"distill={config.distill_weight:g}")
    if config.finetune != "frozen":  # the ground part co-adapts: another point, not a rerun
        parts.append(f"finetune={config.finetune}")
    return ",".join([*parts, f"lambda={lmbda:g}"])


def token_rows(config: RateAccuracyConfig, weights: str, dm: EuroSATDataModule) -> list[dict]:
    """Token baselines at every cut, then one trained codec per (cut, token merge, rate weight).

    Each finished row is appended to ``rows.jsonl`` under ``--out``; a rerun with the same
    ``--out`` skips them, so a stopped sweep resumes where it was.
    """
    common = {"backbone": config.backbone, "pretrained": weights}
    journal = config.out / "rows.jsonl"
    done = _done_rows(journal)
    rows = []

    def keep(row: dict) -> None:
        rows.append(row)
        with journal.open("a") as f:
            f.write(json.dumps(row) + "\n")

    for split in config.splits:
        for name in TOKEN_BASELINES:
            if (split, name, "") in done:
                rows.append(done[(split, name, "")])
                continue
            task = CodecTask(codec=name, split_index=split, finetune="frozen", **common)
            keep(_test_row(task, dm, "token", ""))
        cached = config.finetune in ("frozen", "head")
        train_dm = cut_tokens(config, weights, dm, split) if cached else dm
        for merge, lmbda in ((m, lam) for m in config.merge_tokens for lam in config.lambdas):
            setting = codec_setting(merge, lmbda, config)
            if (split, config.codec, setting) in done:
                rows.append(done[(split, config.codec, setting)])
                continue
            start = time.perf_counter()
            torch.manual_seed(0)
            task = CodecTask(
                codec=config.codec, split_index=split, finetune=config.finetune, lmbda=lmbda,
                latent_dim=config.latent_dim, merge_tokens=merge, hidden_dim=config.hidden_dim,
                distill_weight=config.distill_weight, lr=config.lr, aux_lr=config.lr,
                **({} if config.num_steps is None else {"num_steps": config.num_steps}),
                codec_options={"prior": True} if config.spike_prior else None, **common,
            )
            trainer = _trainer(config.epochs)
            trainer.fit(task, datamodule=train_dm)
            row = _test_row(task, dm, "codec", setting)
            task.model.link.update(force=True)
            export_task_checkpoint(trainer, config.out / "codecs" / f"split{split}_{setting}.ckpt",
                                   keep_float32=("model.link.",))
            keep({**row, "epochs": config.epochs, "train_s": time.perf_counter() - start})
            print(f"split {split} {setting}: {row['bytes_per_inference']:.1f} B, "
                  f"acc {100 * row['acc']:.2f}%", flush=True)
    return rows


def summarise(rows: list[dict], reference_acc: float) -> dict[str, dict]:
    """Per cut (and for image codecs), the fewest bytes within 1 and 3 points of the reference."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        key = "image" if row["family"] == "image" else f"split_{row['split_index']}"
        groups.setdefault(key, []).append(row)
    summary = {}
    for key, group in groups.items():
        entry = {}
        for points in (1, 3):
            ok = [r for r in group if 100 * (reference_acc - r["acc"]) <= points]
            best = min(ok, key=lambda r: r["bytes_per_inference"]) if ok else None
            entry[f"within_{points}pt"] = None if best is None else {
                "bytes_per_inference": best["bytes_per_inference"], "acc": best["acc"],
                "method": best["method"], "setting": best["setting"],
            }
        summary[key] = entry
    return summary


def by_depth(rows: list[dict]) -> dict[str, list[dict]]:
    """Learned codecs of one setting (shape and rate weight) trained at two or more cuts, by cut.

    Shows where the bottleneck can sit: what a fixed codec keeps as blocks move on board.
    """
    series: dict[str, list[dict]] = {}
    for row in rows:
        if row["family"] == "codec":
            series.setdefault(row["setting"], []).append(row)
    return {setting: sorted(group, key=lambda r: r["split_index"])
            for setting, group in sorted(series.items()) if len({r["split_index"] for r in group}) > 1}


def plot(rows: list[dict], reference_acc: float, out: Path, title: str) -> list[Path]:
    depth = by_depth(rows)
    fig, axes = plt.subplots(2 if depth else 1, 1, figsize=(7.5, 9.5 if depth else 5), squeeze=False)
    ax = axes[0, 0]
    lines: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["family"] == "image":
            key = (row["method"],)
        elif row["family"] == "token":  # about the same at every cut: one marker series per format
            key = (f"{row['method']} tokens, every cut",)
        else:
            shape = ",".join(p for p in row["setting"].split(",") if not p.startswith("lambda"))
            key = (f"{row['method']} codec {shape + ' ' if shape else ''}@ split {row['split_index']}",)
        lines.setdefault(key, []).append(row)
    for (label,), group in sorted(lines.items()):
        group = sorted(group, key=lambda r: r["bytes_per_inference"])
        x = [r["bytes_per_inference"] for r in group]
        y = [100 * r["acc"] for r in group]
        style = "-o" if "codec" in label else ("s" if "tokens" in label else ":^")
        if "merge" in label:
            style = "-D"
        ax.plot(x, y, style, ms=4, lw=1.2, label=label)
    ax.axhline(100 * reference_acc, color="k", lw=0.8, ls="--", label="uncompressed")
    ax.set_xscale("log")
    ax.set_xlabel("bytes per inference (real payloads)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: points stay visible
    if depth:
        ax = axes[1, 0]
        for setting, group in depth.items():
            ax.plot([r["split_index"] for r in group], [100 * r["acc"] for r in group], "-o", ms=4, label=setting)
        sizes = [r["bytes_per_inference"] for group in depth.values() for r in group]
        ax.axhline(100 * reference_acc, color="k", lw=0.8, ls="--", label="uncompressed")
        ax.set_xlabel("cut (blocks on board)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"one codec setting at every cut ({min(sizes):.0f}-{max(sizes):.0f} bytes per inference)",
                     fontsize=10)
        ax.grid(True, lw=0.3, alpha=0.5)
        ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.subplots_adjust(hspace=0.3)
    return save_figure(fig, out, "rate_accuracy")


@dataclass
class Reference:
    """The data, the fine-tuned weights and the uncompressed model every codec is measured against."""

    dm: EuroSATDataModule
    weights: str
    vit: torch.nn.Module
    acc: float


def reference_model(config: FigureRunConfig) -> Reference:
    """Set up the data and the uncompressed model of a codec figure and print its test accuracy.

    ``config`` needs ``root``, ``batch_size``, ``split_file``, ``backbone``, ``pretrained``,
    ``ref_epochs`` and ``out`` (``RateAccuracyConfig`` and ``FrontierConfig`` have them).
    """
    dm = EuroSATDataModule(root=config.root, batch_size=config.batch_size, split_file=config.split_file)
    dm.setup()
    weights = reference_weights(config, dm, config.out)
    vit = build_backbone(config.backbone)
    load_backbone_weights(vit, weights)
    vit.eval().to(default_device())
    images, labels = dm.subset("test").tensors
    acc = (classify(vit, images, dm) == labels).float().mean().item()
    print(f"uncompressed {config.backbone}: acc {100 * acc:.2f}% on {len(labels)} test images")
    return Reference(dm, weights, vit, acc)


def rate_accuracy(config: RateAccuracyConfig) -> dict:
    """Measure every image codec, token baseline and learned codec; write the figure and tables.

    Returns the record written to ``rate_accuracy.json`` (reference accuracy, rows, summary).
    """
    config = config.with_defaults()
    config.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    reference = reference_model(config)
    dm, weights, vit, reference_acc = reference.dm, reference.weights, reference.vit, reference.acc
    images, labels = dm.subset("test").tensors
    journal = config.out / "rows.jsonl"
    image_rows = [r for r in _done_rows(journal).values() if r["family"] == "image"]
    if not image_rows and not config.skip_images:  # the same test images: once per --out
        image_rows = image_baselines(vit, images, labels, dm)
        with journal.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in image_rows)
    rows = token_rows(config, weights, dm)
    measured = {(r["split_index"], r["method"], r["setting"]) for r in rows}
    # rows of earlier runs into the same --out (other cuts or settings) stay in the figure
    earlier = [r for key, r in _done_rows(journal).items()
               if key not in measured and r["family"] != "image"]
    rows = image_rows + rows + earlier
    summary = summarise(rows, reference_acc)
    fields = ["family", "method", "split_index", "setting", "bytes_per_inference", "acc",
              "acc_forward", "bits_estimated", "epochs", "train_s"]
    with (config.out / "rate_accuracy.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    title = f"{config.backbone}, {len(labels)} test images"
    plot(rows, reference_acc, config.out, title)
    record = {
        "reference_acc": reference_acc, "num_test_images": len(labels), "rows": rows,
        "summary": summary, "wall_s": time.perf_counter() - start,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
    }
    (config.out / "rate_accuracy.json").write_text(json.dumps(record, indent=2))
    for key, entry in summary.items():
        parts = []
        for points in (1, 3):
            best = entry[f"within_{points}pt"]
            parts.append(f"within {points} pt: " + ("none" if best is None else
                         f"{best['bytes_per_inference']:.0f} B ({best['method']} {best['setting']})"))
        print(f"{key}: " + "; ".join(parts))
    return record



"""Rate-accuracy figure: learned token codecs at several cuts against image and token baselines.

Every point is measured on the same test images with real bytes: image codecs (raw, PNG, JPEG,
WebP via Pillow) are decoded and classified by the unsplit fine-tuned model; token baselines
(identity, float16, int8, int4) and learned codecs (``CodecTask``, one run per cut and rate
weight and token merge) go through ``decompress(compress(tokens))`` into the ground part. Writes
``rate_accuracy.{csv,json,png,pdf}`` to ``--out`` and prints, per cut, the fewest bytes within 1
and within 3 accuracy points of the uncompressed model. Every row lands in ``--out/rows.jsonl``
as soon as it is measured: a rerun skips what is there, and the figure shows every row there,
so a sweep can be run in parts (one cut, or one token merge, at a time).

With a frozen satellite part (``--finetune frozen`` or ``head``), codecs train on the tokens at
the cut, computed once per cut and cached on disk (:class:`research.data.features.FeatureDataModule`),
so an epoch costs only the ground part; testing always runs the whole pipeline on images.

    python scripts/fig_rate_accuracy.py --quick      # satvit_tiny, embedded subset: ~1-2 min CPU
    python scripts/fig_rate_accuracy.py --out results/rate_accuracy
                                                     # satvit_small from the fine-tuned checkpoint,
                                                     # full EuroSAT, cuts {0, 3, 5, 6}
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
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

from research.eval.figures import save_figure  # noqa: E402

TOKEN_BASELINES = ("identity", "float16", "int8", "int4")
QUALITIES = (10, 30, 50, 75, 90)


def _trainer(epochs: int = 1) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, accelerator="auto", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0,
    )


def reference_weights(args: argparse.Namespace, dm: EuroSATDataModule, out: Path) -> str:
    """The fine-tuned model's weights file; in quick mode (no checkpoint) train one briefly."""
    if args.pretrained:
        return args.pretrained
    torch.manual_seed(0)
    task = ClassificationTask(backbone=args.backbone, finetune="full", lr=2e-3, warmup_epochs=0.0)
    _trainer(args.ref_epochs).fit(task, datamodule=dm)
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


def cut_tokens(args: argparse.Namespace, weights: str, dm: EuroSATDataModule, split: int) -> FeatureDataModule:
    """Tokens at cut ``split`` of the frozen model for every image split, cached on disk (fp16)."""
    device = default_device()
    model = CodecTask(codec="identity", split_index=split, backbone=args.backbone,
                      pretrained=weights).model.eval().to(device)
    key = weights_key(weights, f"split{split}-tokens")
    return FeatureDataModule(dm, model.satellite_part, key, train_views=args.views,
                             batch_size=args.batch_size, dtype=torch.float16, device=device)


def codec_setting(merge: int, lmbda: float, args: argparse.Namespace) -> str:
    """Row key of one learned codec (default transforms keep the key of earlier sweeps)."""
    parts = [] if merge == 1 else [f"merge={merge}"]
    if args.hidden_dim:
        parts.append(f"hidden={args.hidden_dim}")
    if args.distill_weight:
        parts.append(f"distill={args.distill_weight:g}")
    if args.finetune != "frozen":  # the ground part co-adapts: another point, not a rerun
        parts.append(f"finetune={args.finetune}")
    return ",".join([*parts, f"lambda={lmbda:g}"])


def token_rows(args: argparse.Namespace, weights: str, dm: EuroSATDataModule) -> list[dict]:
    """Token baselines at every cut, then one trained codec per (cut, token merge, rate weight).

    Each finished row is appended to ``rows.jsonl`` under ``--out``; a rerun with the same
    ``--out`` skips them, so a stopped sweep resumes where it was.
    """
    common = {"backbone": args.backbone, "pretrained": weights}
    journal = args.out / "rows.jsonl"
    done = _done_rows(journal)
    rows = []

    def keep(row: dict) -> None:
        rows.append(row)
        with journal.open("a") as f:
            f.write(json.dumps(row) + "\n")

    for split in args.splits:
        for name in TOKEN_BASELINES:
            if (split, name, "") in done:
                rows.append(done[(split, name, "")])
                continue
            task = CodecTask(codec=name, split_index=split, finetune="frozen", **common)
            keep(_test_row(task, dm, "token", ""))
        cached = args.finetune in ("frozen", "head")
        train_dm = cut_tokens(args, weights, dm, split) if cached else dm
        for merge, lmbda in ((m, lam) for m in args.merge_tokens for lam in args.lambdas):
            setting = codec_setting(merge, lmbda, args)
            if (split, args.codec, setting) in done:
                rows.append(done[(split, args.codec, setting)])
                continue
            start = time.perf_counter()
            torch.manual_seed(0)
            task = CodecTask(
                codec=args.codec, split_index=split, finetune=args.finetune, lmbda=lmbda,
                latent_dim=args.latent_dim, merge_tokens=merge, hidden_dim=args.hidden_dim,
                distill_weight=args.distill_weight, lr=args.lr, aux_lr=args.lr, **common,
            )
            trainer = _trainer(args.epochs)
            trainer.fit(task, datamodule=train_dm)
            row = _test_row(task, dm, "codec", setting)
            task.model.link.update(force=True)
            export_task_checkpoint(trainer, args.out / "codecs" / f"split{split}_{setting}.ckpt",
                                   keep_float32=("model.link.",))
            keep({**row, "epochs": args.epochs, "train_s": time.perf_counter() - start})
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="satvit_tiny on the embedded subset")
    parser.add_argument("--out", type=Path, default=Path("outputs/figures"))
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--pretrained", default=None, help="fine-tuned weights (.ckpt/.pt)")
    parser.add_argument("--root", default=None, help="EuroSAT ImageFolder (default: full set)")
    parser.add_argument("--split-file", default=None)
    parser.add_argument("--splits", type=int, nargs="+", default=None)
    parser.add_argument("--lambdas", type=float, nargs="+", default=None)
    parser.add_argument("--codec", default="factorized")
    parser.add_argument("--latent-dim", type=int, default=None)
    parser.add_argument("--merge-tokens", type=int, nargs="+", default=None,
                        help="k: code each k x k group of tokens as one unit (8: the whole grid)")
    parser.add_argument("--hidden-dim", type=int, default=None,
                        help="width of the codec transforms (default: the token width); small "
                             "widths keep a merged codec from memorising the training set")
    parser.add_argument("--distill-weight", type=float, default=0.0,
                        help="> 0: also match the uncompressed split model's predictions (KL)")
    parser.add_argument("--views", type=int, default=1,
                        help="dihedral views of each training image in the token cache (1..8)")
    parser.add_argument("--skip-images", action="store_true",
                        help="measure no image baselines (another run into the same --out does)")
    parser.add_argument("--finetune", default="frozen", choices=["frozen", "head", "lora", "full"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--ref-epochs", type=int, default=4, help="quick mode's reference model")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        defaults = {"backbone": "satvit_tiny", "splits": [1], "lambdas": [1e-3, 1e-1],
                    "merge_tokens": [1, 8], "epochs": 2, "latent_dim": 8, "lr": 1e-2,
                    "batch_size": 32}
    else:
        defaults = {"backbone": "satvit_small", "pretrained": DEFAULT_CLASSIFIER,
                    "root": "../shared/data/eurosat_rgb",
                    "split_file": "research/data/splits/eurosat_rgb_seed0.json",
                    "lambdas": [3e-4, 3e-3, 3e-2], "merge_tokens": [1, 8], "epochs": 10,
                    "latent_dim": 16, "lr": 1e-3, "batch_size": 128}
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.splits is None:
        depth = get_preset(args.backbone).depth
        args.splits = sorted({0, depth // 2, depth - 1, depth})
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dm = EuroSATDataModule(root=args.root, batch_size=args.batch_size, split_file=args.split_file)
    dm.setup()
    weights = reference_weights(args, dm, args.out)
    vit = build_backbone(args.backbone)
    load_backbone_weights(vit, weights)
    vit.eval().to(default_device())
    images, labels = dm.subset("test").tensors
    reference_acc = (classify(vit, images, dm) == labels).float().mean().item()
    print(f"uncompressed {args.backbone}: acc {100 * reference_acc:.2f}% on {len(labels)} test images")
    journal = args.out / "rows.jsonl"
    image_rows = [r for r in _done_rows(journal).values() if r["family"] == "image"]
    if not image_rows and not args.skip_images:  # the same test images: once per --out
        image_rows = image_baselines(vit, images, labels, dm)
        with journal.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in image_rows)
    rows = token_rows(args, weights, dm)
    measured = {(r["split_index"], r["method"], r["setting"]) for r in rows}
    # rows of earlier runs into the same --out (other cuts or settings) stay in the figure
    earlier = [r for key, r in _done_rows(journal).items()
               if key not in measured and r["family"] != "image"]
    rows = image_rows + rows + earlier
    summary = summarise(rows, reference_acc)
    fields = ["family", "method", "split_index", "setting", "bytes_per_inference", "acc",
              "acc_forward", "bits_estimated", "epochs", "train_s"]
    with (args.out / "rate_accuracy.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    title = f"{args.backbone}, {len(labels)} test images"
    plot(rows, reference_acc, args.out, title)
    record = {
        "reference_acc": reference_acc, "num_test_images": len(labels), "rows": rows,
        "summary": summary, "wall_s": time.perf_counter() - start,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    (args.out / "rate_accuracy.json").write_text(json.dumps(record, indent=2))
    for key, entry in summary.items():
        parts = []
        for points in (1, 3):
            best = entry[f"within_{points}pt"]
            parts.append(f"within {points} pt: " + ("none" if best is None else
                         f"{best['bytes_per_inference']:.0f} B ({best['method']} {best['setting']})"))
        print(f"{key}: " + "; ".join(parts))
    return record


if __name__ == "__main__":
    main()

"""Rate-compute-accuracy frontier at the paper's cut: the entropic student against every other codec.

Trains, at split 0 (patch embedding on board), one variable-rate student
(:class:`encoders.student.EntropicStudentCodec`, one rate weight per level) and, for the same rate
weights and the same number of epochs each, one fixed-rate student per weight: the comparison
that says whether one checkpoint can replace several. Every row is measured with real bytes on the
test images and carries the on-board FLOPs per image (satellite part + the link's on-board
transform, counted by :func:`research.models.profile.count_flops`). Rows of the rate-accuracy
sweep (image codecs, token baselines and token codecs at every cut,
``results/rate_accuracy/rows.jsonl``) join the figure with their FLOPs counted the same way.

Writes ``frontier.{csv,json,png,pdf}`` to ``config.out``; every row lands in ``rows.jsonl`` first
and each training checkpoints every epoch (``runs/<name>/last.ckpt``), so a stopped run resumes.
``scripts/fig_codec_frontier.py`` is the command line.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import lightning as L
import matplotlib
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from encoders import build_for_cut
from research.data import EuroSATDataModule
from research.eval.figure_run import FigureRunConfig
from research.eval.rate_accuracy import cut_tokens, reference_model
from research.models.presets import build_backbone, get_preset
from research.models.profile import count_flops
from research.models.split_vit import SplitViT
from research.models.weights import export_task_checkpoint
from research.paths import DEFAULT_CLASSIFIER
from research.tasks.codec import CodecTask

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from research.figures import save_figure  # noqa: E402

__all__ = ["FrontierConfig", "codec_frontier", "on_board_flops", "variable_rate_gaps"]


@dataclass
class FrontierConfig(FigureRunConfig):
    """One frontier run; ``None`` fields take the quick or full defaults (:meth:`with_defaults`).

    ``lambdas`` are the rate weights, coarsest first (rate level 0 spends the fewest bytes);
    ``separate_lambdas`` (default: all of them) are those a fixed-rate student is trained for.
    ``train=False`` trains nothing: every student row already in ``out/rows.jsonl`` is drawn (rows
    of runs made elsewhere, e.g. on a lent GPU). ``join`` names other frontier runs' ``rows.jsonl``
    whose student rows join the figure and tables, labelled with their epochs and device.
    """

    split_file: str | None = None
    lambdas: list[float] | None = None
    latent_dim: int = 32
    hidden_dim: int = 64
    epochs: int | None = None
    lr: float = 1e-3
    batch_size: int | None = None
    distill_weight: float = 1.0
    feature_distill_weight: float = 1.0
    latent_grid: int | None = 2
    finetune: str = "lora"
    views: int = 1
    separate: bool = True
    separate_lambdas: list[float] | None = None
    baseline_rows: Path | None = None
    ref_epochs: int = 4
    train: bool = True
    join: list[Path] | None = None

    def with_defaults(self) -> FrontierConfig:
        """Quick: satvit_tiny on the embedded subset, 2 rate levels, 1 epoch. Full: satvit_small
        from the fine-tuned checkpoint on full EuroSAT, 4 levels, 2 epochs per model (13 min each on
        2 CPU cores).

        The defaults are what short diagnostic runs on 9,600 training tokens favoured (150 steps,
        lambda 1e-3, validation accuracy): pooling the latents to a 2x2 grid (66.3% at 50 B
        against 57.0% at 377 B on the 8x8 token grid), distilling the pooled features (+16
        points), densities that start narrow (``init_scale=1``: a third of the bits of
        CompressAI's 10) and LoRA on the ground blocks (+10 points, 76.2% at 55 B).
        With the latents at the token grid and no pooling the rate stays in the hundreds of bytes.
        """
        if self.quick:
            defaults = {"backbone": "satvit_tiny", "lambdas": [1e-2, 1e-3], "epochs": 1,
                        "batch_size": 32}
        else:
            defaults = {"backbone": "satvit_small", "pretrained": DEFAULT_CLASSIFIER,
                        "root": "../shared/data/eurosat_rgb",
                        "split_file": "research/data/splits/eurosat_rgb_seed0.json",
                        "lambdas": [3e-3, 1e-3, 3e-4, 1e-4], "epochs": 2, "batch_size": 64,
                        "baseline_rows": Path("results/rate_accuracy/rows.jsonl")}
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        config = replace(self, out=Path(self.out), **filled)
        unknown = set(config.separate_lambdas or []) - set(config.lambdas)
        if unknown:
            raise ValueError(f"separate_lambdas {sorted(unknown)} are not among lambdas {config.lambdas}")
        missing = [str(p) for p in config.join or [] if not Path(p).is_file()]
        if missing:
            raise ValueError(f"join: no frontier rows at {', '.join(missing)} (expected the "
                             "rows.jsonl of another frontier run)")
        if list(config.lambdas) != sorted(config.lambdas, reverse=True):
            raise ValueError(f"lambdas={config.lambdas}: give the rate weights coarsest (largest) "
                             "first, so rate level 0 spends the fewest bytes")
        return config


def _trainer(epochs: int, run_dir: Path | None = None) -> L.Trainer:
    callbacks = [ModelCheckpoint(dirpath=run_dir, save_last=True, save_top_k=0)] if run_dir else []
    return L.Trainer(
        max_epochs=epochs, accelerator="auto", logger=False, enable_checkpointing=bool(run_dir),
        callbacks=callbacks, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, enable_progress_bar=True,
    )


def on_board_flops(model: SplitViT, link: torch.nn.Module) -> int:
    """FLOPs per image on the satellite: its part of the ViT plus the link's on-board transform.

    The on-board transform is ``on_board`` (student), ``analysis`` (token codecs) or nothing
    (quantisers, whose elementwise work FlopCounterMode does not count).
    """
    embed = model.vit.patch_embed
    image = torch.zeros(1, embed.proj.in_channels, *embed.img_size)
    with torch.no_grad():  # FlopCounterMode trips on inputs that carry an autograd graph
        tokens = model.satellite_part(image)
    transform = getattr(link, "on_board", None) or getattr(link, "analysis", None)
    return count_flops(model.satellite_part, image) + (count_flops(transform, tokens) if transform else 0)


def _student_runs(config: FrontierConfig) -> list[dict]:
    """The models to train: one variable-rate student, then one fixed-rate student per weight."""
    runs = [{"name": "student_variable", "lmbdas": list(config.lambdas),
             "num_rates": len(config.lambdas)}]
    if config.separate:
        runs += [{"name": f"student_lambda{lam:g}", "lmbda": lam, "num_rates": 1}
                 for lam in config.separate_lambdas or config.lambdas]
    return runs


def _journal(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_student(config: FrontierConfig, run: dict, weights: str, train_dm: L.LightningDataModule) -> tuple[CodecTask, float]:
    """Train (or resume) one student at split 0; returns the task and the training seconds."""
    torch.manual_seed(0)
    task = CodecTask(
        codec="student", split_index=0, finetune=config.finetune, backbone=config.backbone,
        pretrained=weights, latent_dim=config.latent_dim, hidden_dim=config.hidden_dim,
        codec_options={"num_rates": run["num_rates"], "latent_grid": config.latent_grid},
        lmbda=run.get("lmbda", 1e-3), lmbdas=run.get("lmbdas"), distill_weight=config.distill_weight,
        feature_distill_weight=config.feature_distill_weight, lr=config.lr,
        aux_lr=config.lr, warmup_epochs=0.1,
    )
    run_dir = config.out / "runs" / run["name"]
    last = run_dir / "last.ckpt"
    trainer = _trainer(config.epochs, run_dir)
    start = time.perf_counter()
    trainer.fit(task, datamodule=train_dm, ckpt_path=str(last) if last.exists() else None)
    export_task_checkpoint(trainer, config.out / "codecs" / f"{run['name']}.ckpt",
                           keep_float32=("model.link.",))
    return task, time.perf_counter() - start


def test_student(task: CodecTask, dm: EuroSATDataModule, run: dict, flops: int, train_s: float,
                 epochs: int, views: int = 1) -> list[dict]:
    """One row per rate level, each through the real payloads (``views``: augmented views of each
    training image the student saw per epoch, part of its training budget)."""
    rows = []
    link = task.model.link
    architecture = f"grid={link.latent_grid},latent={link.latent_dim}" + (
        f",hidden={link.hidden_dim}" if link.hidden_dim != FrontierConfig.hidden_dim else "")
    lambdas = run.get("lmbdas") or [run["lmbda"]]
    for level, lam in enumerate(lambdas):
        task.hparams.rate_index = level if run["num_rates"] > 1 else None
        result = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                           accelerator="auto").test(task, datamodule=dm, verbose=False)[0]
        variable = run["num_rates"] > 1
        level_setting = f"rate={level},lambda={lam:g}" if variable else f"lambda={lam:g}"
        rows.append({
            "family": "student", "method": "student variable" if variable else "student fixed",
            "split_index": 0, "setting": f"{architecture},{level_setting}",
            "bytes_per_inference": result["test/bytes_per_inference"], "acc": result["test/acc"],
            "acc_forward": result["test/acc_forward"],
            "bits_estimated": result.get("test/bits_per_inference_estimated", ""),
            "on_board_flops": flops, "epochs": epochs, "views": views, "train_s": train_s, "run": run["name"],
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        })
        print(f"{run['name']} level {level}: {rows[-1]['bytes_per_inference']:.1f} B, "
              f"acc {100 * rows[-1]['acc']:.2f}%", flush=True)
    return rows


def baseline_rows(path: Path | None, backbone: str, latent_dim: int = 16) -> list[dict]:
    """Rows of the rate-accuracy sweep with on-board FLOPs counted like the students'.

    Image codecs get ``None`` (no FLOP profile of libjpeg/libwebp; ``scripts/bench_codec.py``
    times them instead). Token codecs are rebuilt untrained with the row's shape to count their
    analysis (FLOPs do not depend on the weights).
    """
    if path is None or not Path(path).exists():
        return []
    preset = get_preset(backbone)
    num_tokens = (preset.img_size // preset.patch_size) ** 2
    rows, cache = [], {}
    for row in _journal(Path(path)):
        row = dict(row)
        if row["family"] == "image":
            row["on_board_flops"] = None
        else:
            options = dict(p.split("=") for p in row["setting"].split(",") if p)
            key = (row["split_index"], row["method"], options.get("merge", "1"), options.get("hidden"))
            if key not in cache:
                model = SplitViT(build_backbone(backbone), int(row["split_index"])).eval()
                link = build_for_cut(row["method"], preset.embed_dim, num_tokens, {
                    "latent_dim": latent_dim, "merge_tokens": int(key[2]),
                    "hidden_dim": int(key[3]) if key[3] else None}).eval()
                cache[key] = on_board_flops(model, link)
            row["on_board_flops"] = cache[key]
        rows.append(row)
    return rows


def _architecture(row: dict) -> str:
    """The student's latent grid and width (and its on-board width, where not the default) as its
    row's setting names them ('' in older rows)."""
    return ",".join(p for p in row["setting"].split(",") if p.startswith(("grid=", "latent=", "hidden=")))


def _training(row: dict) -> tuple:
    """Rows comparable as one training budget: same epochs, views, device and student architecture."""
    return row.get("epochs"), row.get("views", 1), row.get("device", "cpu"), _architecture(row)


def variable_rate_gaps(rows: list[dict]) -> list[dict]:
    """Per rate level: the variable-rate student's accuracy minus the fixed-rate students' at the
    same bytes (linear in log-bytes between the two nearest fixed points; ``None`` outside their
    range, where no honest comparison exists). Only students of the same architecture, epochs,
    views and device are compared."""
    gaps = []
    for row in (r for r in rows if r["method"] == "student variable"):
        fixed = sorted((r for r in rows if r["method"] == "student fixed" and _training(r) == _training(row)),
                       key=lambda r: r["bytes_per_inference"])
        xs = [math.log(r["bytes_per_inference"]) for r in fixed]
        ys = [r["acc"] for r in fixed]
        x = math.log(row["bytes_per_inference"])
        inside = len(xs) >= 2 and xs[0] <= x <= xs[-1]
        ref = float(np.interp(x, xs, ys)) if inside else None
        gaps.append({"setting": row["setting"], "epochs": row.get("epochs"), "views": row.get("views", 1),
                     "device": row.get("device", "cpu"), "bytes_per_inference": row["bytes_per_inference"],
                     "acc": row["acc"], "fixed_acc_at_bytes": ref,
                     "gap_points": None if ref is None else 100 * (row["acc"] - ref)})
    return gaps


def fewest_bytes(rows: list[dict], reference_acc: float, points: float) -> dict[str, dict | None]:
    """Per family (image, token codecs by cut, student): the fewest bytes within ``points``."""
    best: dict[str, dict | None] = {}
    for row in rows:
        key = row["method"] if row["family"] in ("image", "student") else f"{row['family']} split {row['split_index']}"
        best.setdefault(key, None)
        if 100 * (reference_acc - row["acc"]) <= points and (
                best[key] is None or row["bytes_per_inference"] < best[key]["bytes_per_inference"]):
            best[key] = {k: row.get(k) for k in ("bytes_per_inference", "acc", "setting", "on_board_flops")}
    return best


_ARCH_MARKERS = {"grid=2,latent=32": "o", "grid=4,latent=16": "s", "grid=4,latent=32": "D",
                 "grid=4,latent=16,hidden=128": "^", "grid=4,latent=16,hidden=256": "v",
                 "grid=8,latent=8": "P"}
_AUGMENTED_COLOURS = ("tab:purple", "deeppink", "saddlebrown", "navy")  # by epochs, fewest first


def _student_label(row: dict) -> str:
    """One legend entry per method, architecture, epochs (x views) and device."""
    device = row.get("device", "cpu")
    architecture = _architecture(row)
    return (f"{row['method']} @ split 0" + (f", {architecture}" if architecture else "")
            + f", {row.get('epochs')} epochs" + (f" x {row['views']} views" if row.get("views", 1) > 1 else "")
            + ("" if device == "cpu" else f" ({device.replace('NVIDIA ', '')})"))


def plot(rows: list[dict], reference_acc: float, out: Path, title: str) -> list[Path]:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["family"] == "image":
            label = f"{row['method']} (pixels)"
        elif row["family"] == "token":
            if row["method"] not in ("int8", "int4"):
                continue
            label = f"{row['method']} tokens, every cut"
        elif row["family"] == "codec":
            label = f"token codec @ split {row['split_index']}"
        else:
            label = _student_label(row)
        groups.setdefault(label, []).append(row)
    colours = plt.get_cmap("tab20")
    handles = {}
    zoom = []  # the students trained on a GPU sit close together: drawn again in an inset
    augmented_epochs = sorted({r.get("epochs") or 0 for r in rows
                               if r["family"] == "student" and (r.get("views") or 1) > 1})
    for index, (label, group) in enumerate(sorted(groups.items())):
        group = sorted(group, key=lambda r: r["bytes_per_inference"])
        x = [r["bytes_per_inference"] for r in group]
        y = [100 * r["acc"] for r in group]
        style: dict = {"lw": 1.0, "ms": 4}
        if label.startswith("student"):
            on_gpu = group[0].get("device", "cpu") != "cpu"
            variable = "variable" in label
            marker = "*" if variable else _ARCH_MARKERS.get(_architecture(group[0]), "o")
            augmented = group[0].get("views", 1) > 1  # trained on augmented views: another colour
            if variable:
                colour = "tab:blue" if augmented else "k" if on_gpu else "0.55"
            else:
                colour = (_AUGMENTED_COLOURS[augmented_epochs.index(group[0].get("epochs") or 0)
                                             % len(_AUGMENTED_COLOURS)] if augmented else "tab:red")
            style = {"marker": marker, "ls": "-" if variable else "none", "lw": 1.6, "ms": 9 if variable else 6,
                     "color": colour,
                     "mfc": None if on_gpu or variable else "none"}
            if on_gpu:
                zoom.append((x, y, style))
        else:
            style.update(fmt="s" if "tokens" in label else ("o" if "codec" in label else ":^"),
                         color=colours(index % 20))
        fmt = [style.pop("fmt")] if "fmt" in style else []
        (handles[label],) = ax.plot(x, y, *fmt, label=label, **style)
        flops = [(b, f) for b, f in zip(x, (r.get("on_board_flops") for r in group), strict=True) if f]
        if flops:
            ax2.plot([b for b, _ in flops], [f / 1e6 for _, f in flops], *fmt, **{**style, "lw": 1.0})
    if zoom:
        inset = ax.inset_axes([0.66, 0.07, 0.32, 0.4])
        for x, y, style in zoom:
            inset.plot(x, y, **style)
        xs = [v for x, _, _ in zoom for v in x]
        ys = [v for _, y, _ in zoom for v in y]
        inset.set_xlim(min(xs) * 0.93, max(xs) * 1.07)
        inset.set_ylim(min(ys) - 1, max(ys) + 1)
        inset.set_title("GPU-trained students", fontsize=7)
        inset.tick_params(labelsize=6)
        inset.grid(True, lw=0.3, alpha=0.5)
    for a in (ax,):
        a.axhline(100 * reference_acc, color="k", lw=0.8, ls="--", label="uncompressed")
        a.axhspan(100 * reference_acc - 1, 100 * reference_acc, color="0.85", zorder=0,
                  label="within 1 point")
    ax.set_ylim(max(40.0, min(100 * r["acc"] for r in rows) - 2), 100 * reference_acc + 1.5)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax2.axhline(10, color="r", lw=0.8, ls=":", label="10 MFLOPs on-board target")
    ax2.set_yscale("log")
    ax2.set_ylabel("on-board MFLOPs per image (satellite part + link transform)")
    ax2.set_title("what each point costs on board (image codecs: not FLOP-profiled)", fontsize=10)
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xlabel("bytes per inference (real payloads, header included)")
        a.grid(True, which="both", lw=0.3, alpha=0.5)
    handles.update({h.get_label(): h for h in ax.get_lines() + ax.patches if h.get_label() in
                    ("uncompressed", "within 1 point")})
    handles.update({h.get_label(): h for h in ax2.get_lines() if h.get_label().startswith("10 MFLOPs")})
    ax2.legend(handles.values(), handles.keys(), fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return save_figure(fig, out, "frontier")


def check_resumable(config: FrontierConfig) -> None:
    """Refuse an ``out`` whose journal holds this config's runs with other epochs or views:
    resuming them would mix two training budgets under one name."""
    journal = config.out / "rows.jsonl"
    names = {x["name"] for x in _student_runs(config)}
    other = sorted({r["run"] for r in _journal(journal) if r["run"] in names
                    and (r.get("epochs"), r.get("views", 1)) != (config.epochs, config.views)})
    if config.train and other:
        raise ValueError(f"{journal} holds runs {other} trained with other epochs or views than "
                         f"--epochs {config.epochs} --views {config.views}; use another --out")


def codec_frontier(config: FrontierConfig) -> dict:
    """Train and measure the students, join the sweep's rows, write the figure and tables."""
    config = config.with_defaults()
    config.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    check_resumable(config)
    journal = config.out / "rows.jsonl"
    names = {x["name"] for x in _student_runs(config)}
    reference = reference_model(config)
    dm, weights, reference_acc = reference.dm, reference.weights, reference.acc
    labels = dm.subset("test").tensors[1]
    done = {r["run"] for r in _journal(journal)}
    train_dm = None
    for run in _student_runs(config) if config.train else []:
        if run["name"] in done:
            continue
        train_dm = train_dm or cut_tokens(config, weights, dm, 0)
        task, train_s = train_student(config, run, weights, train_dm)
        flops = on_board_flops(task.model, task.link)
        rows = test_student(task, dm, run, flops, train_s, config.epochs, config.views)
        with journal.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    student = [r for r in _journal(journal) if not config.train or r["run"] in names]
    student += [r for path in config.join or [] for r in _journal(Path(path)) if r["family"] == "student"]
    rows = baseline_rows(config.baseline_rows, config.backbone) + student
    record = {
        "reference_acc": reference_acc, "num_test_images": len(labels),
        "within_1pt": fewest_bytes(rows, reference_acc, 1.0),
        "variable_rate_gaps": variable_rate_gaps(student), "rows": rows,
        "wall_s": time.perf_counter() - start,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
    }
    fields = ["family", "method", "split_index", "setting", "bytes_per_inference", "acc",
              "acc_forward", "bits_estimated", "on_board_flops", "epochs", "views", "train_s", "run", "device"]
    with (config.out / "frontier.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, reference_acc, config.out, f"{config.backbone}, {len(labels)} test images, split 0 students")
    (config.out / "frontier.json").write_text(json.dumps(record, indent=2, default=str))
    for gap in record["variable_rate_gaps"]:
        text = "outside the fixed codecs' range" if gap["gap_points"] is None else f"{gap['gap_points']:+.2f} pt"
        print(f"variable {gap['setting']}: {gap['bytes_per_inference']:.1f} B, "
              f"{100 * gap['acc']:.2f}% ({text} against fixed-rate students at equal bytes)")
    return record

"""Spiking vs ANN task heads: test accuracy against measured energy per inference, per profile.

Trains each head with :class:`research.tasks.spiking.SpikingTask` on the pooled features of the
frozen split ViT (computed once and cached: :class:`research.data.features.FeatureDataModule`),
then tests it on the test images through the whole satellite side; energy is counted from the
spikes the head really emits there. Heads: the ViT's Linear head and an ANN MLP of the SNN's
hidden sizes (the Linear head is far cheaper than any MLP, so the SNN is compared against both);
the trained SNN head at each T for each input encoding (``direct``: the first layer is a dense
ANN layer; ``if``: integrate-and-fire encoder neurons make it spike-driven, with a firing-rate
penalty); spiking heads without a hidden layer (IF input), the linear head's counterpart; and the
ANN-to-SNN conversion of the trained ANN MLP head at each T. :func:`snn_energy` writes
``snn_energy.{csv,json,png,pdf}`` to ``config.out``; every measured variant lands in
``records.jsonl`` first, so an interrupted run resumes (delete that file to start over).

``scripts/fig_snn_energy.py`` is the command line.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import lightning as L  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from research.data import EuroSATDataModule  # noqa: E402
from research.data.features import FeatureDataModule, default_device, weights_key  # noqa: E402
from research.eval.figure_run import FigureRunConfig  # noqa: E402
from research.figures import save_figure  # noqa: E402
from research.paths import DEFAULT_CLASSIFIER, DEFAULT_FOUNDATION, REPO_ROOT  # noqa: E402
from research.tasks.spiking import SpikingTask  # noqa: E402
from snn import get_encoding  # noqa: E402

__all__ = ["CLAIM", "SnnEnergyConfig", "claim_check", "report_claim", "snn_energy"]

CLAIM = "SNN head within 1 point of the ANN head with >= 5x less head energy"
FULL_CKPT = REPO_ROOT / DEFAULT_CLASSIFIER
MAE_CKPT = REPO_ROOT / DEFAULT_FOUNDATION
SPLIT = str(REPO_ROOT / "research" / "data" / "splits" / "eurosat_rgb_seed0.json")


@dataclass
class SnnEnergyConfig(FigureRunConfig):
    """One spiking-energy run; ``None`` fields take the quick or full defaults (:meth:`with_defaults`).

    The fields are the options of ``scripts/fig_snn_energy.py`` (``--linear-steps`` is
    ``linear_steps``), whose help describes each.
    """

    steps: list[int] | None = None
    hidden: list[int] = field(default_factory=lambda: [256])
    encodings: list[str] = field(default_factory=lambda: ["direct", "if"])
    rate_penalty: float = 0.1
    linear_steps: list[int] = field(default_factory=lambda: [1, 2])
    epochs: int | None = None
    limit_batches: float = 1.0
    batch_size: int = 128
    feature_batch_size: int | None = None
    lr: float = 4e-3
    accelerator: str = "auto"

    def with_defaults(self) -> SnnEnergyConfig:
        """A copy with every unset field filled: the embedded subset, MAE weights (when the
        backbone is satvit_small), T in {1, 2, 4} and one epoch when ``quick``; else full EuroSAT
        from the fine-tuned checkpoint (which must exist: FileNotFoundError), T in {1, 2, 4, 8}."""
        config = replace(self, out=Path(self.out), backbone=self.backbone or "satvit_small")
        if config.quick:
            if config.pretrained is None and config.backbone == "satvit_small" and MAE_CKPT.is_file():
                config.pretrained = str(MAE_CKPT)
            config.steps = config.steps or [1, 2, 4]
            config.epochs = config.epochs or 1
            config.feature_batch_size = config.feature_batch_size or 64
        else:
            config.pretrained = config.pretrained or str(FULL_CKPT)
            config.root = config.root or str(REPO_ROOT.parent / "shared" / "data" / "eurosat_rgb")
            config.steps = config.steps or [1, 2, 4, 8]
            config.epochs = config.epochs or 15
            config.feature_batch_size = config.feature_batch_size or 512
            if not Path(config.pretrained).is_file():
                raise FileNotFoundError(f"{config.pretrained} does not exist yet; run the full fine-tune first")
        return config


def run_variant(name: str, task: SpikingTask, dms: tuple[FeatureDataModule, EuroSATDataModule],
                config: SnnEnergyConfig, train: bool) -> dict:
    """Fit on cached features (unless ``train`` is False), test on images; the measured record."""
    trainer = L.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_train_batches=config.limit_batches, num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    if train:
        trainer.fit(task, dms[0])
    result = trainer.test(task, dms[1], verbose=False)[0]
    hp = task.hparams
    record = {
        "variant": name, "head": hp.head, "init": hp.init,
        "num_steps": hp.num_steps if hp.head == "spiking" else None,
        "encoding": hp.encoding if hp.head == "spiking" else None,
        "hidden": list(hp.hidden) if hp.head != "linear" else [],
        "rate_penalty": hp.rate_penalty,
        "test_acc": float(result["test/acc"]), "seconds": time.perf_counter() - start,
        "energy": {p: r.to_row() for p, r in task.test_energy.items()},
        "head_energy_j": task.head_energy(), "firing_rates": task.firing_rates(),
    }
    print(f"{name:<14} acc {record['test_acc']:.4f}  head J (cmos45nm) "
          f"{record['head_energy_j']['cmos45nm']:.3e}  ({record['seconds']:.0f} s)", flush=True)
    return record


def _journal(out: Path) -> dict[str, dict]:
    """Variants measured by an earlier, interrupted run into the same ``out``."""
    path = out / "records.jsonl"
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["variant"]: r for r in records}


def run_all(config: SnnEnergyConfig, workdir: Path) -> list[dict]:
    """Measure every variant; each lands in ``config.out/records.jsonl`` and a rerun skips it."""
    # the full set uses the split the fine-tuned checkpoint was trained on (no test leakage)
    split = SPLIT if config.root and not config.quick else None
    images = EuroSATDataModule(root=config.root, batch_size=config.batch_size, split_file=split)
    common = dict(backbone=config.backbone, pretrained=config.pretrained, hidden=tuple(config.hidden),
                  lr=config.lr, finetune="frozen", split_index=0, head_placement="satellite")
    dms = (pooled_features(images, common, config), images)
    done, records = _journal(config.out), []

    def measure(name: str, make_task: Callable[[], SpikingTask], train: bool = True) -> SpikingTask | None:
        """Run one variant unless the journal has it (then its task is never built)."""
        if name in done:
            records.append(done[name])
            return None
        L.seed_everything(0, verbose=False)
        task = make_task()
        record = run_variant(name, task, dms, config, train)
        records.append(record)
        with (config.out / "records.jsonl").open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
        return task

    converts = [f"convert_T{steps}" for steps in config.steps]
    for head in ("linear", "ann_mlp"):
        name = f"ann_{head.replace('ann_', '')}"
        needed = head == "ann_mlp" and any(c not in done for c in converts)
        if name in done and not needed:
            records.append(done[name])
            continue
        if name in done:  # only its weights are needed, for the conversions
            L.seed_everything(0, verbose=False)
            task = SpikingTask(head=head, **common)
            trainer = L.Trainer(max_epochs=config.epochs, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
            trainer.fit(task, dms[0])
            records.append(done[name])
        else:
            task = measure(name, lambda head=head: SpikingTask(head=head, **common))
        if head == "ann_mlp":
            ann_ckpt = workdir / "ann_mlp.ckpt"
            torch.save({"state_dict": task.state_dict()}, ann_ckpt)
    for encoding in config.encodings:
        penalty = config.rate_penalty if get_encoding(encoding).neurons else 0.0
        for steps in config.steps:
            name = f"snn_T{steps}" if encoding == "direct" else f"snn_{encoding}_T{steps}"
            measure(name, lambda steps=steps, encoding=encoding, penalty=penalty: SpikingTask(
                head="spiking", num_steps=steps, encoding=encoding, rate_penalty=penalty, **common))
    for steps in config.linear_steps:  # no hidden layer: the counterpart of the linear head
        measure(f"snn_if_linear_T{steps}", lambda steps=steps: SpikingTask(
            head="spiking", num_steps=steps, encoding="if", rate_penalty=config.rate_penalty,
            **{**common, "hidden": ()}))
    for name, steps in zip(converts, config.steps, strict=True):
        measure(name, lambda steps=steps: SpikingTask(
            head="spiking", num_steps=steps, init="convert", convert_from=str(ann_ckpt), **common),
            train=False)
    return records


def pooled_features(images: EuroSATDataModule, common: dict, config: SnnEnergyConfig) -> FeatureDataModule:
    """The frozen backbone's pooled features of every split, computed once (cached on disk)."""
    device = default_device()
    model = SpikingTask(head="linear", **common).model.eval().to(device)
    weights = config.pretrained or "random-init"
    key = weights_key(weights, "pooled") if Path(weights).is_file() else f"{config.backbone}-random-pooled"
    return FeatureDataModule(images, lambda x: model.ground_part(model.satellite_part(x)), key,
                             batch_size=config.feature_batch_size, device=device)


def claim_check(records: list[dict]) -> list[dict]:
    """For every profile, trained SNN and ANN reference: does the claim hold? Nothing hidden."""
    refs = {r["variant"]: r for r in records if r["head"] != "spiking"}
    checks = []
    for snn in (r for r in records if r["head"] == "spiking"):
        for ref in refs.values():
            for prof, ref_j in ref["head_energy_j"].items():
                snn_j = snn["head_energy_j"][prof]
                gap = 100 * (snn["test_acc"] - ref["test_acc"])
                ratio = ref_j / snn_j if snn_j > 0 else float("inf")
                checks.append({
                    "snn": snn["variant"], "ref": ref["variant"], "profile": prof,
                    "acc_gap_points": gap, "head_energy_ratio": ratio,
                    "within_1_point": gap >= -1.0, "energy_5x": ratio >= 5.0,
                    "holds": gap >= -1.0 and ratio >= 5.0,
                })
    return checks


def report_claim(checks: list[dict]) -> dict:
    print(f"\nClaim: {CLAIM} (cmos45nm); checked for every profile and both ANN heads:")
    for c in checks:
        print(f"  {c['profile']:<12} {c['snn']:<12} vs {c['ref']:<10} acc {c['acc_gap_points']:+6.2f} pt"
              f"  head energy {c['head_energy_ratio']:8.3g}x less  -> "
              f"{'HOLDS' if c['holds'] else 'does not hold'}")
    summary: dict = {"claim": CLAIM, "by_ref": {}}
    for ref in sorted({c["ref"] for c in checks}):
        mine = [c for c in checks if c["ref"] == ref]
        cmos = sorted(c["snn"] for c in mine if c["profile"] == "cmos45nm" and c["holds"])
        profiles = sorted({c["profile"] for c in mine})
        fails = [p for p in profiles if not any(c["holds"] for c in mine if c["profile"] == p)]
        summary["by_ref"][ref] = {"holds_under_cmos45nm_for": cmos, "fails_under_profiles": fails}
        verdict = f"HOLDS for {cmos}" if cmos else "DOES NOT HOLD for any T"
        print(f"vs {ref}: under cmos45nm the claim {verdict}; no T satisfies it under {fails or 'none'}")
    return summary


def write_tables(records: list[dict], checks: list[dict], summary: dict, config: SnnEnergyConfig,
                 out: Path) -> None:
    fields = ["variant", "head", "init", "num_steps", "encoding", "hidden", "rate_penalty",
              "test_acc", "profile", "energy_j",
              "head_energy_j", "macs", "synops", "spiking_macs", "neuron_updates", "event_driven"]
    with open(out / "snn_energy.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in records:
            for prof, row in r["energy"].items():
                w.writerow({**{k: r.get(k) for k in fields[:8]}, "profile": prof,
                            "head_energy_j": r["head_energy_j"][prof],
                            **{k: row[k] for k in fields if k in row and k != "profile"}})
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    (out / "snn_energy.json").write_text(json.dumps(
        {"config": settings, "records": records, "claim_checks": checks, "claim": summary},
        indent=2, default=str))


def draw(records: list[dict], out: Path) -> list[Path]:
    profiles = list(records[0]["energy"])
    fig = plt.figure(figsize=(4 * len(profiles), 11))
    grid = fig.add_gridspec(3, len(profiles), height_ratios=[1, 1, 1.1], hspace=0.45)
    styles = {"linear": ("s", "k"), "ann_mlp": ("D", "tab:blue")}
    for row, (key, label) in enumerate([("energy_j", "satellite side"), ("head", "head only")]):
        for col, prof in enumerate(profiles):
            ax = fig.add_subplot(grid[row, col])
            for r in (r for r in records if r["head"] != "spiking"):
                x = r["energy"][prof]["energy_j"] if key == "energy_j" else r["head_energy_j"][prof]
                marker, color = styles[r["head"]]
                ax.scatter([x], [100 * r["test_acc"]], marker=marker, c=color, label=r["variant"])
            series = [("random", "direct", True, "tab:red", "SNN MLP, direct input"),
                      ("random", "if", True, "tab:purple", "SNN MLP, IF-encoded input"),
                      ("random", "if", False, "tab:orange", "SNN linear, IF-encoded input"),
                      ("convert", "direct", True, "tab:green", "SNN MLP converted")]
            for init, encoding, hidden, color, series_label in series:
                pts = [r for r in records if r["head"] == "spiking" and r["init"] == init
                       and r["encoding"] == encoding and bool(r.get("hidden", True)) == hidden]
                if not pts:
                    continue
                xs = [r["energy"][prof]["energy_j"] if key == "energy_j" else r["head_energy_j"][prof]
                      for r in pts]
                ax.plot(xs, [100 * r["test_acc"] for r in pts], "o-", c=color, label=series_label)
                for x, r in zip(xs, pts, strict=True):
                    ax.annotate(f"T={r['num_steps']}", (x, 100 * r["test_acc"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
            if row == 0:  # the patch embedding dominates: a narrow range, linear axis
                ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
            else:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(f"{prof}: {label}", fontsize=9)
            ax.set_xlabel("energy per inference (J)")
            if col == 0:
                ax.set_ylabel("test accuracy (%)")
            ax.grid(True, lw=0.3, alpha=0.5)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[2, :])
    spiking = [r for r in records if r["firing_rates"]]
    layers = sorted({lay for r in spiking for lay in r["firing_rates"]})
    width = 0.8 / max(1, len(spiking))
    for i, r in enumerate(spiking):
        ax.bar([j + i * width for j in range(len(layers))],
               [r["firing_rates"].get(lay, 0.0) for lay in layers], width, label=r["variant"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers, fontsize=8)
    ax.set_ylabel("firing rate (spikes/neuron/step)")
    ax.set_title("measured firing rate per layer (test images)", fontsize=9)
    ax.legend(fontsize=7, ncol=4)
    return save_figure(fig, out, "snn_energy")


def snn_energy(config: SnnEnergyConfig) -> dict:
    """Measure every head variant, check the claim, write the tables and the figure.

    Returns ``{"records", "claim_checks", "claim"}`` as written to ``snn_energy.json``.
    """
    config = config.with_defaults()
    config.out.mkdir(parents=True, exist_ok=True)
    print(f"backbone {config.backbone}, weights {config.pretrained}, data {config.root or 'embedded'}, "
          f"T {config.steps}, {config.epochs} epoch(s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        records = run_all(config, Path(tmp))
    checks = claim_check(records)
    summary = report_claim(checks)
    write_tables(records, checks, summary, config, config.out)
    paths = draw(records, config.out)
    print("wrote", config.out / "snn_energy.csv", config.out / "snn_energy.json", *paths)
    return {"records": records, "claim_checks": checks, "claim": summary}



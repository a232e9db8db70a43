"""ANN against spiking satellite parts at the same cut: accuracy, real bytes and on-board energy.

Every configuration runs on the same test images, through the real payloads (the ground decodes
``link.compress`` output and classifies it). What runs on board — patch embedding, the blocks
before the cut and the link's encoder (``compress``) — is measured by :func:`snn.count_ops` on
those images: dense MACs for real-valued inputs, synaptic operations and neuron updates from the
spikes the spiking blocks and the spike link really emit. The counts are priced under every
registered device profile: event-driven ones (``cmos45nm``: Horowitz's 45 nm constants,
``loihi``: measured Loihi costs) skip silent synapses; dense ones (the Jetsons, the A100) run
every spiking layer as dense MACs at every step, which is how a GPU executes an SNN.

Configurations: the ANN split at each cut with the identity link (:func:`ann_identity`) and any
``CodecTask`` checkpoint (:func:`from_checkpoint`): a learned ANN codec, or spiking on-board
blocks with the spike link (``family`` tells them apart from the checkpoint's hyper-parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import NullFormatter
from tqdm.auto import tqdm

from devices import get_device, list_devices
from encoders.base import LinkModule
from research.eval.schemes import token_link
from research.figures import save_figure
from research.models.split_vit import OnBoard
from research.records import write_rows
from research.tasks.loading import Classifier, load_classifier
from snn import OpCounts, count_ops

__all__ = ["CutConfig", "ann_identity", "from_checkpoint", "measure", "plot_cut_rows"]

EVENT_PROFILE = "cmos45nm"
"""The profile the headline ratio is stated under (the constants most SNN papers use)."""


@dataclass
class CutConfig:
    """One configuration to measure: a split classifier and the link at its cut."""

    name: str
    family: str  # "ann" or "snn"
    classifier: Classifier
    link: LinkModule

    @property
    def cut(self) -> int:
        return self.classifier.model.split_index


def ann_identity(checkpoint: str | Path, cut: int) -> CutConfig:
    """The ANN split at ``cut`` with float32 tokens crossing the link (no codec)."""
    clf = load_classifier(checkpoint, split_index=cut, head_placement="ground")
    return CutConfig(f"ann-identity@{cut}", "ann", clf,
                     token_link("identity", clf.model, clf.hparams["backbone"]))


def from_checkpoint(path: str | Path, name: str | None = None,
                    link: str | None = None, label: str | None = None) -> CutConfig:
    """A ``CodecTask`` checkpoint: ``snn`` when it holds spiking on-board blocks, else ``ann``.

    The head is placed on the ground for every configuration, so on-board energy is the same
    scope on both sides: patch embedding, blocks before the cut, link encoder. ``link`` names a
    training-free link to use instead of the trained one (``identity``: what the on-board
    blocks alone cost in accuracy, without the link's loss). ``label`` tells apart checkpoints
    of the same family, link and cut (``snn-spike@3 (label)``); an explicit ``name`` wins.
    """
    clf = load_classifier(path, head_placement="ground")
    if "codec" not in clf.hparams:
        raise ValueError(f"{str(path)!r} is not a CodecTask checkpoint (no link trained at a cut)")
    family = "snn" if clf.hparams.get("spiking_blocks") else "ann"
    cut = clf.model.split_index
    if link is not None:
        clf.hparams = {**clf.hparams, "codec": link}
        module = token_link(link, clf.model, clf.hparams["backbone"])
    else:
        module = clf.model.link.eval()
    default = f"{family}-{clf.hparams['codec']}@{cut}" + (f" ({label})" if label else "")
    return CutConfig(name or default, family, clf, module)


@torch.no_grad()
def measure(config: CutConfig, images: torch.Tensor, labels: torch.Tensor,
            batch_size: int = 250, progress: bool = False) -> dict:
    """Accuracy through real payloads, bytes per inference and on-board energy per profile.

    Returns:
        One flat row: ``accuracy``, ``bytes_per_inference``, ``macs``/``synops``/
        ``neuron_updates`` per inference, the mean firing rate of the on-board neurons, and
        ``energy_j_<profile>`` for every registered profile.
    """
    model, link, clf = config.classifier.model.eval(), config.link.eval(), config.classifier
    board = OnBoard(model, link)
    counts, correct, sizes = [], 0, []
    for i in tqdm(range(0, len(images), batch_size), desc=config.name, disable=not progress):
        x = clf.normalize(images[i:i + batch_size])
        counts.append(count_ops(board, x))
        decoded = link.decompress(board.payloads, board.tokens.shape[1:])
        logits = model.head(model.ground_part(decoded))
        correct += int((logits.argmax(1) == labels[i:i + batch_size]).sum())
        sizes += [len(p) for p in board.payloads]
    total = OpCounts.merge(counts)
    reports = {name: total.energy(name) for name in list_devices()}
    ref = reports[EVENT_PROFILE]
    neurons = [lay for lay in total.layers if lay.kind == "neuron"]
    updates = sum(lay.neuron_updates for lay in neurons)
    row = {
        "name": config.name, "family": config.family, "cut": config.cut,
        "link": clf.hparams.get("codec", "identity"),
        "block_steps": clf.hparams.get("block_steps") if config.family == "snn" else None,
        "attention": clf.hparams.get("spiking_attention") if config.family == "snn" else None,
        "images": len(images), "accuracy": correct / len(images),
        "bytes_per_inference": float(np.mean(sizes)),
        "macs": ref.macs, "synops": ref.synops, "spiking_macs": ref.spiking_macs,
        "neuron_updates": ref.neuron_updates,
        "firing_rate": sum(lay.spikes for lay in neurons) / updates if updates else None,
        "checkpoint": str(clf.path),
    }
    row.update({f"energy_j_{name}": rep.energy_j for name, rep in reports.items()})
    return row


def sweep(reference: str | Path, cuts: Sequence[int], checkpoints: Sequence[str | Path],
          images: torch.Tensor, labels: torch.Tensor, progress: bool = True,
          checkpoint_labels: Sequence[str | None] | None = None) -> list[dict]:
    """The ANN split of ``reference`` at each of ``cuts``, then each ``CodecTask`` checkpoint
    (named with its entry of ``checkpoint_labels``, if any); a spiking one also behind float32
    tokens (its blocks' own cost, the link apart). One model in memory at a time."""
    rows = [measure(ann_identity(reference, c), images, labels, progress=progress) for c in cuts]
    for path, label in zip(checkpoints, checkpoint_labels or [None] * len(checkpoints), strict=True):
        config = from_checkpoint(path, label=label)
        rows.append(measure(config, images, labels, progress=progress))
        if config.family == "snn":
            plain = from_checkpoint(path, link="identity", label=label)
            rows.append(measure(plain, images, labels, progress=progress))
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """Per spiking row: accuracy gap, energy ratio per profile and byte ratio against the ANN
    rows at the same cut (identity, and the learned codec where one was measured)."""
    out = []
    for snn in (r for r in rows if r["family"] == "snn"):
        for ann in (r for r in rows if r["family"] == "ann" and r["cut"] == snn["cut"]):
            row = {"snn": snn["name"], "ann": ann["name"], "cut": snn["cut"],
                   "accuracy_gap_points": 100 * (ann["accuracy"] - snn["accuracy"]),
                   "bytes_ratio": snn["bytes_per_inference"] / ann["bytes_per_inference"]}
            for name in list_devices():
                row[f"energy_saving_{name}"] = ann[f"energy_j_{name}"] / snn[f"energy_j_{name}"]
            out.append(row)
    return out


def plot_cut_rows(rows: list[dict], out: str | Path, title: str = "") -> list[Path]:
    """(a) accuracy against on-board energy at 45 nm, (b) accuracy against bytes, (c) on-board
    energy of each configuration at the spiking cuts under every profile."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    cuts = sorted({r["cut"] for r in rows})
    cmap = plt.get_cmap("viridis", max(len(cuts), 2))
    colour = {c: cmap(i) for i, c in enumerate(cuts)}
    marker = {("ann", "identity"): "o", ("ann", "codec"): "s", ("snn", "identity"): "P",
              ("snn", "codec"): "*"}
    for r in rows:
        kind = (r["family"], "identity" if r["link"] == "identity" else "codec")
        for ax, x in ((axes[0], r[f"energy_j_{EVENT_PROFILE}"] * 1e6),
                      (axes[1], r["bytes_per_inference"])):
            ax.scatter(x, 100 * r["accuracy"], color=colour[r["cut"]], marker=marker[kind],
                       s=160 if r["family"] == "snn" else 60, edgecolor="k", zorder=3)
            if r["family"] != "ann" or kind[1] != "identity":
                ax.annotate(r["name"], (x, 100 * r["accuracy"]), fontsize=7,
                            xytext=(4, -10), textcoords="offset points")
    ident = sorted((r for r in rows if r["family"] == "ann" and r["link"] == "identity"),
                   key=lambda r: r["cut"])
    axes[0].plot([r[f"energy_j_{EVENT_PROFILE}"] * 1e6 for r in ident],
                 [100 * r["accuracy"] for r in ident], color="0.6", lw=1, zorder=1)
    axes[0].set_xscale("log")
    axes[0].set_xlabel(f"on-board energy per inference, µJ ({EVENT_PROFILE}, measured ops)")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("bytes per inference (real payloads)")
    axes[0].xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a short decade
    for ax in axes[:2]:
        ax.set_ylabel("test accuracy, %")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker=m, ls="", color="0.5", markeredgecolor="k",
                          label=f"{fam} {kind}") for (fam, kind), m in marker.items()]
    handles += [plt.Line2D([], [], marker="o", ls="", color=colour[c], label=f"cut {c}")
                for c in cuts]
    axes[1].legend(handles=handles, fontsize=7, loc="center")
    snn_cuts = sorted({r["cut"] for r in rows if r["family"] == "snn"})
    shown = [r for r in rows if r["cut"] in snn_cuts]
    profiles = sorted(list_devices(), key=lambda n: (not get_device(n).event_driven, n))
    width = 0.8 / max(len(shown), 1)
    for j, r in enumerate(shown):
        axes[2].bar(np.arange(len(profiles)) + j * width,
                    [r[f"energy_j_{p}"] * 1e6 for p in profiles], width, label=r["name"],
                    hatch="//" if r["family"] == "snn" else None, edgecolor="k")
    axes[2].set_xticks(np.arange(len(profiles)) + 0.4 - width / 2, profiles, fontsize=8,
                       rotation=20)
    axes[2].set_yscale("log")
    axes[2].set_ylabel("on-board energy per inference, µJ")
    axes[2].set_title("same ops, priced per device profile", fontsize=9)
    axes[2].legend(fontsize=7)
    axes[2].grid(alpha=0.3, axis="y")
    fig.suptitle(title or "ANN vs spiking satellite parts: accuracy, bytes and on-board energy")
    return save_figure(fig, out, "snn_cut")


def write_cut_rows(rows: list[dict], meta: dict, out: str | Path) -> dict[str, Path]:
    """``snn_cut.{csv,json}`` (rows, ratios in the JSON) and the figure under ``out``."""
    paths = write_rows(rows, out, "snn_cut", meta={**meta, "ratios": ratios(rows)})
    for p in plot_cut_rows(rows, out):
        paths[p.suffix[1:]] = p
    return paths

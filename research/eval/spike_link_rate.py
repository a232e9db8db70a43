"""Rate against accuracy of spike links on a frozen satellite part's cut tokens.

Why: a spiking satellite part (``snn.blocks``) loses accuracy in two places, its blocks and the
spike link after them, and the link's loss depends on the rate it is trained for. This sweep
holds the satellite part fixed, caches its cut tokens once (no augmentation), and trains one
:class:`snn.link.SpikeLink` per ``(k, merge, lambda)`` on them with the reference ANN's ground
blocks and head frozen: loss = CE + KL to the reference model's logits on the same images +
scale-free MSE of the decoded tokens to the reference's cut tokens (the link may correct the
blocks' error) + ``lambda`` x the bits under the link's Bernoulli prior. The prior is then
refitted exactly on the training tokens, and every row is measured on the test tokens through
real payloads (header included). The float32 tokens of the same part, through the same ground,
are the row every link is compared with.

It is a probe of the link alone: the tokens are not augmented and the blocks never move, unlike
``satedge fit`` with ``experiments/snn/cut3_ssa_link.yaml``, which trains the chosen setting on
augmented images (its numbers are the ones reported for the part).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm import tqdm

from encoders.rate import estimated_bits
from research.figures import save_figure
from research.records import write_rows
from snn.link import SpikeLink

__all__ = ["LinkSetting", "cache_cut_tokens", "plot", "sweep", "train_link"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LinkSetting:
    """One spike link: ``k`` channels per unit, ``m x m`` tokens per unit, rate weight, and the
    width of a spiking hidden layer in its on-board encoder (``None``: one projection)."""

    k: int
    merge: int
    lmbda: float
    steps: int = 1
    hidden: int = 256
    encoder_hidden: int | None = None

    @property
    def name(self) -> str:
        tail = f"_h{self.encoder_hidden}" if self.encoder_hidden else ""
        return f"k{self.k}_m{self.merge}_T{self.steps}_lambda{self.lmbda:g}{tail}"


@torch.no_grad()
def cache_cut_tokens(part: str, reference: str, cut: int, path: Path, *,
                     root: str | None = "../shared/data/eurosat_rgb",
                     split_file: str | None = "research/data/splits/eurosat_rgb_seed0.json",
                     limit: int | None = None) -> dict:
    """Cut tokens of the ``part`` checkpoint and of the ``reference`` ANN, the reference's logits
    and the labels, per split (float16 tokens; cached at ``path`` with the arguments that made
    them, and refused from there for other arguments). ``root=None``: the embedded subset with
    its own stratified split (a smoke run, not a result)."""
    from research.data.eurosat import EuroSATDataModule
    from research.data.transforms import normalize
    from research.tasks.loading import load_classifier

    path = Path(path)
    made_by = {"part": str(part), "reference": str(reference), "cut": cut, "root": root,
               "split_file": split_file, "limit": limit}
    if path.is_file():
        cache = torch.load(path)
        if cache.get("made_by") != made_by:
            raise ValueError(f"cut-token cache {str(path)!r} was made by {cache.get('made_by')}, "
                             f"not {made_by}; delete it or give another cache path")
        return cache
    dm = EuroSATDataModule(root=root, split_file=split_file)
    dm.setup()
    sat = load_classifier(part, split_index=cut, head_placement="ground")
    ref = load_classifier(reference, split_index=cut, head_placement="ground")
    cache: dict = {"made_by": made_by}
    for split in SPLITS:
        images, labels = dm.subset(split).tensors
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        parts, refs, logits = [], [], []
        for i in tqdm(range(0, len(labels), 256), desc=f"cut tokens ({split})"):
            x = images[i:i + 256]
            r = ref.model.satellite_part(normalize(x, ref.mean, ref.std))
            parts.append(sat.model.satellite_part(normalize(x, sat.mean, sat.std)).half())
            refs.append(r.half())
            logits.append(ref.model.head(ref.model.ground_part(r)))
        cache[split] = {"part": torch.cat(parts), "reference": torch.cat(refs),
                        "teacher_logits": torch.cat(logits), "labels": labels}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cache, path)
    return cache


def _accuracy(ground: torch.nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> int:
    return int((ground.head(ground.ground_part(tokens)).argmax(1) == labels).sum())


@torch.no_grad()
def float_accuracy(ground: torch.nn.Module, data: dict) -> float:
    """Accuracy of the part's float32 cut tokens through ``ground`` (no link)."""
    hits = sum(_accuracy(ground, data["part"][i:i + 512].float(), data["labels"][i:i + 512])
               for i in range(0, len(data["labels"]), 512))
    return hits / len(data["labels"])


@torch.no_grad()
def measure(link: SpikeLink, ground: torch.nn.Module, data: dict) -> tuple[float, float]:
    """Accuracy and mean bytes per inference through real payloads."""
    link.eval()
    hits, size = 0, 0
    for i in range(0, len(data["labels"]), 512):
        x = data["part"][i:i + 512].float()
        payloads = link.compress(x)
        size += sum(len(p) for p in payloads)
        hits += _accuracy(ground, link.decompress(payloads, x.shape[1:]), data["labels"][i:i + 512])
    n = len(data["labels"])
    return hits / n, size / n


def train_link(cache: dict, ground: torch.nn.Module, setting: LinkSetting, *, epochs: int,
               batch: int = 128, lr: float = 1e-3, seed: int = 0) -> SpikeLink:
    """One spike link trained on the cached training tokens (see the module docstring)."""
    torch.manual_seed(seed)
    tr = cache["train"]
    num_tokens, dim = tr["part"].shape[1:]
    link = SpikeLink(dim, code_dim=setting.k, num_steps=setting.steps, num_tokens=num_tokens,
                     prior=True, decoder_hidden=setting.hidden, merge_tokens=setting.merge,
                     encoder_hidden=setting.encoder_hidden)
    opt = torch.optim.AdamW(link.parameters(), lr=lr, weight_decay=0.0)
    n = len(tr["labels"])
    per_epoch = max(1, n // batch)  # a shard smaller than a batch: one full batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * per_epoch,
                                                pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(total=epochs * per_epoch, desc=setting.name)
    for _ in range(epochs):
        link.train()
        perm = torch.randperm(n, generator=gen)
        for j in range(per_epoch):
            idx = perm[j * batch:(j + 1) * batch]
            out = link(tr["part"][idx].float())
            bits = estimated_bits(out["likelihoods"]).mean()
            logits = ground.head(ground.ground_part(out["y_hat"]))
            target = tr["reference"][idx].float()
            loss = (F.cross_entropy(logits, tr["labels"][idx])
                    + F.kl_div(F.log_softmax(logits, 1),
                               F.log_softmax(tr["teacher_logits"][idx].float(), 1),
                               log_target=True, reduction="batchmean")
                    + F.mse_loss(out["y_hat"], target) / target.var()
                    + setting.lmbda * bits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(bits=f"{bits.item():.0f}")
    bar.close()
    link.fit_prior(tr["part"][i:i + 512].float() for i in range(0, n, 512))
    return link.eval()


def sweep(cache: dict, ground: torch.nn.Module, settings: Sequence[LinkSetting], out: Path, *,
          epochs: int, budget_bytes: float | None = None, command: str = "") -> list[dict]:
    """Train and measure every setting; rows appended to ``<out>/spike_link_rate.jsonl`` as they
    finish (a rerun skips settings already there), then the CSV/JSON and the figure."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ground.requires_grad_(False).eval()
    log = out / "spike_link_rate.jsonl"
    done = {json.loads(line)["setting"]: json.loads(line) for line in
            (log.read_text().splitlines() if log.is_file() else [])}
    reference = {"float_test_acc": float_accuracy(ground, cache["test"]),
                 "budget_bytes": budget_bytes}
    for s in settings:
        if s.name in done:
            if done[s.name]["epochs"] != epochs:
                raise ValueError(f"{str(log)!r} holds {s.name} after {done[s.name]['epochs']} "
                                 f"epoch(s), not {epochs}; use another --out to change epochs")
            continue
        t0 = time.time()
        link = train_link(cache, ground, s, epochs=epochs)
        acc, size = measure(link, ground, cache["test"])
        row = {"setting": s.name, **asdict(s), "epochs": epochs, "test_acc": acc,
               "bytes_per_inference": size, "bits_per_token_raw": link.bits_per_token(),
               "train_s": time.time() - t0, **reference}
        done[s.name] = row
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{s.name}: {100 * acc:.2f}% at {size:.1f} B", flush=True)
    rows = [done[s.name] for s in settings if s.name in done]
    write_rows(rows, out, "spike_link_rate", meta={"command": command, **reference})
    plot(rows, reference["float_test_acc"], out, budget_bytes)
    return rows


def plot(rows: list[dict], float_acc: float, out: Path,
         budget_bytes: float | None = None) -> list[Path]:
    """Accuracy against bytes per design (k, merge), with the float32 tokens' accuracy."""
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    def design(r: dict) -> tuple[int, int, int, int]:
        return r["k"], r["merge"], r["steps"], r.get("encoder_hidden") or 0

    for k, m, t, h in sorted({design(r) for r in rows}):
        rs = sorted((r for r in rows if design(r) == (k, m, t, h)),
                    key=lambda r: r["bytes_per_inference"])
        unit = "token" if m == 1 else f"{m}x{m} tokens"
        label = (f"k={k} per {unit}" + (f", T={t}" if t > 1 else "")
                 + (f", {h} hidden spiking neurons on board" if h else ""))
        ax.plot([r["bytes_per_inference"] for r in rs], [100 * r["test_acc"] for r in rs], "o-",
                label=label)
        for r in rs:
            ax.annotate(f"λ={r['lmbda']:g}", (r["bytes_per_inference"], 100 * r["test_acc"]),
                        fontsize=7, textcoords="offset points", xytext=(4, -10))
    ax.axhline(100 * float_acc, color="k", ls="--", lw=1, label="float32 tokens (no link)")
    if budget_bytes is not None and math.isfinite(budget_bytes):
        ax.axvline(budget_bytes, color="tab:red", ls=":", lw=1, label="byte budget")
    ax.set_xlabel("bytes per inference (real payloads, 19-byte header included)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("spike link on a frozen spiking part's cut tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out, "spike_link_rate")

"""What the cut leaks: how well the ground (or anyone on the link) can rebuild the image from it.

Two attacks on what crosses a cut, both knowing the model's weights (the ground holds them):

- **Linear inversion at split 0** (:func:`invert_patch_embedding`): the tokens there are a
  per-patch linear map of the pixels (a 3x8x8 -> 192 convolution plus the position embedding;
  for ``satvit_small`` square and full rank, condition number about 5e4), so its pseudo-inverse
  gives the image back up to whatever the link removed (quantisation noise, amplified by the
  condition number). A narrower embedding than ``3 p^2`` loses information by construction.
- **A learned inversion decoder** (:class:`TokenInverter`) for every cut and link: a per-token
  MLP from a token to its patch's pixels, trained on training images drawn at random (tokens
  through the same satellite part and link; ``train_images`` of them) and evaluated on test
  images. Deeper tokens mix
  patches through attention, which a per-token decoder does not exploit: its reconstructions are
  a lower bound on what leaks.
- **A whole-grid inversion decoder** (:class:`GridInverter`, ``attacker: grid``): the tokens laid
  out on their patch grid and mixed by residual 3x3 convolutions before each is mapped to its
  patch, so an attacker can use what attention spread to the neighbours. Same data and loss.

Each configuration is scored by PSNR and SSIM (``pytorch_msssim``, the package CompressAI uses) of
the reconstructions against the test images, beside the task accuracy through the same tokens and
the real bytes per inference. :func:`leakage_sweep` runs every configuration and writes rows, a
figure and a grid of examples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from pytorch_msssim import ssim
from torch import nn
from tqdm.auto import tqdm

from encoders.base import LinkModule
from research.data.eurosat import EuroSATDataModule
from research.eval.evaluate import random_subset
from research.eval.schemes import token_link
from research.figures import save_figure
from research.models.split_vit import SplitViT
from research.paths import DEFAULT_CLASSIFIER
from research.records import write_rows
from research.tasks.loading import Classifier, load_classifier

__all__ = ["ATTACKERS", "GridInverter", "LeakageConfig", "TokenInverter", "image_quality",
           "invert_patch_embedding", "leakage_sweep", "plot_leakage", "read_leakage",
           "write_leakage"]


@dataclass
class LeakageConfig:
    """What to attack and with how much data.

    ``links`` are training-free token links tried at every cut in ``cuts``; ``codecs`` are
    ``{name: CodecTask checkpoint}`` (their cut comes from the checkpoint).
    """

    root: str | None = "../shared/data/eurosat_rgb"  # None: the embedded subset
    split_file: str | None = None
    checkpoint: str = DEFAULT_CLASSIFIER
    cuts: Sequence[int] = (0, 1, 2, 3, 4, 5, 6)
    links: Sequence[str] = ("identity", "int8", "int4")
    codecs: dict[str, str] = field(default_factory=lambda: {
        "codec-split5": "checkpoints/satvit_small_codec_split5_m8.ckpt"})
    train_images: int = 2000
    test_images: int = 500
    epochs: int = 4
    hidden: int = 512
    batch_tokens: int = 1024
    seed: int = 0
    attacker: str = "token"
    out: str = "outputs/leakage"


def denormalize(x: torch.Tensor, clf: Classifier) -> torch.Tensor:
    """Model-space images back to [0, 255] floats (clamped, as a viewer would show them)."""
    mean = torch.tensor(clf.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(clf.std).view(1, -1, 1, 1) * 255
    return (x * std + mean).clamp(0, 255)


def image_quality(recon: torch.Tensor, images: torch.Tensor) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM of ``recon`` against uint8 ``images``, both on a 0-255 scale."""
    ref = images.float()
    mse = ((recon - ref) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    psnr = (10 * torch.log10(255.0 ** 2 / mse)).mean().item()
    return psnr, ssim(recon, ref, data_range=255, size_average=True).item()


@torch.no_grad()
def invert_patch_embedding(model: SplitViT, tokens: torch.Tensor, img_size: int) -> torch.Tensor:
    """Model-space images from split-0 tokens by the pseudo-inverse of the patch embedding.

    Raises:
        ValueError: If the model is not cut right after the patch embedding.
    """
    if model.split_index != 0:
        raise ValueError(f"linear inversion needs split_index 0, got {model.split_index}")
    v = model.vit
    for name, layer in (("patch_embed.norm", v.patch_embed.norm), ("norm_pre", v.norm_pre)):
        if not isinstance(layer, nn.Identity):
            raise ValueError(f"linear inversion assumes {name} is the identity, got "
                             f"{type(layer).__name__}")
    proj = v.patch_embed.proj
    p = proj.kernel_size[0]
    t = tokens.double()  # the map's condition number is ~5e4: float32 would lose ~1 bit
    if v.pos_embed is not None:
        t = t - v.pos_embed[:, v.num_prefix_tokens:].double()
    t = t[:, v.num_prefix_tokens:] - proj.bias.double()
    w = proj.weight.double().reshape(proj.out_channels, -1)  # [D, C*p*p]
    patches = t @ torch.linalg.pinv(w).T  # [B, N, C*p*p]
    return _unpatchify(patches, proj.in_channels, p, img_size).float()


def _unpatchify(patches: torch.Tensor, channels: int, p: int, img_size: int) -> torch.Tensor:
    b, n, _ = patches.shape
    g = img_size // p
    x = patches.reshape(b, g, g, channels, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels, g * p, g * p)


def _patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, C, H, W]`` to ``[B, N, C*p*p]`` in the patch-embedding weight's (C, p, p) order, the
    order the pseudo-inverse needs (``research.models.mae.patchify`` is channel-last, for MAE)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


class TokenInverter(nn.Module):
    """A per-token MLP from a crossing token to its patch's pixels (model space)."""

    def __init__(self, dim: int, patch_pixels: int, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, patch_pixels))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)

    def fit(self, tokens: torch.Tensor, patches: torch.Tensor, epochs: int, batch: int,
            seed: int = 0, desc: str = "inverter") -> nn.Module:
        """Adam on the MSE between predicted and true patches, every token a sample."""
        x, y = tokens.reshape(-1, tokens.shape[-1]), patches.reshape(-1, patches.shape[-1])
        return _fit(self, x, y, epochs, batch, seed, desc)


class GridInverter(nn.Module):
    """Tokens on their ``grid x grid`` patch grid, mixed by residual 3x3 convolutions, then
    each mapped to its patch's pixels (model space)."""

    def __init__(self, dim: int, patch_pixels: int, hidden: int = 256, grid: int = 8,
                 layers: int = 3) -> None:
        super().__init__()
        self.grid = grid
        self.inp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden))
        self.mix = nn.ModuleList(nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1),
                                               nn.GELU()) for _ in range(layers))
        self.out = nn.Sequential(nn.GELU(), nn.Linear(hidden, patch_pixels))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, _ = tokens.shape
        if n != self.grid * self.grid:
            raise ValueError(f"GridInverter expects {self.grid}x{self.grid} = "
                             f"{self.grid ** 2} tokens per image, got {n}")
        g = self.inp(tokens).transpose(1, 2).reshape(b, -1, self.grid, self.grid)
        for layer in self.mix:
            g = g + layer(g)
        return self.out(g.reshape(b, -1, n).transpose(1, 2))

    def fit(self, tokens: torch.Tensor, patches: torch.Tensor, epochs: int, batch: int,
            seed: int = 0, desc: str = "inverter") -> nn.Module:
        """Adam on the MSE between predicted and true patches, every image a sample (``batch``
        tokens per step, as many images as that makes)."""
        return _fit(self, tokens, patches, epochs, max(1, batch // tokens.shape[1]), seed, desc)


ATTACKERS = {"token": TokenInverter, "grid": GridInverter}
"""The learned attackers by name (``LeakageConfig.attacker``)."""


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int,
         seed: int, desc: str) -> nn.Module:
    """Adam with a one-cycle schedule on the MSE, over the first axis of ``x`` and ``y``."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = epochs * math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    with tqdm(total=steps, desc=desc, leave=False) as bar:
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=gen).split(batch):
                loss = nn.functional.mse_loss(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update()
    return model.eval()


def _tokens(clf: Classifier, link: LinkModule | None, images: torch.Tensor,
            batch: int = 250) -> tuple[torch.Tensor, list[int]]:
    """Tokens after the link (decoded from real payloads) and the bytes of each payload."""
    out, sizes = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            t = clf.model.satellite_part(clf.normalize(images[i:i + batch]))
            if link is not None:
                payloads = link.compress(t)
                sizes += [len(p) for p in payloads]
                t = link.decompress(payloads, t.shape[1:])
            out.append(t)
    return torch.cat(out), sizes


def _accuracy(clf: Classifier, tokens: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        logits = clf.model.head(clf.model.ground_part(tokens))
    return float((logits.argmax(1) == labels).float().mean())


def leakage_sweep(config: LeakageConfig, progress: bool = True) -> tuple[list[dict], dict]:
    """Every (cut, link) and codec: bytes, accuracy, PSNR/SSIM of each attack; and examples."""
    if config.attacker not in ATTACKERS:
        raise ValueError(f"attacker must be one of {sorted(ATTACKERS)}, got {config.attacker!r}")
    torch.manual_seed(config.seed)
    dm = EuroSATDataModule(root=config.root, split_file=config.split_file)
    attack_x, _ = random_subset(*dm.subset("train").tensors, config.train_images,
                                seed=config.seed)  # the attacker's own images (not the test)
    test_x, test_y = random_subset(*dm.subset("test").tensors, config.test_images,
                                   seed=config.seed)
    configs: list[tuple[str, int, Callable[[], tuple[Classifier, LinkModule | None]]]] = []
    for cut in config.cuts:
        for name in config.links:
            def make(cut=cut, name=name):
                clf = load_classifier(config.checkpoint, split_index=cut)
                return clf, token_link(name, clf.model, clf.hparams["backbone"])
            configs.append((name, cut, make))
    for name, path in config.codecs.items():
        def make_codec(path=path):
            clf = load_classifier(path)
            return clf, clf.model.link.eval()
        configs.append((name, -1, make_codec))
    rows, examples = [], {}
    for name, cut, make in tqdm(configs, desc="cuts x links", disable=not progress):
        clf, link = make()
        cut = clf.model.split_index
        size = clf.hparams.get("img_size") or test_x.shape[-1]
        p = clf.model.vit.patch_embed.proj.kernel_size[0]
        tr_tokens, _ = _tokens(clf, link, attack_x)
        te_tokens, sizes = _tokens(clf, link, test_x)
        attacker = ATTACKERS[config.attacker]
        inverter = attacker(te_tokens.shape[-1], 3 * p * p, config.hidden).fit(
            tr_tokens, _patchify(clf.normalize(attack_x), p), config.epochs,
            config.batch_tokens, config.seed, desc=f"{name}@{cut}")
        with torch.no_grad():
            learned = denormalize(_unpatchify(inverter(te_tokens), 3, p, size), clf)
        row = {"link": name, "cut": cut, "attacker": config.attacker,
               "bytes_per_inference": float(np.mean(sizes)),
               "accuracy": _accuracy(clf, te_tokens, test_y)}
        row["psnr_learned_db"], row["ssim_learned"] = image_quality(learned, test_x)
        recon = {"learned": learned[:6]}
        if cut == 0:
            linear = denormalize(invert_patch_embedding(clf.model, te_tokens, size), clf)
            row["psnr_linear_db"], row["ssim_linear"] = image_quality(linear, test_x)
            recon["linear"] = linear[:6]
        else:
            row["psnr_linear_db"] = row["ssim_linear"] = float("nan")
        rows.append(row)
        examples[f"{name}@{cut}"] = recon
    meta = {"checkpoint": config.checkpoint, "train_images": config.train_images,
            "test_images": config.test_images, "epochs": config.epochs,
            "hidden": config.hidden, "seed": config.seed, "attacker": config.attacker,
            "attack": ("per-token MLP" if config.attacker == "token" else
                       "whole-grid (residual 3x3 convolutions over the patch grid)")
            + " inverter trained on train_images random training images; pseudo-inverse of "
              "the patch embedding at split 0"}
    return rows, {"meta": meta, "examples": examples, "originals": test_x[:6]}


def plot_leakage(rows: list[dict], extra: dict, out: str | Path) -> list[Path]:
    """(a) PSNR of the best attack against the cut, one line per link; (b) PSNR against bytes per
    inference, coloured by accuracy; (c) example reconstructions."""
    fig = plt.figure(figsize=(17, 5.2))
    panels = fig.add_gridspec(1, 2, left=0.05, right=0.56, wspace=0.4, bottom=0.12, top=0.88)
    ax_cut, ax_bytes = fig.add_subplot(panels[0]), fig.add_subplot(panels[1])
    links = list(dict.fromkeys(r["link"] for r in rows))

    def best(r: dict) -> float:
        return np.nanmax([r["psnr_learned_db"], r["psnr_linear_db"]])

    for name in links:
        pts = sorted((r for r in rows if r["link"] == name), key=lambda r: r["cut"])
        if len(pts) > 1:
            ax_cut.plot([r["cut"] for r in pts], [best(r) for r in pts], marker="o", label=name)
        else:
            ax_cut.scatter([pts[0]["cut"]], [best(pts[0])], marker="*", s=120, color="black",
                           label=name, zorder=3)
    ax_cut.set_xlabel("cut (blocks on board; 0: right after the patch embedding)")
    ax_cut.set_ylabel("PSNR of the best reconstruction (dB)")
    ax_cut.set_title("(a) what leaks at each cut (higher: more of the image)", fontsize=9)
    ax_cut.legend(fontsize=8)
    sc = ax_bytes.scatter([r["bytes_per_inference"] for r in rows], [best(r) for r in rows],
                          c=[100 * r["accuracy"] for r in rows], cmap="viridis", s=40)
    last_cut = max(r["cut"] for r in rows)
    for r in rows:  # label the ends of each line and the codecs; the rest sit between them
        if r["cut"] in (0, last_cut) or r["link"] not in links[:3]:
            ax_bytes.annotate(f"{r['link']}@{r['cut']}", (r["bytes_per_inference"], best(r)),
                              fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax_bytes.set_xscale("log")
    ax_bytes.set_xlabel("bytes per inference (real payloads)")
    ax_bytes.set_ylabel("PSNR of the best reconstruction (dB)")
    ax_bytes.set_title("(b) leakage against bytes; colour: task accuracy", fontsize=9)
    fig.colorbar(sc, ax=ax_bytes, label="accuracy (%)")
    shown = [k for k in extra["examples"] if k.split("@")[1] in ("0", "3", "6")
             and k.split("@")[0] in ("identity", "int4")]
    shown += [k for k in extra["examples"] if k.split("@")[0] not in links[:3]][:1]
    columns = [("original", extra["originals"])]
    for key in shown:
        rec = extra["examples"][key]
        columns.append((f"{key} learned", rec["learned"]))
        if "linear" in rec:
            columns.append((f"{key} linear", rec["linear"]))
    n_img = min(4, len(extra["originals"]))
    grid = fig.add_gridspec(n_img, len(columns), left=0.6, right=0.99, top=0.86, bottom=0.1,
                            wspace=0.05, hspace=0.05)
    for j, (title, imgs) in enumerate(columns):
        for i in range(n_img):
            ax = fig.add_subplot(grid[i, j])
            ax.imshow(imgs[i].permute(1, 2, 0).numpy().astype(np.uint8)
                      if imgs.dtype != torch.uint8 else imgs[i].permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title.replace(" ", "\n"), fontsize=6)
    attacker = {"token": "per-token", "grid": "whole-grid"}.get(
        extra.get("meta", {}).get("attacker", "token"), "learned")
    fig.suptitle(f"(c) test images rebuilt from what crosses the cut (learned: {attacker} "
                 "decoder; linear: pseudo-inverse)", x=0.795, y=0.97, fontsize=9)
    return save_figure(fig, out, "leakage")


def write_leakage(rows: list[dict], extra: dict, out: str | Path) -> dict[str, Path]:
    """``leakage.{csv,json}``, the example reconstructions (``leakage_examples.npz``, uint8) and
    the figure under ``out``."""
    paths = write_rows(rows, out, "leakage", meta=extra["meta"])
    arrays = {"originals": extra["originals"].numpy()}
    for key, recon in extra["examples"].items():
        for attack, images in recon.items():
            arrays[f"{key}|{attack}"] = images.round().clamp(0, 255).to(torch.uint8).numpy()
    paths["npz"] = Path(out) / "leakage_examples.npz"
    np.savez_compressed(paths["npz"], **arrays)
    for p in plot_leakage(rows, extra, out):
        paths[p.suffix[1:]] = p
    return paths


def read_leakage(out: str | Path) -> tuple[list[dict], dict]:
    """Rows and examples written by :func:`write_leakage` (to redraw the figure)."""
    import json

    record = json.loads((Path(out) / "leakage.json").read_text())
    rows = record.pop("rows")
    examples: dict[str, dict[str, torch.Tensor]] = {}
    with np.load(Path(out) / "leakage_examples.npz") as data:
        originals = torch.from_numpy(data["originals"])
        for name in data.files:
            if "|" in name:
                key, attack = name.split("|")
                examples.setdefault(key, {})[attack] = torch.from_numpy(data[name]).float()
    return rows, {"meta": record, "examples": examples, "originals": originals}

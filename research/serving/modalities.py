"""Sensor modalities the serving layer accepts, each with its own embedder into the shared encoder.

With only RGB EuroSAT on disk, the measured modalities are other sensors of the same real scene,
derived from the RGB tile the way the instrument would sample it:

* ``rgb``: the EuroSAT tile, 3 bands at 10 m (64 x 64 uint8): the checkpoint's own embedder;
* ``pan``: a panchromatic band at 10 m (ITU-R BT.601 luminance of R, G, B; 64 x 64 uint8);
* ``rgb20m``: RGB at 20 m (2 x 2 area mean; 32 x 32 uint8), embedded with 4 px patches so it
  gives the encoder the same 8 x 8 token grid;
* ``ms13``: a *synthetic* 13-band tile (R, G, B on Sentinel-2 B04/B03/B02, their mean on the
  other bands, uint16 on the link) whose embedder is never trained: for tests of the 13-band
  path only, never in a headline number (``measured=False``; the figure drivers refuse it).

The ``pan`` and ``rgb20m`` embedders start from the RGB kernel (summed over bands, or over 2 x 2
pixel blocks) and are trained by :func:`train_embedder` on the real training split to reproduce
the RGB tile's encoder features through the frozen encoder (feature distillation), so every task
head on the shared encoder serves them unchanged. Their accuracy is measured on held-out tiles
like the RGB one's. ``scripts/train_modality_embedders.py`` writes the committed weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from research.registry import Registry

__all__ = ["MS13_RGB_BANDS", "Modality", "embedder_init", "encoder_features", "get_modality",
           "landcover_accuracy", "list_modalities", "load_embedder_weights", "register_modality", "save_embedder_weights",
           "train_embedder", "train_embedders"]

MS13_RGB_BANDS = (3, 2, 1)
"""Indices of Sentinel-2 B04 (red), B03 (green), B02 (blue) in the 13-band L1C order."""

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601: the panchromatic response as a mix of R, G, B


@dataclass(frozen=True)
class Modality:
    """A sensor's tile as the satellite holds it.

    Attributes:
        name: the request's ``modality``.
        bands / img_size: tile shape ``[bands, img_size, img_size]``.
        bytes_per_sample: raw sample size on the satellite (1: uint8, 2: uint16).
        measured: its embedder is trained on real data and its accuracy measured; only measured
            modalities may appear in a headline comparison.
        sensor: what it stands for, for captions.
        from_rgb: uint8 RGB tiles ``[B, 3, 64, 64]`` -> this modality's uint8 tiles.
    """

    name: str
    bands: int
    img_size: int
    bytes_per_sample: int
    measured: bool
    sensor: str
    from_rgb: Callable[[torch.Tensor], torch.Tensor]

    @property
    def raw_bytes(self) -> int:
        """Bytes of one raw tile on the satellite (what raw downlink sends)."""
        return self.bands * self.img_size * self.img_size * self.bytes_per_sample


_MODALITIES: Registry[Modality] = Registry("modality")


def register_modality(modality: Modality) -> Modality:
    """Register ``modality`` under its name (returns it)."""
    return _MODALITIES.register(modality.name)(modality)


def get_modality(name: str) -> Modality:
    """The modality called ``name`` (an unknown name lists the valid ones)."""
    return _MODALITIES.get(name)


def list_modalities(measured_only: bool = False) -> list[str]:
    """Registered modality names, sorted; ``measured_only`` leaves out synthetic ones."""
    return [n for n in _MODALITIES.names() if not measured_only or _MODALITIES.get(n).measured]


def _pan(rgb: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, dtype=torch.float32).view(1, 3, 1, 1)
    return (rgb.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def _rgb20m(rgb: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(rgb.float(), 2).round().clamp(0, 255).to(torch.uint8)


def _ms13(rgb: torch.Tensor) -> torch.Tensor:
    out = rgb.float().mean(1, keepdim=True).round().to(torch.uint8).repeat(1, 13, 1, 1)
    for rgb_band, ms_band in enumerate(MS13_RGB_BANDS):
        out[:, ms_band] = rgb[:, rgb_band]
    return out


register_modality(Modality("rgb", 3, 64, 1, True, "RGB at 10 m (EuroSAT, Sentinel-2 B04/B03/B02)",
                           lambda x: x))
register_modality(Modality("pan", 1, 64, 1, True,
                           "panchromatic at 10 m (BT.601 luminance of the same scene)", _pan))
register_modality(Modality("rgb20m", 3, 32, 1, True, "RGB at 20 m (2 x 2 area mean of the scene)",
                           _rgb20m))
register_modality(Modality("ms13", 13, 64, 2, False,
                           "SYNTHETIC 13-band (untrained embedder; tests only)", _ms13))


def embedder_init(vit: VisionTransformer, modality: str) -> PatchEmbed:
    """A patch embedding for ``modality`` giving ``vit``'s token grid, initialised from its RGB
    kernel: equal to it on RGB-like inputs, so training starts from the RGB embedder's features.
    ``rgb`` returns ``vit.patch_embed`` itself."""
    m = get_modality(modality)
    rgb = vit.patch_embed
    if modality == "rgb":
        return rgb
    grid = rgb.grid_size[0]
    if m.img_size % grid:
        raise ValueError(f"modality {modality!r}: {m.img_size} px tiles do not split into the "
                         f"encoder's {grid} x {grid} token grid")
    patch = m.img_size // grid
    pe = PatchEmbed(img_size=m.img_size, patch_size=patch, in_chans=m.bands,
                    embed_dim=rgb.proj.out_channels)
    w = rgb.proj.weight.detach()  # [D, 3, P, P]
    with torch.no_grad():
        if modality == "ms13":
            pe.proj.weight.zero_()
            for rgb_band, ms_band in enumerate(MS13_RGB_BANDS):
                pe.proj.weight[:, ms_band] = w[:, rgb_band]
        elif m.bands == 1:  # a grey tile: every RGB band sees the same value
            pe.proj.weight.copy_(F.interpolate(w.sum(1, keepdim=True), size=(patch, patch),
                                               mode="area") * (w.shape[-1] / patch) ** 2)
        else:  # coarser pixels: one pixel stands for a block of RGB pixels
            pe.proj.weight.copy_(F.avg_pool2d(w, w.shape[-1] // patch) * (w.shape[-1] // patch) ** 2)
        pe.proj.bias.copy_(rgb.proj.bias)
    return pe


def encoder_features(vit: VisionTransformer, patch_embed: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled, normed encoder features with ``patch_embed`` in place of the RGB one."""
    tokens = vit.norm_pre(patch_embed(x) + vit.pos_embed)
    return vit.fc_norm(vit.pool(vit.norm(vit.blocks(tokens))))


@torch.no_grad()
def landcover_accuracy(vit: VisionTransformer, modality: str, patch_embed: nn.Module,
                       images: torch.Tensor, labels: torch.Tensor, mean: list[float],
                       std: list[float], batch_size: int = 500) -> float:
    """Top-1 accuracy of ``vit``'s own head on RGB ``images`` seen as ``modality`` through
    ``patch_embed`` (a held-out check of a trained embedder)."""
    from research.data.transforms import normalize

    m, hits = get_modality(modality), 0
    for i in range(0, len(images), batch_size):
        x = normalize(m.from_rgb(images[i:i + batch_size]), mean, std)
        logits = vit.head(encoder_features(vit, patch_embed, x))
        hits += int((logits.argmax(1) == labels[i:i + batch_size]).sum())
    return hits / len(images)


def train_embedder(vit: VisionTransformer, modality: str, images: torch.Tensor,
                   rgb_mean: list[float], rgb_std: list[float], mean: list[float],
                   std: list[float], *, steps: int = 400, batch_size: int = 64, lr: float = 1e-3,
                   seed: int = 0, progress: bool = True) -> tuple[PatchEmbed, list[float]]:
    """Train ``modality``'s embedder to give the frozen encoder the RGB tile's features.

    ``images`` are uint8 RGB training tiles; the student sees them converted to ``modality``
    (normalised by ``mean`` / ``std``), the teacher (the RGB embedder) sees them as they are.
    Only the new embedding's weights train. Returns the embedding and the loss per step.
    """
    from tqdm.auto import tqdm

    from research.data.transforms import normalize

    m = get_modality(modality)
    torch.manual_seed(seed)
    pe = embedder_init(vit, modality)
    vit.eval().requires_grad_(False)
    pe.train().requires_grad_(True)
    opt = torch.optim.AdamW(pe.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(steps), desc=f"embedder {modality}", disable=not progress):
        idx = torch.randint(len(images), (batch_size,), generator=gen)
        rgb = images[idx]
        with torch.no_grad():
            target = encoder_features(vit, vit.patch_embed, normalize(rgb, rgb_mean, rgb_std))
        out = encoder_features(vit, pe, normalize(m.from_rgb(rgb), mean, std))
        loss = F.mse_loss(out, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return pe.eval().requires_grad_(False), losses


def train_embedders(vit: VisionTransformer, modalities: list[str], images: torch.Tensor,
                    rgb_mean: list[float], rgb_std: list[float], **kwargs
                    ) -> tuple[dict[str, PatchEmbed], dict[str, tuple[list[float], list[float]]],
                               dict[str, list[float]]]:
    """:func:`train_embedder` for each of ``modalities``, with input statistics of its converted
    training tiles; returns embedders, statistics and losses by modality."""
    from research.data.transforms import channel_stats

    embedders, stats, losses = {}, {}, {}
    for name in modalities:
        if name == "rgb" or not get_modality(name).measured:
            raise ValueError(f"modality {name!r}: only measured modalities other than 'rgb' are "
                             f"trained here; expected some of {list_modalities(True)}")
        mean, std = channel_stats(get_modality(name).from_rgb(images))
        embedders[name], losses[name] = train_embedder(vit, name, images, rgb_mean, rgb_std,
                                                       mean, std, **kwargs)
        stats[name] = (mean, std)
    return embedders, stats, losses


def save_embedder_weights(path: str | Path, embedders: Mapping[str, PatchEmbed],
                          stats: Mapping[str, tuple[list[float], list[float]]], meta: dict) -> None:
    """Write trained embedders (state dicts), their input statistics and how they were made."""
    torch.save({"embedders": {k: v.state_dict() for k, v in embedders.items()},
                "stats": {k: [list(s[0]), list(s[1])] for k, s in stats.items()},
                "meta": meta}, path)


def load_embedder_weights(path: str | Path, vit: VisionTransformer
                          ) -> tuple[dict[str, PatchEmbed], dict[str, tuple[list[float], list[float]]],
                                     dict]:
    """Read what :func:`save_embedder_weights` wrote, for ``vit``'s width and token grid.

    Raises:
        FileNotFoundError / ValueError: naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embedder weights {str(path)!r} not found (write them with "
                                "python scripts/train_modality_embedders.py)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or not {"embedders", "stats"} <= set(blob):
        raise ValueError(f"{str(path)!r} is not an embedder weights file (expected keys "
                         "'embedders' and 'stats')")
    out = {}
    for name, state in blob["embedders"].items():
        pe = embedder_init(vit, name)
        try:
            pe.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{str(path)!r}: the {name!r} embedder does not fit this encoder "
                             f"(width {vit.embed_dim}): {err}") from None
        out[name] = pe.eval()
    stats = {k: (list(v[0]), list(v[1])) for k, v in blob["stats"].items()}
    return out, stats, dict(blob.get("meta", {}))

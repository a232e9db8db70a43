"""Give a trained spike link its Bernoulli prior, counted on training images, in a new checkpoint.

A spike link trained without a prior (``codec_options.prior`` unset) sends packed bits. Its
encoder and decoder need not change to range-code the same spikes: the prior is a statistic of
what the trained on-board part emits (like BatchNorm's running statistics), so it can be counted
afterwards on the training set and saved beside the weights (``scripts/fit_spike_prior.py``
passes the training split only, so no test image enters it).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from research.atomic import atomic_save
from research.tasks.codec import build_task_codec
from research.tasks.loading import load_classifier
from snn.link import SpikeLink

__all__ = ["fit_spike_prior"]


@torch.no_grad()
def fit_spike_prior(path: str | Path, out: str | Path, images: torch.Tensor,
                    batch_size: int = 250, progress: bool = True) -> dict:
    """Count the spikes ``path``'s on-board part emits on ``images`` into a prior; save to ``out``.

    Args:
        path: A ``CodecTask`` checkpoint whose link is ``spike``.
        out: Where the checkpoint with ``codec_options.prior = True`` and the counts goes.
        images: uint8 training images ``[B, C, H, W]``.

    Returns:
        What was counted: ``images``, the mean ``firing_rate`` and the prior's cross-entropy
        ``bytes_per_inference_estimated`` of the counted trains (body only, no header).
    """
    clf = load_classifier(path)
    if clf.hparams.get("codec") != "spike":
        raise ValueError(f"{str(path)!r} holds a {clf.hparams.get('codec')!r} link; a prior is "
                         "fitted to a 'spike' link")
    if not len(images):
        raise ValueError("fit_spike_prior: no images to count spikes on")
    model, old = clf.model, clf.model.link
    options = {**(clf.hparams.get("codec_options") or {}), "prior": True}
    link = build_task_codec({**clf.hparams, "codec_options": options})
    if not isinstance(link, SpikeLink):  # pragma: no cover - the registry's entry
        raise TypeError(f"the 'spike' entry built a {type(link).__name__}")
    missing, unexpected = link.load_state_dict(old.state_dict(), strict=False)
    if unexpected or set(missing) - {"prior_ones", "prior_seen"}:  # a prior is re-counted
        raise ValueError(f"{str(path)!r}: its spike link does not match a rebuilt one "
                         f"(missing {missing}, unexpected {unexpected})")
    link.eval()
    batches = (model.cut_tokens(clf.normalize(images[i:i + batch_size]))
               for i in tqdm(range(0, len(images), batch_size), desc="counting spikes",
                             disable=not progress))
    counted = link.fit_prior(batches)
    p = link.firing_probability().double()
    rate = link.prior_ones.double() / counted
    entropy = -(rate * p.log2() + (1 - rate) * (1 - p).log2()).sum() / 8

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt["hyper_parameters"]["codec_options"] = options
    for name, value in link.state_dict().items():
        if name.startswith("prior_"):
            ckpt["state_dict"][f"model.link.{name}"] = value.clone()
    atomic_save(ckpt, out)  # ``out`` may be ``path`` itself: never leave it half written
    return {"images": counted, "firing_rate": float(rate.mean()),
            "bytes_per_inference_estimated": float(entropy)}

"""Differential privacy of federated fine-tuning: per satellite (DP-FedAvg) or per image (DP-SGD).

``privacy.level`` picks the unit a guarantee protects:

* ``satellite`` (user-level DP-FedAvg, McMahan et al. 2018): a satellite's whole shard. Each
  satellite clips its update (the change of the head this round) to L2 norm ``clip`` and adds
  Gaussian noise of standard deviation ``z * clip / sqrt(K)``, K the satellites training this
  round, so the sum of K updates carries ``N(0, (z clip)^2)``. The noise is *distributed*: no
  party adds it for the others, which suits the ring (no trusted aggregator); the guarantee is
  on the released head, and against the aggregator itself (the ground, a ring neighbour) the
  individual updates need secure aggregation (:mod:`research.fed.secagg`). Aggregation is
  unweighted (one satellite's influence is bounded by ``clip``, whatever its shard size). When
  updates are lost after training, the sum carries less noise: the round is accounted with the
  effective multiplier ``z * sqrt(aggregated / trained)``.
* ``image`` (example-level DP-SGD, Abadi et al. 2016, with Opacus): one image. Each satellite's
  local SGD draws Poisson batches (rate ``batch / n``), clips every image's gradient to ``clip``
  and adds ``N(0, (z clip)^2)`` to the sum; ``z`` is calibrated per satellite from its shard size
  so that every image meets the target. Aggregation is ordinary FedAvg (post-processing).

Satellites are not sampled at random (contacts decide who takes part), so no amplification by
client sampling is claimed: the satellite-level accountant uses sampling rate 1. Accounting is
Opacus's Renyi-DP accountant (``opacus.accountants.RDPAccountant``); the ledger carries the
epsilon spent after every round (the worst satellite's, for ``image``). Noise is drawn from
seeded generators so a run reproduces and resumes exactly; a deployment would draw it from a
cryptographically secure source instead.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import DPOptimizer
from torch import nn

from research.fed.config import PrivacyConfig, TrainConfig
from research.models.averaging import State, flatten, unflatten

__all__ = ["ImagePlan", "Privacy", "rdp_epsilon"]

ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [
    64, 80, 96, 128, 160, 192, 256, 384, 512, 768, 1024]
"""Renyi orders searched (Opacus's defaults and larger ones: small epsilons at sampling rate 1
need orders above 63 for a tight bound)."""

NOISE_SALT = 7_919
"""Offset of the satellite-level noise seed from the local-update seed (independent streams)."""


@dataclass(frozen=True)
class ImagePlan:
    """One satellite's DP-SGD: noise multiplier, Poisson rate and steps per round."""

    noise_multiplier: float
    sample_rate: float
    steps_per_round: int


def rdp_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    """Epsilon at ``delta`` of ``(noise_multiplier, sample_rate, steps)`` mechanisms composed."""
    if not history:
        return 0.0
    acc = RDPAccountant()
    acc.history = list(history)
    return float(acc.get_epsilon(delta, alphas=ALPHAS))


@lru_cache(maxsize=4096)
def _calibrated(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                      sample_rate=sample_rate, steps=steps, accountant="rdp",
                                      epsilon_tolerance=0.005, alphas=ALPHAS))


@lru_cache(maxsize=4096)
def _epsilon(z: float, q: float, steps: int, delta: float) -> float:
    return rdp_epsilon([(z, q, steps)], delta)


class Privacy:
    """A run's DP mechanism: calibration, the on-board step, aggregation weights, accounting."""

    def __init__(self, cfg: PrivacyConfig, train: TrainConfig) -> None:
        self.cfg, self.train = cfg, train

    @property
    def level(self) -> str:
        return self.cfg.level

    @property
    def enabled(self) -> bool:
        return self.cfg.level != "none"

    # ------------------------------------------------------------------ calibration
    def satellite_noise_multiplier(self) -> float:
        """``z`` of the per-round Gaussian on the update sum (sampling rate 1, ``rounds`` steps)."""
        if self.cfg.noise_multiplier is not None:
            return float(self.cfg.noise_multiplier)
        return _calibrated(float(self.cfg.epsilon), self.cfg.delta, 1.0, self.train.rounds)

    def image_plan(self, n: int) -> ImagePlan:
        """DP-SGD of a satellite holding ``n`` images (a batch larger than the shard: rate 1)."""
        if n < 1:
            raise ValueError(f"a DP-SGD shard needs at least one image, got n={n}")
        q = min(1.0, self.train.batch_size / n)
        steps = self.train.local_epochs * max(1, round(1 / q))
        z = (float(self.cfg.noise_multiplier) if self.cfg.noise_multiplier is not None
             else _calibrated(float(self.cfg.epsilon), self.cfg.delta, q,
                              steps * self.train.rounds))
        return ImagePlan(z, q, steps)

    # ------------------------------------------------------------------ on board
    def weight(self, n: int) -> float:
        """A satellite's aggregation weight: its image count, or 1 under satellite-level DP."""
        return 1.0 if self.level == "satellite" else float(n)

    def noised_update(self, new: State, old: State, cohort: int, seed: int) -> State:
        """Satellite-level DP: ``old + clip(new - old) + N(0, (z clip)^2 / cohort)``."""
        if cohort < 1:
            raise ValueError(f"cohort must be >= 1 satellite, got {cohort}")
        delta = flatten(new) - flatten(old)
        norm = float(delta.norm())
        clip = self.cfg.clip
        if norm > clip:
            delta = delta * (clip / norm)
        std = self.satellite_noise_multiplier() * clip / math.sqrt(cohort)
        gen = torch.Generator().manual_seed(seed + NOISE_SALT)
        noise = torch.randn(delta.numel(), generator=gen, dtype=torch.float64) * std
        return unflatten(flatten(old) + delta + noise, old)

    def dp_sgd(self, head: nn.Module, features: torch.Tensor, labels: torch.Tensor,
               seed: int) -> None:
        """Image-level DP-SGD of ``head`` in place: Poisson batches, per-image clipping, noise.

        The step is taken with noise even when a Poisson batch comes out empty: skipping it would
        reveal the empty batch. The mean uses the expected batch size (fixed denominator).
        """
        n = len(labels)
        plan = self.image_plan(n)
        head.train()  # Opacus records per-image activations in training mode only
        gen = torch.Generator().manual_seed(seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ff]ull backward hook.*")
            model = GradSampleModule(head, loss_reduction="sum")
            opt = DPOptimizer(torch.optim.SGD(model.parameters(), lr=self.train.lr,
                                              momentum=self.train.momentum),
                              noise_multiplier=plan.noise_multiplier,
                              max_grad_norm=self.cfg.clip,
                              expected_batch_size=max(1, round(plan.sample_rate * n)),
                              loss_reduction="mean", generator=gen)
            for _ in range(plan.steps_per_round):
                idx = torch.nonzero(torch.rand(n, generator=gen) < plan.sample_rate).flatten()
                out = model(features[idx])
                loss = (nn.functional.cross_entropy(out, labels[idx], reduction="sum")
                        if len(idx) else out.sum() * 0.0)
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.zero_grad(set_to_none=True)
            model._close()

    # ------------------------------------------------------------------ accounting
    def columns(self, rows: list[dict], trained: int, shard_sizes: list[int]) -> dict:
        """Privacy columns of the latest row (``rows[-1]``): the round's effective noise
        multiplier and the epsilon spent so far at ``delta`` (the worst image's for ``image``)."""
        if not self.enabled:
            return {}
        if self.level == "satellite":
            z = self.satellite_noise_multiplier()
            agg = int(rows[-1]["participants"])
            z_eff = z * math.sqrt(agg / trained) if trained else math.inf
            history = [(float(r["dp_noise_multiplier"]), 1.0, 1) for r in rows[:-1]]
            history.append((z_eff, 1.0, 1))
            return {"dp_noise_multiplier": z_eff,
                    "epsilon": rdp_epsilon(history, self.cfg.delta), "delta": self.cfg.delta}
        plans = {self.image_plan(n) for n in set(shard_sizes) if n > 0}
        r = len(rows)  # every satellite is charged every round (an upper bound)
        eps = max(_epsilon(p.noise_multiplier, p.sample_rate, p.steps_per_round * r,
                           self.cfg.delta) for p in plans)
        return {"dp_noise_multiplier": min(p.noise_multiplier for p in plans), "epsilon": eps,
                "delta": self.cfg.delta}

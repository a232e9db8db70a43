"""Differential privacy of federated fine-tuning: per satellite (DP-FedAvg) or per image (DP-SGD).

``privacy.level`` picks the unit a guarantee protects:

* ``satellite`` (user-level DP-FedAvg, McMahan et al. 2018): a satellite's whole shard. Each
  satellite clips its update (the change of the head this round) to L2 norm ``clip`` and adds
  Gaussian noise of standard deviation ``z * clip / sqrt(K)``, K the satellites training this
  round, so the sum of K updates carries ``N(0, (z clip)^2)``. Aggregation is unweighted (one
  satellite's influence is bounded by ``clip``, whatever its shard size). The adjacency is
  *zero-out* (Kairouz et al. 2021): neighbouring datasets differ in one satellite's update
  replaced by zero, the cohort unchanged (who takes part is decided by contacts, which are
  public), so the sum's sensitivity is ``clip``. ``adjacency: replace`` (one satellite's update
  replaced by any other) doubles it to ``2 clip``: the noise is calibrated to ``2 z`` and each
  round accounted with ``z_applied / 2``. When updates are lost after training, the sum
  carries less noise: the round is accounted with ``z * sqrt(aggregated / trained)``.
* ``image`` (example-level DP-SGD, Abadi et al. 2016, with Opacus): one image. Each satellite's
  local SGD draws Poisson batches (rate ``batch / n``), clips every image's gradient to ``clip``
  and adds ``N(0, (z clip)^2)`` to the sum; ``z`` is calibrated per satellite from its shard size
  so that every image meets the target. Aggregation is ordinary FedAvg (post-processing, with the
  shard sizes treated as public, as the contact plan's compute times reveal them anyway).

The guarantee is on the released head. The noise is *distributed* (no party adds it for the
others), but an individual update carries only ``1/sqrt(K)`` of it: against whoever sees single
updates (the ground on the star, a ring neighbour) it needs secure aggregation
(``secagg.enabled``, :mod:`research.fed.secure_rounds`), under which the aggregator sees only
masked, noised updates. Satellites are not sampled at
random, so no amplification by client sampling is claimed (sampling rate 1). Accounting is
Opacus's Renyi-DP accountant; the ledger carries the epsilon spent after every round (for
``image``, the worst satellite's, every satellite charged every round). Noise comes from seeded
generators so a run reproduces and resumes exactly; a deployment would draw it from a
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
    try:
        return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                          sample_rate=sample_rate, steps=steps,
                                          accountant="rdp", epsilon_tolerance=0.005,
                                          alphas=ALPHAS))
    except ValueError as err:  # Opacus: "The privacy budget is too low."
        raise ValueError(f"privacy.epsilon={epsilon} at delta={delta} cannot be reached with "
                         f"{steps} step(s) at sampling rate {sample_rate:.3g} ({err}); raise "
                         "privacy.epsilon or use fewer rounds") from None


@lru_cache(maxsize=4096)
def _epsilon(z: float, q: float, steps: int, delta: float) -> float:
    return rdp_epsilon([(z, q, steps)], delta)


class Privacy:
    """A run's DP mechanism: calibration, the on-board step, aggregation weights, accounting."""

    def __init__(self, cfg: PrivacyConfig, train: TrainConfig) -> None:
        self.cfg, self.train = cfg, train
        if cfg.adjacency == "replace" and cfg.level != "satellite":
            raise ValueError("privacy.adjacency: replace is for level satellite (DP-SGD's "
                             "Poisson accounting is add/remove)")
        if self.level == "satellite":
            self.satellite_noise_multiplier()  # an unreachable epsilon fails before round 1

    @property
    def level(self) -> str:
        return self.cfg.level

    @property
    def enabled(self) -> bool:
        return self.cfg.level != "none"

    # ------------------------------------------------------------------ calibration
    @property
    def sensitivity(self) -> float:
        """The update sum's L2 sensitivity in units of ``clip``: 1 (zero-out), 2 (replace)."""
        return 2.0 if self.cfg.adjacency == "replace" else 1.0

    def satellite_noise_multiplier(self) -> float:
        """``z``: the per-round Gaussian on the update sum has std ``z * clip`` (sampling rate 1,
        ``rounds`` steps; calibrated for the sensitivity of the adjacency)."""
        if self.cfg.noise_multiplier is not None:
            return float(self.cfg.noise_multiplier)
        return self.sensitivity * _calibrated(float(self.cfg.epsilon), self.cfg.delta, 1.0,
                                              self.train.rounds)

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

    def noised_update(self, new: State, old: State, cohort: int | None, seed: int) -> State:
        """Satellite-level DP: ``old + clip(new - old) + N(0, (z clip)^2 / cohort)``."""
        if cohort is None or cohort < 1:
            raise ValueError(f"satellite-level DP needs the cohort (satellites training this "
                             f"round, >= 1) to size each noise share, got {cohort}")
        start = flatten(old)
        change = flatten(new) - start
        norm = float(change.norm())
        clip = self.cfg.clip
        if norm > clip:
            change = change * (clip / norm)
        std = self.satellite_noise_multiplier() * clip / math.sqrt(cohort)
        gen = torch.Generator().manual_seed(seed + NOISE_SALT)
        noise = torch.randn(change.numel(), generator=gen, dtype=torch.float64) * std
        return unflatten(start + change + noise, old)

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
        # GradSampleModule's "sum" gives true per-image gradients; the optimiser's "mean" divides
        # the clipped, noised sum by the expected batch (a fixed denominator), as DP-SGD does.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ff]ull backward hook.*")
            model = GradSampleModule(head, loss_reduction="sum")
            opt = DPOptimizer(torch.optim.SGD(model.parameters(), lr=self.train.lr,
                                              momentum=self.train.momentum),
                              noise_multiplier=plan.noise_multiplier,
                              max_grad_norm=self.cfg.clip,
                              expected_batch_size=max(1, round(plan.sample_rate * n)),
                              loss_reduction="mean", generator=gen)
            try:
                for _ in range(plan.steps_per_round):
                    idx = torch.nonzero(torch.rand(n, generator=gen) < plan.sample_rate).flatten()
                    loss = nn.functional.cross_entropy(model(features[idx]), labels[idx],
                                                       reduction="sum")  # 0 on an empty batch
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            finally:
                opt.zero_grad(set_to_none=True)
                model._close()

    # ------------------------------------------------------------------ accounting
    def columns(self, rows: list[dict], trained: int, shard_sizes: list[int]) -> dict:
        """Privacy columns of the latest row (``rows[-1]``): the round's noise multiplier (its
        effective one for ``satellite``; the smallest of any satellite for ``image``) and the
        epsilon spent so far at ``delta`` (the worst image's for ``image``). Warns when lost
        updates pushed the spend past the target."""
        if not self.enabled:
            return {}
        if self.level == "satellite":
            z = self.satellite_noise_multiplier()
            agg = int(rows[-1]["participants"])
            z_eff = z * math.sqrt(agg / trained) if agg else None  # None: nothing released
            k = self.sensitivity  # noise in units of the sensitivity
            history = [(float(r["dp_noise_multiplier"]) / k, 1.0, 1) for r in rows[:-1]
                       if r["dp_noise_multiplier"] is not None]
            if z_eff is not None:
                history.append((z_eff / k, 1.0, 1))
            eps = rdp_epsilon(history, self.cfg.delta) if history else 0.0
            target = self.cfg.epsilon
            if target is not None and eps > target * 1.001:
                warnings.warn(f"round {len(rows)}: epsilon spent {eps:.3f} is past the target "
                              f"{target} (updates lost after training carried their noise "
                              "away)", stacklevel=2)
            return {"dp_noise_multiplier": z_eff, "epsilon": eps, "delta": self.cfg.delta}
        plans = {self.image_plan(n) for n in set(shard_sizes) if n > 0}
        r = len(rows)  # every satellite is charged every round (an upper bound)
        eps = max(_epsilon(p.noise_multiplier, p.sample_rate, p.steps_per_round * r,
                           self.cfg.delta) for p in plans)
        return {"dp_noise_multiplier": min(p.noise_multiplier for p in plans), "epsilon": eps,
                "delta": self.cfg.delta}

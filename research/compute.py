"""Compute profiles of the nodes that run model parts: how long and how much energy N FLOPs cost.

Federated fine-tuning, serving and evaluation all turn counted FLOPs into simulated time and
energy through this one module, so the on-board / ground trade-off is priced the same everywhere.
Time is ``flops / (peak_flops * utilisation)``; energy is ``power_w * time``. The peak figures
come from data sheets (cited in ``source``); ``utilisation`` is the fraction of peak a ViT layer
reaches in practice, stated with its reason.

Per-operation energy for spiking layers lives in :mod:`snn.profiles`; ``energy_profile`` names
the matching entry there so an evaluation can price synaptic ops on the same device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = [
    "ComputeProfile",
    "compute_profile",
    "list_compute_profiles",
    "register_compute_profile",
]


@dataclass(frozen=True)
class ComputeProfile:
    """Throughput, power and memory of one compute node.

    Attributes:
        name: Registry key.
        peak_flops: Peak FLOP/s of the precision the model runs in.
        utilisation: Fraction of peak reached on transformer layers (0 < u <= 1).
        power_w: Power drawn while computing (W).
        memory_bytes: Memory available to model parts (weights + activations).
        energy_profile: Name of the :mod:`snn.profiles` entry for per-op energy on this device.
        source: Where the numbers come from.
    """

    name: str
    peak_flops: float
    utilisation: float
    power_w: float
    memory_bytes: float
    energy_profile: str
    source: str

    def __post_init__(self) -> None:
        if self.peak_flops <= 0 or self.power_w < 0 or self.memory_bytes <= 0:
            raise ValueError(f"compute profile {self.name!r}: peak_flops and memory_bytes must be "
                             f"> 0 and power_w >= 0")
        if not 0 < self.utilisation <= 1:
            raise ValueError(f"compute profile {self.name!r}: utilisation must be in (0, 1], "
                             f"got {self.utilisation}")

    @property
    def effective_flops(self) -> float:
        """Sustained FLOP/s: peak times utilisation."""
        return self.peak_flops * self.utilisation

    def seconds(self, flops: float) -> float:
        """Wall-clock seconds to execute ``flops`` FLOPs."""
        if flops < 0:
            raise ValueError(f"flops must be >= 0, got {flops}")
        return float(flops) / self.effective_flops

    def energy_j(self, flops: float) -> float:
        """Joules drawn while executing ``flops`` FLOPs."""
        return self.power_w * self.seconds(flops)

    def to_dict(self) -> dict:
        """JSON-able record for ledgers and figure captions."""
        return asdict(self)


_PROFILES: dict[str, ComputeProfile] = {}


def register_compute_profile(profile: ComputeProfile) -> ComputeProfile:
    """Make ``profile`` selectable by name; names are unique."""
    if profile.name in _PROFILES:
        raise ValueError(f"compute profile {profile.name!r} is already registered")
    _PROFILES[profile.name] = profile
    return profile


def list_compute_profiles() -> list[str]:
    """Names of every registered compute profile, sorted."""
    return sorted(_PROFILES)


def compute_profile(profile: str | ComputeProfile) -> ComputeProfile:
    """Look up a profile by name (a :class:`ComputeProfile` passes through)."""
    if isinstance(profile, ComputeProfile):
        return profile
    if profile not in _PROFILES:
        raise ValueError(f"unknown compute profile {profile!r}; expected one of "
                         f"{list_compute_profiles()}")
    return _PROFILES[profile]


_GIB = 1024**3

JETSON_NANO = register_compute_profile(ComputeProfile(
    name="jetson_nano",
    peak_flops=472e9,
    utilisation=0.3,
    power_w=10.0,
    memory_bytes=2 * _GIB,
    energy_profile="jetson_nano",
    source=("NVIDIA Jetson Nano module data sheet (DA-09366-001): 472 GFLOPS FP16 in the 10 W "
            "mode, 4 GB shared LPDDR4 of which 2 GiB are budgeted for model parts (the rest for "
            "the OS and payload software). Utilisation 0.3: small-batch ViT inference on embedded "
            "GPUs sustains roughly a third of peak (memory-bound attention and layer norms)."),
))
"""A small on-board accelerator (the satellite's default)."""

JETSON_ORIN_NX = register_compute_profile(ComputeProfile(
    name="jetson_orin_nx",
    peak_flops=3.76e12,
    utilisation=0.3,
    power_w=20.0,
    memory_bytes=8 * _GIB,
    energy_profile="jetson_nano",
    source=("NVIDIA Jetson Orin NX 16GB data sheet: 1024-core Ampere GPU at 918 MHz, 3.76 TFLOPS "
            "FP16 (dense), 10-25 W modes (20 W used), 16 GB of which 8 GiB budgeted for model "
            "parts. Per-op spiking energy borrowed from the Jetson Nano entry (same dense GPU "
            "execution model). Utilisation as for the Nano."),
))
"""A larger on-board accelerator for on-board-everything baselines."""

A100 = register_compute_profile(ComputeProfile(
    name="a100",
    peak_flops=312e12,
    utilisation=0.4,
    power_w=400.0,
    memory_bytes=80 * _GIB,
    energy_profile="a100",
    source=("NVIDIA A100 Tensor Core GPU data sheet (SXM4 80GB): 312 TFLOPS FP16/BF16 tensor "
            "(dense), 400 W TDP, 80 GB HBM2e. Utilisation 0.4: typical model-FLOPs utilisation of "
            "ViT training and batched inference on A100."),
))
"""The ground station's GPU server (the ground's default)."""

"""The one registry of device profiles: what time and energy computing costs on each device.

A :class:`DeviceProfile` carries both views of a device:

- a throughput model, used by federated fine-tuning, serving and evaluation to turn counted
  FLOPs into simulated time and energy: time is ``flops / (peak_flops * utilisation)``, energy
  is ``power_w * time``. Peak figures come from data sheets; ``utilisation`` is the fraction of
  peak a ViT layer reaches in practice, stated with its reason in ``source``;
- per-operation energy, used by the spiking energy ledger (:mod:`snn.energy`): a
  multiply-accumulate on real values (ANN layers, attention, the first layer of a directly
  encoded SNN), a synaptic operation (one spike reaching one synapse: an accumulate only) and a
  neuron update (one LIF state step). ``event_driven`` says whether the hardware skips silent
  synapses: if not, a spiking layer costs what the dense layer costs at every timestep.

On a dense device (a GPU) the two views are one: the energy of a MAC is the energy per op at
sustained throughput, ``mac_j = 2 * power_w / effective_flops`` (a MAC is 2 FLOPs), so pricing
N MACs per op or 2N FLOPs through ``energy_j`` gives the same joules. :meth:`DeviceProfile.dense`
builds such a profile and the constructor rejects a dense profile that breaks it.
Idealised or neuromorphic logic (``cmos45nm``, ``loihi``) has no throughput model
(``peak_flops=None``): it is priced per op only, and :meth:`DeviceProfile.seconds` refuses it.

Per-op figures are compute only (no DRAM traffic, no idle/static power beyond what ``power_w``
includes). This package depends on nothing else in the repository, so ``snn``, ``encoders`` and
``research`` can all import it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

__all__ = ["DeviceProfile", "get_device", "list_devices", "register_device", "what_if"]


@dataclass(frozen=True)
class DeviceProfile:
    """Throughput, power, memory and per-operation energy of one device.

    Attributes:
        name: Registry key; every time or energy result carries it.
        peak_flops: Peak FLOP/s of the precision the model runs in; ``None`` for a per-op-only
            profile (no throughput model).
        utilisation: Fraction of peak reached on transformer layers (0 < u <= 1); ``None`` iff
            ``peak_flops`` is.
        power_w: Power drawn while computing (W); ``None`` iff ``peak_flops`` is.
        memory_bytes: Memory available to model parts (weights + activations); ``None`` only
            for a per-op-only profile.
        mac_j: Joules per real-valued multiply-accumulate. On a dense device, the energy per op
            at sustained throughput: ``2 * power_w / effective_flops``.
        synop_j: Joules per synaptic operation (spike x fan-out), when ``event_driven``.
        neuron_update_j: Joules per neuron state update.
        event_driven: Whether silent synapses are skipped (False: spiking layers are charged as
            dense MACs at every timestep).
        source: Where the numbers come from.
    """

    name: str
    peak_flops: float | None
    utilisation: float | None
    power_w: float | None
    memory_bytes: float | None
    mac_j: float
    synop_j: float
    neuron_update_j: float
    event_driven: bool
    source: str

    def __post_init__(self) -> None:
        where = f"device profile {self.name!r}"
        if self.peak_flops is None:
            if self.utilisation is not None or self.power_w is not None:
                raise ValueError(f"{where}: peak_flops=None (priced per op only) needs "
                                 f"utilisation=None and power_w=None")
            if not self.event_driven:
                raise ValueError(f"{where}: a dense (not event-driven) device needs a "
                                 f"throughput model (peak_flops, utilisation, power_w)")
        else:
            if (self.utilisation is None or self.power_w is None or self.memory_bytes is None):
                raise ValueError(f"{where}: peak_flops needs utilisation, power_w and "
                                 f"memory_bytes")
            if self.peak_flops <= 0 or self.power_w < 0 or self.memory_bytes <= 0:
                raise ValueError(f"{where}: peak_flops and memory_bytes must be > 0 and "
                                 f"power_w >= 0")
            if not 0 < self.utilisation <= 1:
                raise ValueError(f"{where}: utilisation must be in (0, 1], got "
                                 f"{self.utilisation}")
        if self.memory_bytes is not None and self.memory_bytes <= 0:
            raise ValueError(f"{where}: memory_bytes must be > 0")
        if min(self.mac_j, self.synop_j, self.neuron_update_j) < 0:
            raise ValueError(f"{where}: mac_j, synop_j and neuron_update_j must be >= 0")
        if not self.event_driven:
            per_mac = self.dense_mac_j(self.peak_flops, self.utilisation, self.power_w)
            if not math.isclose(self.mac_j, per_mac, rel_tol=1e-9):
                raise ValueError(f"{where}: a dense device's mac_j must be the energy per op at "
                                 f"sustained throughput, 2 * power_w / effective_flops = "
                                 f"{per_mac:.4g} J, got {self.mac_j:.4g} J")

    @staticmethod
    def dense_mac_j(peak_flops: float, utilisation: float, power_w: float) -> float:
        """Joules per MAC (2 FLOPs) at sustained throughput: ``2 * power_w / effective_flops``."""
        return 2.0 * power_w / (peak_flops * utilisation)

    @classmethod
    def dense(cls, name: str, peak_flops: float, utilisation: float, power_w: float,
              memory_bytes: float, source: str) -> DeviceProfile:
        """A dense device (GPU): every op priced at sustained throughput.

        ``mac_j = synop_j = neuron_update_j = 2 * power_w / effective_flops``: spiking layers
        run as dense MACs at every timestep, and a LIF update is one fused multiply-add.
        """
        per_op = cls.dense_mac_j(peak_flops, utilisation, power_w)
        return cls(name=name, peak_flops=peak_flops, utilisation=utilisation, power_w=power_w,
                   memory_bytes=memory_bytes, mac_j=per_op, synop_j=per_op,
                   neuron_update_j=per_op, event_driven=False, source=source)

    @property
    def has_throughput(self) -> bool:
        """Whether the profile has a throughput model (else it is priced per op only)."""
        return self.peak_flops is not None

    def require_throughput(self) -> DeviceProfile:
        """This profile, after checking it has a throughput model (for pricing time and FLOPs).

        Raises:
            ValueError: For a per-op-only profile, naming the profiles that have one.
        """
        if not self.has_throughput:
            timed = [n for n in list_devices() if _DEVICES[n].has_throughput]
            raise ValueError(f"device profile {self.name!r} has no throughput model (priced per "
                             f"op only: mac_j, synop_j, neuron_update_j); time, FLOP energy and "
                             f"memory need one of {timed}")
        return self

    @property
    def effective_flops(self) -> float:
        """Sustained FLOP/s: peak times utilisation."""
        self.require_throughput()
        return self.peak_flops * self.utilisation

    def seconds(self, flops: float) -> float:
        """Wall-clock seconds to execute ``flops`` FLOPs."""
        if flops < 0:
            raise ValueError(f"flops must be >= 0, got {flops}")
        return float(flops) / self.effective_flops

    def energy_j(self, flops: float) -> float:
        """Joules drawn while executing ``flops`` FLOPs (``power_w * seconds(flops)``)."""
        return self.power_w * self.seconds(flops)

    def to_dict(self) -> dict:
        """JSON-able record for ledgers and figure captions."""
        return asdict(self)


_DEVICES: dict[str, DeviceProfile] = {}


def register_device(profile: DeviceProfile) -> DeviceProfile:
    """Make ``profile`` selectable by name; names are unique."""
    if profile.name in _DEVICES:
        raise ValueError(f"device profile {profile.name!r} is already registered")
    _DEVICES[profile.name] = profile
    return profile


def list_devices() -> list[str]:
    """Names of every registered device profile, sorted."""
    return sorted(_DEVICES)


def get_device(profile: str | DeviceProfile) -> DeviceProfile:
    """Look up a profile by name (a :class:`DeviceProfile` passes through)."""
    if isinstance(profile, DeviceProfile):
        return profile
    if profile not in _DEVICES:
        raise ValueError(f"unknown device profile {profile!r}; expected one of {list_devices()}")
    return _DEVICES[profile]


def what_if(base: str | DeviceProfile, factor: float) -> str:
    """The name of a registered profile with ``base``'s throughput times ``factor`` (power and
    memory kept, so a FLOP costs ``1 / factor`` of the energy): an on-board compute what-if,
    ``<base>_x<factor>``, registered on first use. ``factor`` 1 is ``base`` itself (registered
    if it was not). A registered profile of that name with other numbers is an error."""
    if isinstance(factor, bool) or not (isinstance(factor, numbers.Real)
                                        and math.isfinite(factor) and factor > 0):
        raise ValueError(f"a what-if device needs a finite throughput factor > 0, got {factor!r}")
    b = get_device(base).require_throughput()
    if b.name not in _DEVICES:
        register_device(b)
    if factor == 1:
        return b.name
    name = f"{b.name}_x{float(factor)!r}".removesuffix(".0")
    scaled = DeviceProfile.dense(
        name, b.peak_flops * float(factor), b.utilisation, b.power_w, b.memory_bytes,
        f"what-if: {b.name} with {float(factor):g}x its throughput, same power and memory "
        f"({b.source})")
    if name not in _DEVICES:
        return register_device(scaled).name
    if _DEVICES[name] != scaled:
        raise ValueError(f"device profile {name!r} is registered with other numbers than "
                         f"{b.name!r} times {factor!r}")
    return name


_GIB = 1024**3


def _per_op(name: str, *, mac_j: float, synop_j: float, neuron_update_j: float,
            source: str) -> DeviceProfile:
    """Register an event-driven profile priced per operation only: no throughput, power or
    memory model (spiking energy tables, not a computer a workload runs on)."""
    return register_device(DeviceProfile(
        name=name, peak_flops=None, utilisation=None, power_w=None, memory_bytes=None,
        mac_j=mac_j, synop_j=synop_j, neuron_update_j=neuron_update_j, event_driven=True,
        source=source))


CMOS45NM = _per_op(
    "cmos45nm", mac_j=4.6e-12, synop_j=0.9e-12, neuron_update_j=4.6e-12,
    source=("M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014: "
            "45 nm, 0.9 V, 32-bit float multiply 3.7 pJ + add 0.9 pJ = MAC 4.6 pJ; a spike-driven "
            "synaptic op is an add (AC) 0.9 pJ. A LIF update (beta*U + I) is priced as one MAC; "
            "threshold compare and reset are ignored. Idealised logic: priced per op only (no "
            "throughput model)."),
)
"""Idealised event-driven digital logic at 45 nm (the constants most SNN papers use)."""

LOIHI = _per_op(
    "loihi", mac_j=4.6e-12, synop_j=23.6e-12, neuron_update_j=81e-12,
    source=("M. Davies et al., 'Loihi: a neuromorphic manycore processor with on-chip learning', "
            "IEEE Micro 38(1), 2018, Table 1 (14 nm): 23.6 pJ per synaptic spike operation, "
            "81 pJ per active neuron update. Loihi has no MAC units; real-valued MACs (ANN "
            "layers, attention) are charged at Horowitz's 45 nm 4.6 pJ, as if on a co-located "
            "conventional core. Priced per op only (no FLOP/s throughput model)."),
)
"""Intel Loihi (first generation), measured on silicon."""

JETSON_NANO = register_device(DeviceProfile.dense(
    name="jetson_nano",
    peak_flops=472e9,
    utilisation=0.3,
    power_w=10.0,
    memory_bytes=2 * _GIB,
    source=("NVIDIA Jetson Nano module data sheet (DA-09366-001): 472 GFLOPS FP16 in the 10 W "
            "mode, 4 GB shared LPDDR4 of which 2 GiB are budgeted for model parts (the rest for "
            "the OS and payload software). Utilisation 0.3: small-batch ViT inference on embedded "
            "GPUs sustains roughly a third of peak (memory-bound attention and layer norms). "
            "Per op at sustained throughput: 10 W / 141.6 GFLOP/s = 70.6 pJ/FLOP, 141 pJ per MAC "
            "(2 FLOPs). A GPU executes spiking layers densely: every synapse costs a MAC at every "
            "step; a LIF update is one fused multiply-add."),
))
"""A small on-board accelerator (the satellite's default)."""

JETSON_ORIN_NX = register_device(DeviceProfile.dense(
    name="jetson_orin_nx",
    peak_flops=3.76e12,
    utilisation=0.3,
    power_w=20.0,
    memory_bytes=8 * _GIB,
    source=("NVIDIA Jetson Orin NX 16GB data sheet: 1024-core Ampere GPU at 918 MHz, 3.76 TFLOPS "
            "FP16 (dense), 10-25 W modes (20 W used), 16 GB of which 8 GiB budgeted for model "
            "parts. Utilisation as for the Nano. Per op at sustained throughput: 20 W / "
            "1.128 TFLOP/s = 17.7 pJ/FLOP, 35.5 pJ per MAC; spiking layers run densely."),
))
"""A larger on-board accelerator for on-board-everything baselines."""

A100 = register_device(DeviceProfile.dense(
    name="a100",
    peak_flops=312e12,
    utilisation=0.4,
    power_w=400.0,
    memory_bytes=80 * _GIB,
    source=("NVIDIA A100 Tensor Core GPU data sheet (SXM4 80GB): 312 TFLOPS FP16/BF16 tensor "
            "(dense), 400 W TDP, 80 GB HBM2e. Utilisation 0.4: typical model-FLOPs utilisation of "
            "ViT training and batched inference on A100. Per op at sustained throughput: 400 W / "
            "124.8 TFLOP/s = 3.21 pJ/FLOP, 6.41 pJ per MAC; spiking layers run densely."),
))
"""The ground station's GPU server (the ground's default)."""

"""Named device profiles: what one operation costs on the hardware an inference runs on.

Three kinds of operation are priced: a multiply-accumulate on real values (ANN layers,
attention, the first layer of a directly encoded SNN), a synaptic operation (one spike reaching
one synapse: an accumulate only) and a neuron update (one LIF state step). ``event_driven``
says whether the hardware skips silent synapses: if not, a spiking layer costs what the dense
layer costs at every timestep, so spikes buy nothing unless sparsity is exploited.

All figures are energy per operation, compute only (no DRAM traffic, no idle/static power); the
J/FLOP figures of conventional accelerators are peak-throughput ratios, hence lower bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeviceProfile", "get_profile", "list_profiles", "register_profile"]


@dataclass(frozen=True)
class DeviceProfile:
    """Energy per operation on one device.

    Attributes:
        name: Registry key; every energy result carries it.
        mac_j: Joules per real-valued multiply-accumulate.
        synop_j: Joules per synaptic operation (spike x fan-out), when ``event_driven``.
        neuron_update_j: Joules per neuron state update.
        event_driven: Whether silent synapses are skipped (False: spiking layers are charged as
            dense MACs at every timestep).
        source: Where the numbers come from.
    """

    name: str
    mac_j: float
    synop_j: float
    neuron_update_j: float
    event_driven: bool
    source: str


_PROFILES: dict[str, DeviceProfile] = {}


def register_profile(profile: DeviceProfile) -> DeviceProfile:
    """Make ``profile`` selectable by its name; names are unique."""
    if profile.name in _PROFILES:
        raise ValueError(f"device profile {profile.name!r} is already registered")
    _PROFILES[profile.name] = profile
    return profile


def list_profiles() -> list[str]:
    """Names of every registered device profile, sorted."""
    return sorted(_PROFILES)


def get_profile(profile: str | DeviceProfile) -> DeviceProfile:
    """Look up a profile by name (a :class:`DeviceProfile` passes through)."""
    if isinstance(profile, DeviceProfile):
        return profile
    if profile not in _PROFILES:
        raise ValueError(f"unknown device profile {profile!r}; expected one of {list_profiles()}")
    return _PROFILES[profile]


CMOS45NM = register_profile(
    DeviceProfile(
        name="cmos45nm",
        mac_j=4.6e-12,
        synop_j=0.9e-12,
        neuron_update_j=4.6e-12,
        event_driven=True,
        source=(
            "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014: "
            "45 nm, 0.9 V, 32-bit float multiply 3.7 pJ + add 0.9 pJ = MAC 4.6 pJ; a spike-driven "
            "synaptic op is an add (AC) 0.9 pJ. A LIF update (beta*U + I) is priced as one MAC; "
            "threshold compare and reset are ignored."
        ),
    )
)
"""Idealised event-driven digital logic at 45 nm (the constants most SNN papers use)."""

LOIHI = register_profile(
    DeviceProfile(
        name="loihi",
        mac_j=4.6e-12,
        synop_j=23.6e-12,
        neuron_update_j=81e-12,
        event_driven=True,
        source=(
            "M. Davies et al., 'Loihi: a neuromorphic manycore processor with on-chip learning', "
            "IEEE Micro 38(1), 2018, Table 1 (14 nm): 23.6 pJ per synaptic spike operation, "
            "81 pJ per active neuron update. Loihi has no MAC units; real-valued MACs (ANN "
            "layers, attention) are charged at Horowitz's 45 nm 4.6 pJ, as if on a co-located "
            "conventional core."
        ),
    )
)
"""Intel Loihi (first generation), measured on silicon."""

JETSON_NANO = register_profile(
    DeviceProfile(
        name="jetson_nano",
        mac_j=2 * 10.0 / 472e9,
        synop_j=2 * 10.0 / 472e9,
        neuron_update_j=2 * 10.0 / 472e9,
        event_driven=False,
        source=(
            "NVIDIA Jetson Nano module data sheet (DA-09366-001): 472 GFLOPS (FP16) in the "
            "10 W mode, i.e. 21.2 pJ/FLOP and 42.4 pJ per MAC (2 FLOPs) at peak throughput. A GPU "
            "executes spiking layers densely: every synapse costs a MAC at every step; a LIF "
            "update is one fused multiply-add."
        ),
    )
)
"""A conventional on-board accelerator (Jetson-class)."""

A100 = register_profile(
    DeviceProfile(
        name="a100",
        mac_j=2 * 400.0 / 19.5e12,
        synop_j=2 * 400.0 / 19.5e12,
        neuron_update_j=2 * 400.0 / 19.5e12,
        event_driven=False,
        source=(
            "NVIDIA A100 Tensor Core GPU data sheet (SXM4): 19.5 TFLOPS FP32 (non-tensor) at "
            "400 W TDP, i.e. 20.5 pJ/FLOP and 41 pJ per MAC at peak; dense like any GPU."
        ),
    )
)
"""A ground-station GPU, for the ground side of a split."""

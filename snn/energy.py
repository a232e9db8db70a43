"""The energy ledger: operations counted on real inputs, priced by a named device profile.

Counting is measured, never guessed: forward hooks see every call of every ``Linear``,
``Conv2d``, timm-style attention and snnTorch neuron while the model runs on the caller's
inputs. A synaptic layer whose input is binary (spikes) gets synaptic operations = spikes x
fan-out (exactly, per call, so per timestep when called once per step); otherwise it gets
dense MACs. Attention gets the two matmuls ``QK^T`` and ``AV`` (its projections are Linears).
Neurons get one update per neuron per call and their spikes are counted for firing rates.
Biases, norms, activations and softmax are not counted (small next to the matmuls).

The counts are device-free (:class:`OpCounts`); :meth:`OpCounts.energy` prices them with a
:class:`devices.DeviceProfile` and returns an :class:`EnergyReport` that always names it.
On a non-event-driven profile the spiking layers are charged their dense MACs at every call.

Spikes may be binary or ternary ({-1, 0, 1}: an add or a subtract per synapse).
Products of two tensors are counted when they run through :class:`Matmul` (the matmuls of
spiking attention): dense MACs for real operands; for a spike operand, one synaptic operation
per nonzero product (both spikes) or per spike times the other operand's fan-out.
A real-valued input that happens to hold only -1s, 0s and 1s is counted as spikes. Not counted:
memory traffic, static power, input encoding (random numbers for rate codes).
snnTorch 1.0.0 ships no op or energy estimator (an unreleased ``snntorch.energy_estimation``
exists in its GitHub tree); the hand-counted network in ``tests/snn/test_energy.py`` and
PyTorch's ``FlopCounterMode`` (:func:`flop_counter_macs`) are the references instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from devices import DeviceProfile, get_device, list_devices
from snn.neurons import is_spiking_neuron

__all__ = [
    "EnergyReport",
    "LayerEnergy",
    "LayerOps",
    "Matmul",
    "OpCounts",
    "count_ops",
    "estimate_energy",
    "flop_counter_macs",
]


@dataclass
class LayerOps:
    """Operations of one module over a whole measured batch (all calls summed).

    Attributes:
        name: Qualified module name in the measured model.
        kind: ``linear``, ``conv2d``, ``matmul``, ``attention`` or ``neuron``.
        calls: Number of forward calls (timesteps, for layers called once per step).
        macs: MACs of calls with real-valued inputs.
        synops: Synaptic operations (spike x fan-out) of calls with binary inputs.
        spiking_macs: MACs the same binary-input calls cost on dense hardware.
        neuron_updates: Neuron state updates (neurons x calls).
        spikes: Spikes emitted (neurons only).
        step_synops: ``synops`` of each call, in order.
        step_spikes: ``spikes`` of each call, in order.
    """

    name: str
    kind: str
    calls: int = 0
    macs: int = 0
    synops: int = 0
    spiking_macs: int = 0
    neuron_updates: int = 0
    spikes: int = 0
    step_synops: list[int] = field(default_factory=list)
    step_spikes: list[int] = field(default_factory=list)

    @property
    def firing_rate(self) -> float | None:
        """Spikes per neuron per step (None for non-neuron layers)."""
        if self.kind != "neuron" or self.neuron_updates == 0:
            return None
        return self.spikes / self.neuron_updates


@dataclass
class LayerEnergy:
    """One layer's operations and energy per inference under one profile."""

    name: str
    kind: str
    macs: float
    synops: float
    spiking_macs: float
    neuron_updates: float
    spikes: float
    firing_rate: float | None
    energy_j: float


@dataclass
class EnergyReport:
    """Energy per inference of a measured model under a named device profile.

    Attributes:
        profile: The profile's name (always set).
        event_driven: Whether the profile skipped silent synapses.
        batch_size: Inferences in the measured batch (totals are divided by it).
        layers: Per-layer breakdown, per inference.
        macs: Real-valued MACs per inference (ANN layers, attention, direct-encoded inputs).
        synops: Synaptic operations per inference.
        spiking_macs: Dense MACs of the spiking layers per inference (what a GPU does).
        neuron_updates: Neuron updates per inference.
        compute_j: Dict of the energy split: ``mac``, ``synop``, ``neuron`` (J per inference).
        energy_j: Total joules per inference.
        source: The profile's citation.
    """

    profile: str
    event_driven: bool
    batch_size: int
    layers: list[LayerEnergy]
    macs: float
    synops: float
    spiking_macs: float
    neuron_updates: float
    compute_j: dict[str, float]
    energy_j: float
    source: str

    def to_dict(self) -> dict[str, object]:
        """Plain-data form for JSON ledgers (layers included)."""
        return asdict(self)

    def to_row(self) -> dict[str, object]:
        """One flat row for CSV ledgers: the totals per inference, without the layers."""
        row = {k: v for k, v in asdict(self).items() if k not in ("layers", "compute_j")}
        row.update({f"{k}_energy_j": v for k, v in self.compute_j.items()})
        return row

    def summary(self) -> str:
        """A fixed-width table, one row per layer, and the total."""
        rows = [
            f"profile {self.profile} (event_driven={self.event_driven}), per inference, "
            f"batch {self.batch_size}",
            f"{'layer':<32} {'kind':<9} {'MACs':>12} {'SynOps':>12} {'rate':>6} {'energy J':>11}",
        ]
        for lay in self.layers:
            rate = "" if lay.firing_rate is None else f"{lay.firing_rate:.3f}"
            rows.append(
                f"{lay.name:<32.32} {lay.kind:<9} {lay.macs + lay.spiking_macs:>12.4g} "
                f"{lay.synops:>12.4g} {rate:>6} {lay.energy_j:>11.4g}"
            )
        rows.append(f"{'total':<32} {'':<9} {'':>12} {'':>12} {'':>6} {self.energy_j:>11.4g}")
        return "\n".join(rows)


@dataclass
class OpCounts:
    """Device-free operation counts of one measured forward pass.

    Attributes:
        batch_size: Inferences in the measured batch.
        layers: One :class:`LayerOps` per module that was called, in call order.
    """

    batch_size: int
    layers: list[LayerOps]

    @classmethod
    def merge(cls, parts: list[OpCounts]) -> OpCounts:
        """The counts of several measured batches as one (layers matched by name, summed)."""
        if not parts:
            raise ValueError("merge needs at least one OpCounts")
        layers: dict[str, LayerOps] = {}
        for part in parts:
            for lay in part.layers:
                acc = layers.setdefault(lay.name, LayerOps(name=lay.name, kind=lay.kind))
                for key in ("calls", "macs", "synops", "spiking_macs", "neuron_updates", "spikes"):
                    setattr(acc, key, getattr(acc, key) + getattr(lay, key))
        return cls(batch_size=sum(p.batch_size for p in parts), layers=list(layers.values()))

    def layer(self, name: str) -> LayerOps:
        """The counts of the module called ``name``."""
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(f"no measured layer {name!r}; have {[lay.name for lay in self.layers]}")

    def energy(self, profile: str | DeviceProfile = "cmos45nm") -> EnergyReport:
        """Price the counts with a device profile (a name or a :class:`DeviceProfile`)."""
        prof = get_device(profile)
        per = 1.0 / self.batch_size
        layers, split = [], {"mac": 0.0, "synop": 0.0, "neuron": 0.0}
        for lay in self.layers:
            mac_ops = lay.macs + (0 if prof.event_driven else lay.spiking_macs)
            syn_ops = lay.synops if prof.event_driven else 0
            e_mac = mac_ops * prof.mac_j * per
            e_syn = syn_ops * prof.synop_j * per
            e_neu = lay.neuron_updates * prof.neuron_update_j * per
            split["mac"] += e_mac
            split["synop"] += e_syn
            split["neuron"] += e_neu
            layers.append(
                LayerEnergy(
                    name=lay.name,
                    kind=lay.kind,
                    macs=lay.macs * per,
                    synops=lay.synops * per,
                    spiking_macs=lay.spiking_macs * per,
                    neuron_updates=lay.neuron_updates * per,
                    spikes=lay.spikes * per,
                    firing_rate=lay.firing_rate,
                    energy_j=e_mac + e_syn + e_neu,
                )
            )
        return EnergyReport(
            profile=prof.name,
            event_driven=prof.event_driven,
            batch_size=self.batch_size,
            layers=layers,
            macs=sum(lay.macs for lay in self.layers) * per,
            synops=sum(lay.synops for lay in self.layers) * per,
            spiking_macs=sum(lay.spiking_macs for lay in self.layers) * per,
            neuron_updates=sum(lay.neuron_updates for lay in self.layers) * per,
            compute_j=split,
            energy_j=sum(split.values()),
            source=prof.source,
        )

    def energy_by_profile(self) -> dict[str, EnergyReport]:
        """:meth:`energy` under every registered device profile, keyed by name."""
        return {name: self.energy(name) for name in list_devices()}


class Matmul(nn.Module):
    """``a @ b`` as a module, so :func:`count_ops` sees the operands of an activation product."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


def _is_binary(x: torch.Tensor) -> bool:
    """Spike-valued: binary or ternary ({-1, 0, 1})."""
    if x.dtype == torch.bool:
        return True
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def _is_attention(module: nn.Module) -> bool:
    """timm-style attention whose two products are not already counted through :class:`Matmul`."""
    return (all(hasattr(module, a) for a in ("qkv", "num_heads", "head_dim"))
            and not any(isinstance(m, Matmul) for m in module.children()))


def _account(rec: LayerOps, dense_macs: int, synops: int | None) -> None:
    """Book one call: dense MACs for real-valued input, synaptic ops for a spike input."""
    rec.calls += 1
    if synops is None:
        rec.macs += dense_macs
    else:
        rec.synops += synops
        rec.spiking_macs += dense_macs
        rec.step_synops.append(synops)


def _linear_hook(rec: LayerOps):
    def hook(module: nn.Linear, args: tuple, output: torch.Tensor) -> None:
        x = args[0]
        rows = x.numel() // module.in_features
        dense = rows * module.in_features * module.out_features
        syn = int(torch.count_nonzero(x)) * module.out_features if _is_binary(x) else None
        _account(rec, dense, syn)

    return hook


def _conv_hook(rec: LayerOps):
    def hook(module: nn.Conv2d, args: tuple, output: torch.Tensor) -> None:
        x = args[0]
        kh, kw = module.kernel_size
        dense = output.numel() * (module.in_channels // module.groups) * kh * kw
        syn = None
        if _is_binary(x):
            if module.padding_mode == "zeros" and isinstance(module.padding, tuple):
                ones = torch.ones_like(module.weight)
                syn = int(
                    F.conv2d(
                        (x != 0).to(ones.dtype),
                        ones,
                        None,
                        module.stride,
                        module.padding,
                        module.dilation,
                        module.groups,
                    )
                    .sum()
                    .round()
                )
            else:  # approximate fan-out away from the borders
                fan_out = module.out_channels // module.groups * kh * kw
                stride = module.stride[0] * module.stride[1]
                syn = int(torch.count_nonzero(x)) * fan_out // stride
        _account(rec, dense, syn)

    return hook


def _attention_hook(rec: LayerOps):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        x = args[0]  # [B, N, C]
        batch, tokens = x.shape[0], x.shape[1]
        rec.calls += 1
        rec.macs += 2 * batch * module.num_heads * tokens * tokens * module.head_dim

    return hook


def _matmul_hook(rec: LayerOps):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        a, b = args[0], args[1]
        rows, inner, cols = a.shape[-2], a.shape[-1], b.shape[-1]
        dense = (a.numel() // (rows * inner)) * rows * inner * cols
        spike_a, spike_b = _is_binary(a), _is_binary(b)
        if spike_a and spike_b:  # additions only where both operands are nonzero
            syn = int(((a != 0).to(torch.float64) @ (b != 0).to(torch.float64)).sum().item())
        elif spike_a:
            syn = int(torch.count_nonzero(a)) * cols
        elif spike_b:
            syn = int(torch.count_nonzero(b)) * rows
        else:
            syn = None
        _account(rec, dense, syn)

    return hook


def _neuron_hook(rec: LayerOps):
    def hook(module: nn.Module, args: tuple, output: object) -> None:
        spk = output[0] if isinstance(output, tuple) else output
        n = int(torch.count_nonzero(spk))
        rec.calls += 1
        rec.neuron_updates += spk.numel()
        rec.spikes += n
        rec.step_spikes.append(n)

    return hook


def count_ops(
    model: nn.Module,
    *inputs: object,
    batch_size: int | None = None,
    **kwargs: object,
) -> OpCounts:
    """Run ``model(*inputs, **kwargs)`` once in eval mode and count its operations.

    Args:
        model: Any module; its Linear, Conv2d, attention and snnTorch neuron submodules are
            counted wherever they sit.
        *inputs: The real inputs (counts depend on them through the spikes).
        batch_size: Inferences in the batch; default: size of the first tensor's first dim
            (pass it for time-first inputs).
        **kwargs: Keyword inputs of the model.

    Returns:
        The :class:`OpCounts`; price them with :meth:`OpCounts.energy`.
    """
    if batch_size is None:
        first = next((x for x in inputs if isinstance(x, torch.Tensor)), None)
        if first is None or first.dim() == 0:
            raise ValueError("pass batch_size: no batched tensor among the inputs")
        batch_size = first.shape[0]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    records: list[LayerOps] = []
    order: dict[int, LayerOps] = {}
    handles = []

    def register(name: str, module: nn.Module, kind: str, make) -> None:
        rec = LayerOps(name=name or type(module).__name__, kind=kind)
        hook = make(rec)

        def first_call(mod, args, out, rec=rec, hook=hook):
            if id(rec) not in order:
                order[id(rec)] = rec
                records.append(rec)
            hook(mod, args, out)

        handles.append(module.register_forward_hook(first_call))

    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            register(name, module, "linear", _linear_hook)
        elif isinstance(module, nn.Conv2d):
            register(name, module, "conv2d", _conv_hook)
        elif isinstance(module, Matmul):
            register(name, module, "matmul", _matmul_hook)
        elif _is_attention(module):
            register(name, module, "attention", _attention_hook)
        elif is_spiking_neuron(module):
            register(name, module, "neuron", _neuron_hook)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return OpCounts(batch_size=int(batch_size), layers=records)


def estimate_energy(
    model: nn.Module,
    *inputs: object,
    profile: str | DeviceProfile = "cmos45nm",
    batch_size: int | None = None,
    **kwargs: object,
) -> EnergyReport:
    """:func:`count_ops` then :meth:`OpCounts.energy`: joules per inference under ``profile``."""
    return count_ops(model, *inputs, batch_size=batch_size, **kwargs).energy(profile)


def flop_counter_macs(model: nn.Module, *inputs: object, **kwargs: object) -> int:
    """MACs of one forward pass as PyTorch's ``FlopCounterMode`` counts them (FLOPs / 2).

    An independent check of :func:`count_ops` for ANN parts: it counts matmuls and
    convolutions at the dispatcher level, with no knowledge of modules or spikes. Caveat
    (torch 2.14): it has no formula for the fused CPU attention kernel
    (``_scaled_dot_product_flash_attention_for_cpu``) and counts it as zero; set timm's
    ``attn.fused_attn = False`` for a complete count on CPU.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs, **kwargs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2

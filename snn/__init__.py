"""Spiking modules on snnTorch and the op/energy ledger; never imports ``research``.

Public API: surrogate gradients and input encodings by name, a spiking head for pooled ViT
features, a spiking drop-in for transformer MLPs, ANN-to-SNN conversion of a head, a spiking
link module (registered as ``"spike"`` in :mod:`encoders.registry` when ``snn`` is imported) and an energy ledger priced
by the named device profiles of :mod:`devices` (import ``get_device`` and friends from there).
"""

from snn.convert import convert_head, robust_max
from snn.encoding import Encoding, encode, get_encoding, list_encodings, register_encoding
from snn.energy import (
    EnergyReport,
    LayerEnergy,
    LayerOps,
    OpCounts,
    count_ops,
    estimate_energy,
    flop_counter_macs,
)
from snn.head import READOUTS, HeadRecord, SpikingHead
from snn.link import SPIKE_CODEC_ID, SpikeLink, pack_spikes, unpack_spikes
from snn.mlp import SpikingMlp, swap_mlps
from snn.neurons import initial_mem, is_spiking_neuron, make_lif, recording_rates, release_state
from snn.surrogates import build_surrogate, list_surrogates, register_surrogate

__all__ = [
    "READOUTS",
    "SPIKE_CODEC_ID",
    "Encoding",
    "EnergyReport",
    "HeadRecord",
    "LayerEnergy",
    "LayerOps",
    "OpCounts",
    "SpikeLink",
    "SpikingHead",
    "SpikingMlp",
    "build_surrogate",
    "convert_head",
    "count_ops",
    "encode",
    "estimate_energy",
    "flop_counter_macs",
    "get_encoding",
    "initial_mem",
    "is_spiking_neuron",
    "list_encodings",
    "list_surrogates",
    "make_lif",
    "pack_spikes",
    "recording_rates",
    "register_encoding",
    "register_surrogate",
    "release_state",
    "robust_max",
    "swap_mlps",
    "unpack_spikes",
]

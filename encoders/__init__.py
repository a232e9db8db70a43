"""Task-oriented feature codecs for split points (CompressAI); never imports ``research``.

Every link module is selectable by name (``list_links()``, ``build_link(name, **kwargs)``,
``build_for_cut(name, dim, num_tokens)``): ``identity`` (float32), ``float16``, ``int8``, ``int4``
(baselines with zlib), ``factorized`` and ``hyperprior`` (learned token codecs), plus links that
other packages register when imported (``spike``: ``import snn``). See ``encoders.base`` for the
contract and ``encoders.registry`` for adding a codec.
"""

from encoders.base import IdentityLink, LinkModule
from encoders.baselines import Float16Link, Int4Link, Int8Link, UniformQuantLink
from encoders.header import CODEC_IDS, FORMAT_VERSION, HEADER_SIZE, Header
from encoders.rate import estimated_bits, payload_bits, rate_loss
from encoders.registry import (
    LinkSpec,
    build_for_cut,
    build_link,
    link_spec,
    list_links,
    register_link,
    unregister_link,
)
from encoders.tokens import TokenLayout
from encoders.training import reconstruction_step, split_parameters

# CompressAI-backed classes load on first access (the registry imports them on first use).
_LAZY = {
    "EntropyLink": "encoders.entropy",
    "FactorizedTokenCodec": "encoders.token_codecs",
    "HyperpriorTokenCodec": "encoders.token_codecs",
    "TokenCodec": "encoders.token_codecs",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'encoders' has no attribute {name!r}")


__all__ = [
    "CODEC_IDS",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "EntropyLink",
    "FactorizedTokenCodec",
    "Float16Link",
    "Header",
    "HyperpriorTokenCodec",
    "IdentityLink",
    "Int4Link",
    "Int8Link",
    "LinkModule",
    "LinkSpec",
    "TokenCodec",
    "TokenLayout",
    "UniformQuantLink",
    "build_for_cut",
    "build_link",
    "estimated_bits",
    "link_spec",
    "list_links",
    "payload_bits",
    "rate_loss",
    "reconstruction_step",
    "register_link",
    "split_parameters",
    "unregister_link",
]

"""The link-module registry: one decorator per class says everything the rest of satedge asks.

A link module (identity, baseline, learned codec, spiking encoder) is one class with one
decorator::

    @register_link("bfloat16", codec_id=4)
    class BFloat16Link(LinkModule): ...

The decorator gives its registry name (what YAML configs and ``build_link`` use), its stable wire
id (written in every payload header, see ``encoders.header``) and whether it must be trained
before it is useful (``learned``) or gives back exactly what it got (``lossless``). How it is
built for a cut lives on the class itself: ``LinkModule.cut_kwargs(dim, num_tokens, **options)``.
The header, ``CodecTask`` and the evaluation schemes all ask this registry, so adding a codec is
one new file (in ``encoders/``, found automatically) plus one test; the registry-wide tests in
``tests/encoders/test_link_registry.py`` then check it like every other entry.

Links defined outside ``encoders`` (the spiking link of ``snn.link``) register when their module
is imported; ``encoders`` never imports them (it sits below them). Building one whose module was
not imported raises a ``ValueError`` that names the module to import.

Wire ids are forever: 0-127 belong to links defined in ``encoders``, 128-255 to other packages;
never renumber or reuse one (payloads and checkpoints on disk name them).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from encoders.base import LinkModule

__all__ = [
    "KNOWN_PLUGINS",
    "LinkSpec",
    "build_for_cut",
    "build_link",
    "codec_ids",
    "codec_name",
    "constructor_params",
    "link_spec",
    "list_links",
    "register_link",
    "unregister_link",
]

CORE_PACKAGE = "encoders"
CORE_IDS = range(0, 128)
"""Wire ids of links defined in ``encoders``; links of other packages take one in 128..255."""

KNOWN_PLUGINS: dict[str, str] = {"spike": "snn.link"}
"""Links registered by packages above ``encoders``, with the module whose import registers them.

Never imported from here (that would hide an upward import): only named in the error raised when
such a link is asked for before its module was imported.
"""


@dataclass(frozen=True)
class LinkSpec:
    """One registry entry.

    Attributes:
        name: Registry name (``build_link(name)``, YAML ``codec:`` / ``link:`` values).
        codec_id: Stable wire id in every payload header.
        cls: The link module class.
        learned: True if it has weights that must be trained before use (a scheme without a
            trained checkpoint refuses it); False for training-free links.
        lossless: True if ``decompress(compress(x))`` is exactly ``x``.
    """

    name: str
    codec_id: int
    cls: type[LinkModule]
    learned: bool = False
    lossless: bool = False

    @property
    def module(self) -> str:
        """The module that defines (and registers) the link."""
        return self.cls.__module__

    @property
    def summary(self) -> str:
        """First line of the class docstring."""
        return (inspect.getdoc(self.cls) or "").split("\n", 1)[0]


_LINKS: dict[str, LinkSpec] = {}
_discovered = False


def _discover() -> None:
    """Import every module of ``encoders`` once, so that its built-in links are registered.

    Imported on first need rather than by ``import encoders``: CompressAI's own import pulls in
    torch_geometric (about 10 s), which a split model with an identity link never needs.
    """
    global _discovered
    if _discovered:
        return
    package = importlib.import_module(CORE_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__, CORE_PACKAGE + "."):
        importlib.import_module(info.name)
    _discovered = True


def register_link(
    name: str, codec_id: int | None = None, *, learned: bool = False, lossless: bool = False
) -> Callable[[type[LinkModule]], type[LinkModule]]:
    """Class decorator that registers a link module under ``name`` with its wire id.

    Args:
        name: Registry name used by ``build_link`` and YAML configs.
        codec_id: Stable wire id written in every payload header: 0..127 for links defined in
            ``encoders``, 128..255 for links of other packages. Never renumber or reuse one.
        learned: The link has weights that must be trained before use.
        lossless: ``decompress(compress(x))`` gives exactly ``x``.

    Raises:
        ValueError: If the id is missing, out of its range, or the name or id is taken.
    """
    if codec_id is None or not 0 <= codec_id <= 255:
        raise ValueError(
            f"link {name!r} needs a codec id: a stable wire id in 0..127 for links of encoders, "
            f"128..255 for other packages (taken: {sorted(s.codec_id for s in _LINKS.values())})"
        )

    def wrap(cls: type[LinkModule]) -> type[LinkModule]:
        old = _LINKS.get(name)
        reload = old is not None and (old.cls.__module__, old.cls.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if old is not None and not reload:
            raise ValueError(f"link module {name!r} is already registered by {old.cls.__name__}")
        core = cls.__module__.split(".")[0] == CORE_PACKAGE
        if (codec_id in CORE_IDS) != core:
            where = "defined in encoders take" if core else "defined outside encoders take"
            raise ValueError(
                f"codec id {codec_id} of {name!r}: links {where} ids in "
                f"{'0..127' if core else '128..255'}"
            )
        taken = {s.codec_id: n for n, s in _LINKS.items() if n != name}
        if codec_id in taken:
            raise ValueError(
                f"codec id {codec_id} of {name!r} is already used by {taken[codec_id]!r}"
            )
        cls.link_name = name
        cls.codec_id = codec_id
        _LINKS[name] = LinkSpec(name, codec_id, cls, learned, lossless)
        return cls

    return wrap


def unregister_link(name: str) -> LinkSpec:
    """Remove ``name`` from the registry (tests and notebooks that define a link for a while)."""
    return _LINKS.pop(name)


def link_spec(name: str) -> LinkSpec:
    """The registry entry of ``name``.

    Raises:
        ValueError: For an unknown name: lists the valid ones, and names the module to import
            when the link belongs to a package above ``encoders`` that was not imported.
    """
    if name not in _LINKS:
        _discover()
    if name in _LINKS:
        return _LINKS[name]
    message = f"unknown link module {name!r}; expected one of {sorted(_LINKS)}"
    plugin = KNOWN_PLUGINS.get(name)
    if plugin is not None and plugin not in sys.modules:
        message += (
            f". {name!r} is registered by the module {plugin!r}, which was not imported: "
            f"import {plugin} before building it"
        )
    raise ValueError(message)


def list_links() -> list[str]:
    """Names of every registered link module, sorted (built-ins and imported plugins)."""
    _discover()
    return sorted(_LINKS)


def build_link(name: str, **kwargs: Any) -> LinkModule:
    """Instantiate a registered link module with its constructor arguments."""
    return link_spec(name).cls(**kwargs)


def constructor_params(cls: type) -> set[str]:
    """Names of the keyword arguments a class's constructor takes (``self`` and ``*args`` aside)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in params if p.kind in kinds and p.name != "self"}


def build_for_cut(
    name: str,
    dim: int,
    num_tokens: int,
    options: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LinkModule:
    """Build the link ``name`` for tokens ``[num_tokens, dim]`` at a cut.

    Args:
        name: Registered link name.
        dim: Token width ``D`` at the cut.
        num_tokens: Tokens per sample ``N`` at the cut.
        options: Shared codec options of the caller (e.g. ``CodecTask``'s ``latent_dim``,
            ``merge_tokens``, ``num_steps``...); the link's ``cut_kwargs`` takes the ones it
            understands and ignores the others.
        overrides: Constructor arguments set last and exactly (e.g. ``CodecTask``'s
            ``codec_options``); a name the constructor does not take is an error.

    Raises:
        ValueError: For an unknown link, or an override the link's constructor does not take.
    """
    spec = link_spec(name)
    kwargs = spec.cls.cut_kwargs(dim, num_tokens, **dict(options or {}))
    if overrides:
        params = constructor_params(spec.cls)
        unknown = sorted(set(overrides) - params)
        if unknown:
            raise ValueError(
                f"link {name!r} takes no argument {unknown}; its arguments are {sorted(params)}"
            )
        kwargs.update(overrides)
    return spec.cls(**kwargs)


def codec_name(codec_id: int) -> str:
    """Registry name of a wire id, or ``"unknown codec id N"`` (for error messages)."""
    def find() -> str | None:
        return next((s.name for s in _LINKS.values() if s.codec_id == codec_id), None)

    name = find()
    if name is None:
        _discover()
        name = find()
    return name or f"unknown codec id {codec_id}"


class _CodecIds(Mapping[str, int]):
    """Read-only ``{name: wire id}`` view of the registry (built-ins are discovered on use)."""

    def __getitem__(self, name: str) -> int:
        if name not in _LINKS:
            _discover()
        return _LINKS[name].codec_id

    def __iter__(self) -> Iterator[str]:
        _discover()
        return iter(sorted(_LINKS))

    def __len__(self) -> int:
        _discover()
        return len(_LINKS)

    def __repr__(self) -> str:
        return repr(dict(self))


def codec_ids() -> Mapping[str, int]:
    """The live ``{name: wire id}`` view of the registry (``encoders.header.CODEC_IDS``)."""
    return _CODEC_IDS


_CODEC_IDS = _CodecIds()

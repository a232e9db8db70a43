"""Things chosen by name in configs, registered with one decorator each: one small mechanism.

An area that lets a YAML name one of several implementations (an evaluation scheme, a placement
method...) keeps a :class:`Registry` and exposes a decorator and a lookup built on it::

    _METHODS: Registry[PlacementMethod] = Registry("placement method")

    def register_placement(name):
        return _METHODS.register(name)

    @register_placement("greedy")
    def greedy(problem, net, t=0.0): ...

    _METHODS.get("anneal")  # ValueError: unknown placement method 'anneal'; expected one of [...]

The registry only stores and finds entries; what an entry must provide (a function signature, a
base class and its hooks) is stated by the area that owns it. Registering a name twice is an error
unless it is the same definition again (a module reloaded in a notebook). Torch-free, so any layer
may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


def _qualified(entry: object) -> tuple[str, str]:
    return (getattr(entry, "__module__", ""), getattr(entry, "__qualname__", repr(entry)))


class Registry(Generic[T]):
    """Entries of one kind by name.

    Args:
        what: What an entry is, for messages (``"placement method"``).
        name_attr: If set, :meth:`register` also sets this attribute of the entry to its name
            (``"kind"``: a registered class knows the name it was registered under).
    """

    def __init__(self, what: str, *, name_attr: str | None = None) -> None:
        self.what = what
        self.name_attr = name_attr
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its function or class under ``name`` and returns it unchanged.

        Raises:
            ValueError: If ``name`` is taken by another definition.
        """

        def wrap(entry: T) -> T:
            old = self._entries.get(name)
            if old is not None and old is not entry and _qualified(old) != _qualified(entry):
                module, qualname = _qualified(old)
                raise ValueError(f"{self.what} {name!r} is already registered by "
                                 f"{module}.{qualname}")
            if self.name_attr is not None:
                setattr(entry, self.name_attr, name)
            self._entries[name] = entry
            return entry

        return wrap

    def unregister(self, name: str) -> T:
        """Remove ``name`` (tests and notebooks that register an entry for a while)."""
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            ValueError: For an unknown name; the message names it and lists the valid ones.
        """
        if name not in self:
            raise ValueError(f"unknown {self.what} {name!r}; expected one of {self.names()}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

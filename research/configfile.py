"""Strict config files: every YAML the project reads goes through this module.

A typo'd key is an error that names it, suggests the closest valid key and lists them all, so
no run silently falls back to a default; each caller raises its own error type.

One mechanism for every subcommand (:func:`load_yaml`): several files merged in order, then
dotted overrides. Mappings merge key by key, recursively; lists and scalars replace. A file may
start from others with ``_base_: <path>`` (or a list of paths, merged in order), relative to the
file itself; the file's own keys then merge on top. ``--set key.sub=value`` overrides parse the
value as YAML (``5`` is an int, ``true`` a bool, ``null`` None, ``[1, 2]`` a list); a list item
is addressed by its index (``schemes.0.quality=90``), and the index one past the end appends an
item (``schemes.3={name: webp, ...}`` on a list of three). The parsers check the merged mapping with
:func:`check_keys`, so a typo in a file or an override is named with the nearest valid key.
"""

from __future__ import annotations

import argparse
import copy
import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BASE_KEY", "add_config_arguments", "apply_overrides", "check_keys", "describe",
           "load_yaml", "merge", "read_yaml"]

BASE_KEY = "_base_"


def check_keys(d: Any, valid: tuple[str, ...], where: str,
               error: type[Exception] = ValueError) -> dict:
    """Reject non-mappings and unknown keys, naming the key, a suggestion and the valid keys."""
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise error(f"{where} must be a mapping with keys {list(valid)}, got {d!r}")
    for k in d:
        if k not in valid:
            close = difflib.get_close_matches(str(k), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise error(f"unknown key {k!r} in {where}{hint}; valid keys: {list(valid)}")
    return dict(d)


def read_yaml(path: str | Path, what: str, error: type[Exception] = ValueError) -> Any:
    """Parse a YAML file; a missing file or bad YAML is an error naming ``what`` and the path."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    with open(p) as fh:
        try:
            return yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise error(f"{what} {p} is not valid YAML: {err}") from err


def merge(base: Any, overlay: Any) -> Any:
    """``overlay`` on top of ``base``: mappings merge recursively, anything else replaces.

    Neither argument is modified; lists are replaced whole, never concatenated.
    """
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = {k: copy.deepcopy(v) for k, v in base.items()}
        for k, v in overlay.items():
            out[k] = merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    return copy.deepcopy(overlay)


def _with_bases(path: Path, what: str, error: type[Exception], chain: tuple[Path, ...]) -> Any:
    """One file with its ``_base_`` files merged underneath (recursively, cycles refused)."""
    raw = read_yaml(path, what, error)
    if not (isinstance(raw, dict) and BASE_KEY in raw):
        return raw
    here = path.resolve()
    bases = raw.pop(BASE_KEY)
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise error(f"{what} {path}: {BASE_KEY} must be a path or a list of paths, got {bases!r}")
    out: Any = {}
    for b in bases:
        bpath = path.parent / b
        if bpath.resolve() in chain + (here,):
            cycle = " -> ".join(str(p) for p in chain + (here, bpath.resolve()))
            raise error(f"{what} {path}: {BASE_KEY} cycle: {cycle}")
        if not bpath.is_file():
            raise FileNotFoundError(f"{what} not found: {bpath} ({BASE_KEY} of {path})")
        base = _with_bases(bpath, what, error, chain + (here,))
        if not isinstance(base, dict | None):
            raise error(f"{what} {bpath} ({BASE_KEY} of {path}) must be a mapping, "
                        f"got {type(base).__name__}")
        out = merge(out, base or {})
    return merge(out, raw)


def _paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]


def describe(paths: str | Path | Sequence[str | Path], overrides: Sequence[str] = ()) -> str:
    """How errors name a merged config: ``a.yaml + b.yaml --set k=v``."""
    return " + ".join(str(p) for p in _paths(paths)) + "".join(f" --set {o}" for o in overrides)


def apply_overrides(raw: Any, overrides: Sequence[str], what: str = "config",
                    error: type[Exception] = ValueError) -> Any:
    """``key.sub=value`` overrides on a copy of ``raw``; each value is parsed as YAML.

    Missing mappings on the way are created (the parser then names a typo'd key); stepping into
    a value that is neither a mapping nor a list is an error naming the override.
    """
    out = copy.deepcopy(raw) if raw is not None else {}
    for item in overrides:
        key, eq, text = str(item).partition("=")
        parts = key.strip().split(".")
        if not eq or not all(parts):
            raise error(f"{what}: override {item!r} is not key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise error(f"{what}: override {item!r}: the value is not valid YAML: {err}") from err
        node = out
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth]) or "the top level"
            if isinstance(node, list):
                # one past the end appends (only as the last part: an item to add, not to edit)
                end = len(node) + 1 if last else len(node)
                if not (part.isdigit() and int(part) < end):
                    raise error(f"{what}: override {item!r}: {where} is a list of {len(node)}; "
                                f"{part!r} is not an index in it")
                part = int(part)
                if part == len(node):
                    node.append(None)
            elif not isinstance(node, dict):
                raise error(f"{what}: override {item!r}: {where} is {node!r}, not a mapping")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and node.get(part) is None:
                    node[part] = {}
                node = node[part]
    return out


def load_yaml(paths: str | Path | Sequence[str | Path], what: str,
              error: type[Exception] = ValueError, overrides: Sequence[str] = ()) -> Any:
    """Read one or several YAML files (each with its ``_base_`` files), merge them in order and
    apply dotted ``overrides``.

    One file and no overrides gives what :func:`read_yaml` gives (a non-mapping included, for the
    parser to reject); merging needs mappings, and an empty file counts as ``{}``.
    """
    files = _paths(paths)
    if not files:
        raise error(f"{what}: no config file given")
    parts = [_with_bases(p, what, error, ()) for p in files]
    if len(parts) == 1 and not overrides:
        return parts[0]
    out: Any = {}
    for p, raw in zip(files, parts, strict=True):
        if not isinstance(raw, dict | None):
            raise error(f"{what} {p} must be a mapping to be merged, got {type(raw).__name__}")
        out = merge(out, raw or {})
    return apply_overrides(out, overrides, f"{what} {describe(files)}", error)


def load_config_files(paths: str | Path | Sequence[str | Path], what: str,
                      error: type[Exception] = ValueError, overrides: Sequence[str] = ()
                      ) -> tuple[Any, str, str | None]:
    """``(raw mapping, source, default name)`` of one config or several merged in order: what
    every parser takes (``source`` names the files in errors; the default name is the last
    file's stem)."""
    files = _paths(paths)
    raw = load_yaml(files, what, error, overrides)
    source = str(files[0]) if len(files) == 1 and not overrides else describe(files, overrides)
    return raw, source, files[-1].stem if files else None


def add_config_arguments(parser: argparse.ArgumentParser, what: str, example: str) -> None:
    """``--config`` (repeatable, merged in order) and ``--set KEY.SUB=VALUE`` (repeatable, into
    ``args.overrides``): the same two options on every ``satedge`` subcommand that reads YAML."""
    parser.add_argument(
        "--config", action="append", required=True, type=Path, metavar="YAML",
        help=f"{what} YAML; repeat to merge several files in order (mappings merge key by key, "
             f"lists and scalars replace; a file may start from another with {BASE_KEY}: <path>)")
    parser.add_argument(
        "--set", action="append", default=[], dest="overrides", metavar="KEY.SUB=VALUE",
        help=f"override one value after merging, e.g. --set {example} (the value is read as "
             "YAML: 5, 0.1, true, null, [1, 2]; a list item by its index: key.0.sub=..., "
             "and one past the end appends: key.3={...} on a list of 3); "
             "repeatable; an unknown key is an error naming the nearest valid one")


def matches_hint(value: Any, hint: Any) -> bool:
    """Does a YAML value have the annotated type? (ints pass as floats; bools never as numbers)"""
    import types
    import typing

    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches_hint(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and (
            not args or all(matches_hint(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is float:  # NaN is no setting (every comparison with it is false): refused
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation this checker does not know: left to the dataclass


def build_section(cls: type, values: dict, where: str, error: type[Exception] = ValueError) -> Any:
    """``cls(**values)`` for a config dataclass, after checking every value against its field's
    annotation, so ``rounds: ten`` or ``maxflow: flase`` is an error naming the key and the type
    expected instead of a TypeError deep in a run (or a string that counts as true)."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in values and not matches_hint(values[f.name], hints.get(f.name, Any)):
            hint = hints[f.name]
            expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            value = values[f.name]
            what = "NaN, not a number" if isinstance(value, float) and value != value else (
                f"not of type {expected}")
            raise error(f"{where}.{f.name}: {value!r} is {what}")
    try:
        return cls(**values)
    except TypeError as err:
        raise error(f"{where}: {err}") from None

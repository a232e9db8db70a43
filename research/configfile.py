"""Strict config files: every YAML the project reads goes through these two functions.

A typo'd key is an error that names it, suggests the closest valid key and lists them all, so
no run silently falls back to a default; each caller raises its own error type.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

__all__ = ["check_keys", "read_yaml"]


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

"""Files a run resumes from are written whole or not at all.

A kill during ``torch.save`` (a preempted job, a full disk) must not leave a half file that the
next run trusts: :func:`atomic_save` writes to a temporary file beside the target, flushes it to
disk and renames it over the target (atomic on POSIX file systems), so a reader sees the old file
or the new one. Torch-free callers may pass bytes to :func:`atomic_write_bytes`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["atomic_save", "atomic_write_bytes"]


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # runs sharing a folder never collide
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)``, atomically (see the module docstring)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(buf.getvalue(), path)

"""Shared by the script tests: a script under ``scripts/`` loaded as a module (scripts are not a
package)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

from research.paths import REPO_ROOT


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (call its ``main(argv)``)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replot_committed(script: str, results: Path, figures: tuple[str, ...], tmp: Path) -> Path:
    """A copy of the committed ``results`` folder with ``figures`` (stems) deleted and redrawn by
    ``scripts/<script>.py --replot``; fails if the script fails or a PNG or PDF is missing."""
    out = tmp / results.name
    shutil.copytree(results, out)
    for stem in figures:
        (out / f"{stem}.png").unlink()
    assert load_script(script).main(["--replot", "--out", str(out)]) == 0
    for stem in figures:
        assert (out / f"{stem}.png").is_file() and (out / f"{stem}.pdf").is_file()
    return out

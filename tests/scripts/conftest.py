"""Shared by the script tests: a script under ``scripts/`` loaded as a module (scripts are not a
package)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from research.paths import REPO_ROOT


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (call its ``main(argv)``)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

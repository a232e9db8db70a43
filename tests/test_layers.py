"""Dependencies run downward: no module imports a higher layer (docs/architecture.md).

The imports are read statically with ``ast`` (module level, inside functions and under
``TYPE_CHECKING`` alike), so a lazy import cannot hide an upward edge. A module may import its
own layer or any lower one. ``LAYERS`` is the one definition of the order; the map in
docs/architecture.md draws it.
"""

from __future__ import annotations

import ast
import fnmatch
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("devices", "encoders", "snn", "research")

# Lowest first. Entries are module-name patterns: a module belongs to the layer of the most
# specific pattern that matches it (``research.orbit`` matches ``research.orbit.isl``).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("devices", ("devices",)),
    ("encoders", ("encoders",)),
    ("snn", ("snn",)),
    ("foundation", ("research", "research.constants", "research.records", "research.paths",
                    "research.figures", "research.tracking", "research.configfile",
                    "research.registry")),
    ("orbit", ("research.orbit",)),
    ("workload", ("research.workload",)),
    ("opt", ("research.opt",)),
    ("data", ("research.data",)),
    ("models", ("research.models",)),
    ("tasks", ("research.tasks",)),
    ("fed", ("research.fed",)),
    ("serving", ("research.serving",)),
    ("eval", ("research.eval",)),
    ("entry points", ("research.demo", "research.cli", "research.*.cli")),
)

# Upward edges tolerated for now, (importer, imported) -> the change that removes it. Empty: keep
# it so; an entry whose import is gone fails test_allowed_upward_edges_still_exist.
ALLOWED: dict[tuple[str, str], str] = {}

# Packages that must import neither torch nor anything that does (transitively, statically).
TORCH_FREE = ("devices", "research.constants", "research.records", "research.paths",
              "research.configfile", "research.registry", "research.orbit", "research.workload", "research.opt")
TORCH_LIKE = {"torch", "torchvision", "lightning", "timm", "peft", "compressai", "snntorch",
              "torchmetrics"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the layered packages, by dotted name."""
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


@cache
def imports(module: str) -> tuple[tuple[str, int], ...]:
    """``(imported name, line)`` of every import statement in ``module``.

    ``from a.b import c`` yields ``a.b.c`` when that is a module, else ``a.b``; relative imports
    are resolved against the module's package.
    """
    path = modules()[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub if sub in modules() else target, node.lineno))
    return tuple(out)


def layer_of(module: str) -> int | None:
    """Index in ``LAYERS`` of the most specific pattern matching ``module`` (None: no layer)."""
    best: tuple[int, int] | None = None  # (specificity, layer)
    for i, (_, patterns) in enumerate(LAYERS):
        for pat in patterns:
            if fnmatch.fnmatchcase(module, pat) or module.startswith(pat + "."):
                specificity = 1000 if "*" in pat else pat.count(".")
                if best is None or specificity > best[0]:
                    best = (specificity, i)
    return None if best is None else best[1]


def _internal(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def upward_imports() -> list[str]:
    """One message per import from a lower layer to a higher one (allowed edges excluded)."""
    found = []
    for module, path in modules().items():
        src = layer_of(module)
        for target, line in imports(module):
            if not _internal(target):
                continue
            dst = layer_of(target)
            if dst is not None and dst > src and (module, target) not in ALLOWED:
                found.append(f"{module} (layer {LAYERS[src][0]!r}) imports {target} "
                             f"(layer {LAYERS[dst][0]!r}, higher) at "
                             f"{path.relative_to(ROOT)}:{line}")
    return found


def test_every_module_has_a_layer():
    missing = [m for m in modules() if layer_of(m) is None]
    assert not missing, f"modules in no layer (add them to LAYERS in {Path(__file__).name}): {missing}"


def test_no_module_imports_a_higher_layer():
    found = upward_imports()
    assert not found, "imports that run upward:\n" + "\n".join(found)


def test_allowed_upward_edges_still_exist():
    """An allow-listed edge that is gone must leave the list, so it cannot come back unnoticed."""
    stale = [edge for edge in ALLOWED
             if edge[0] not in modules() or edge[1] not in {t for t, _ in imports(edge[0])}]
    assert not stale, f"remove these from ALLOWED, the imports are gone: {stale}"


@pytest.mark.parametrize("package", TORCH_FREE)
def test_torch_free_packages_stay_torch_free(package):
    """No module of ``package``, nor any module it reaches, imports torch or a torch library."""
    todo = [m for m in modules() if m == package or m.startswith(package + ".")]
    assert todo, f"no module {package!r}"
    seen: dict[str, str] = {m: m for m in todo}  # module -> the path that reached it
    bad = []
    while todo:
        module = todo.pop()
        parts = module.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]
        for target, line in [*imports(module), *((p, 0) for p in parents)]:
            top = target.split(".")[0]
            if top in TORCH_LIKE:
                bad.append(f"{seen[module]} imports {target} (line {line})")
            elif _internal(target):
                name = next((c for c in (target, target.rsplit(".", 1)[0]) if c in modules()), None)
                if name is not None and name not in seen:
                    seen[name] = f"{seen[module]} -> {name}"
                    todo.append(name)
    assert not bad, f"{package} must stay torch-free:\n" + "\n".join(bad)


def test_the_parser_sees_lazy_relative_and_submodule_imports(tmp_path, monkeypatch):
    """Imports inside functions (where the old upward edges hid), relative ones, ``from pkg import mod``."""
    for name, text in {
        "research/fake/__init__.py": "",
        "research/fake/other.py": "",
        "research/orbit/isl.py": "",
        "research/fake/mod.py": ("from . import other\nfrom ..orbit import isl\n\n\ndef f():\n"
                                 "    from research.fed.aggregate import State\n"),
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    modules.cache_clear()
    imports.cache_clear()
    try:
        assert [t for t, _ in imports("research.fake.mod")] == [
            "research.fake.other", "research.orbit.isl", "research.fed.aggregate"]
    finally:
        modules.cache_clear()
        imports.cache_clear()
    assert layer_of("research.fed.aggregate") > layer_of("research.models.weights")
    assert layer_of("research.fed.cli") > layer_of("research.fed.compare")
    assert layer_of("research.orbit.isl") < layer_of("research.fed.network")

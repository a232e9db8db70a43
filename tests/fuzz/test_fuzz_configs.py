"""Fuzz the config loaders with damaged values: refused by name, or accepted with their type.

The real experiment YAMLs (federated runs, serving runs, orbit scenarios; ``_base_`` files
merged) are loaded once; each case replaces one value anywhere in the tree (a leaf, a list item
or a whole section) with a value of a wrong or extreme type (text, negative and huge numbers,
NaN, infinities, lists, mappings, None, booleans), or adds an unknown key to a mapping, and
runs the loader's validation (``research.fed.config.parse_config``,
``research.serving.config.parse_serve_config`` with its orbit section, and
``research.orbit.config.parse_config``; no contact plan is built). The loader must raise its
config error (a ``ValueError``) whose message names the damaged key, or accept the config; an
accepted number or bool keeps its type (a bool is never taken as a number or the other way
round), an accepted text stays text, and NaN is never accepted for a number. Dotted
``--set key=value`` overrides are fuzzed the same way through ``load_config``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import typing
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from research.configfile import load_yaml, merge
from research.fed.config import FedConfigError
from research.fed.config import load_config as load_fed_config
from research.fed.config import parse_config as parse_fed_config
from research.orbit.config import OrbitConfigError
from research.orbit.config import load_config as load_orbit_config
from research.orbit.config import parse_config as parse_orbit_config
from research.serving.config import ServingConfigError, load_serve_config, parse_serve_config

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"

# The real files, and variants that also set the optional keys the files leave out (fault
# lists, privacy, a Walker shell, station sites, link overrides...), so those are damaged too.
OVERLAYS: dict[str, tuple[str, dict]] = {
    "fed/collaborative.yaml+options": ("fed/collaborative.yaml", {
        "faults": [
            {"kind": "station_outage", "nodes": ["gs-Kiruna"], "start_s": 0, "end_s": 3600.0},
            {"kind": "isl_failure", "nodes": ["sat-P00-S00", "sat-P00-S01"], "start_s": 10.0,
             "end_s": 20},
        ],
        "privacy": {"level": "satellite", "epsilon": 8.0, "delta": 1e-5, "clip": 1.0,
                    "adjacency": "replace"},
        "comm": {"round_deadline_s": 600.0},
        "data": {"max_images": 200},
        "network": {"storage_bytes": 1e11},
    }),
    "serving/quick.yaml+options": ("serving/quick.yaml", {
        "nodes": {"satellite_memory_bytes": 4e9},
        "placement": {"method": "greedy", "energy_budget_j": 500.0, "link_volume_fraction": 0.1,
                      "eclipse_energy_fraction": 0.5, "migration_weight": 0.1},
        "baselines": {"image_formats": ["jpeg", "webp"], "image_quality": 80},
        "workload": {"sources": ["sat-P00-S00", "sat-P01-S03"], "modality": ["rgb", "ms13"]},
    }),
    "orbit/demo_6x11.yaml+options": ("orbit/demo_6x11.yaml", {
        "constellation": {"preset": None, "walker": {
            "planes": 3, "sats_per_plane": 4, "altitude_km": 550.0, "inclination_deg": 53,
            "phasing": 1, "kind": "delta", "raan0_deg": 10.0}},
        "stations": {"names": None, "default": 2, "sites": [
            {"name": "Here", "lat_deg": 45.0, "lon_deg": 7.5, "alt_m": 300.0,
             "min_elevation_deg": 5.0}]},
        "isl": {"nearest_k": 2, "add_nearest": True, "max_range_km": 5000.0,
                "polar_cutoff_lat_deg": 70.0},
        "links": {"downlink": {"preset": "x_band_eo", "tx_power_w": 10.0}},
    }),
}
FED = ["fed/collaborative.yaml", "fed/onboard.yaml", "fed/quick.yaml", "fed/secagg.yaml",
       "fed/collaborative.yaml+options"]
SERVING = ["serving/constrained.yaml", "serving/multitask.yaml", "serving/quick.yaml",
           "serving/quick.yaml+options"]
ORBIT = ["orbit/demo_6x11.yaml", "orbit/demo_6x11_no_isl.yaml", "fed/scenario_demo_6x11_7d.yaml",
         "orbit/demo_6x11.yaml+options"]


# ----------------------------------------------------------------------------- the loaders
@dataclasses.dataclass(frozen=True)
class Loader:
    """One config family: how its raw mapping is validated and where a key's value lands."""

    kind: str
    error: type[ValueError]

    def parse(self, raw: Any) -> Any:
        if self.kind == "fed":
            return parse_fed_config(raw, "fuzz.yaml")
        if self.kind == "orbit":
            return parse_orbit_config(raw, "fuzz.yaml")
        cfg = parse_serve_config(raw, "fuzz.yaml")
        return cfg, cfg.orbit_config()  # the orbit section is validated too (no plan built)

    def value(self, parsed: Any, path: tuple) -> Any:
        """The parsed value the raw value at ``path`` became, or ``NOTHING`` if none maps."""
        if self.kind == "fed":
            return walk(parsed.to_dict(), path)
        if self.kind == "orbit":
            return orbit_value(parsed, path)
        cfg, orbit = parsed
        if path[0] == "orbit":
            return orbit_value(orbit, path[1:])
        if path[0] == "name":
            return cfg.name
        section = getattr(cfg, path[0], NOTHING)
        if dataclasses.is_dataclass(section):
            return walk(dataclasses.asdict(section), path[1:])
        return NOTHING


LOADERS = {"fed": Loader("fed", FedConfigError), "serving": Loader("serving", ServingConfigError),
           "orbit": Loader("orbit", OrbitConfigError)}
NOTHING = object()


def walk(tree: Any, path: tuple) -> Any:
    for key in path:
        if isinstance(tree, dict) and key in tree:
            tree = tree[key]
        elif isinstance(tree, (list, tuple)) and isinstance(key, int) and key < len(tree):
            tree = tree[key]
        else:
            return NOTHING
    return tree


def orbit_value(plan: Any, path: tuple) -> Any:
    """Where a scenario key lands in a parsed :class:`PlanConfig`."""
    if not path:
        return NOTHING
    head, rest = path[0], path[1:]
    if head in ("duration_s", "step_s") and not rest:
        return getattr(plan.grid, head)
    if head in ("eclipse", "refine_tol_s", "name") and not rest:
        return getattr(plan, head)
    if head == "isl" and len(rest) == 1:
        return getattr(plan.isl, rest[0], NOTHING)
    if head == "stations" and rest == ("min_elevation_deg",):
        values = {s.min_elevation_deg for s in plan.stations}
        return values.pop() if len(values) == 1 else NOTHING
    if head == "constellation" and len(rest) == 2 and rest[0] == "walker":
        return plan.constellation.params.get(rest[1], NOTHING)
    return NOTHING


def declared(family: str, path: tuple) -> Any:
    """The annotation of the dataclass field a fed or serving key fills (None: not known)."""
    if family == "fed":
        from research.fed.config import SECTIONS, Fault, FedConfig
        from research.orbit.network import NetworkResources

        classes = {**SECTIONS, "network": NetworkResources}
        if len(path) == 1:
            cls, key = FedConfig, path[0]
        elif len(path) == 2 and path[0] in classes:
            cls, key = classes[path[0]], path[1]
        elif len(path) == 3 and path[0] == "faults":
            cls, key = Fault, path[2]
        else:
            return None
    elif family == "serving":
        from research.orbit.network import NetworkResources
        from research.serving.config import _SECTIONS

        classes = {**_SECTIONS, "network": NetworkResources}
        if len(path) != 2 or path[0] not in classes:
            return None
        cls, key = classes[path[0]], path[1]
    else:
        return None
    return typing.get_type_hints(cls).get(key)


def matches_declared(value: Any, hint: Any) -> bool:
    """``value`` has the declared type (a bool is no number, NaN no float)."""
    from research.configfile import matches_hint

    if dataclasses.is_dataclass(hint):  # a section, parsed and turned back into a mapping
        return isinstance(value, dict)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]):
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    return hint is Any or matches_hint(value, hint)


@cache
def base_raw(family: str, name: str) -> dict:
    """The merged mapping of one experiment YAML (``_base_`` resolved), paths made absolute so
    that the loaders find the files whatever the working directory."""
    if name in OVERLAYS:
        file, overlay = OVERLAYS[name]
        raw = merge(load_yaml(EXPERIMENTS / file, "config"), overlay)
        drop = [k for k, v in overlay.get("constellation", {}).items() if v is None]
        for key in drop:
            del raw["constellation"][key]
        if overlay.get("stations", {}).get("names", 0) is None:
            del raw["stations"]["names"]
    else:
        raw = load_yaml(EXPERIMENTS / name, "config")
    if family == "serving" and isinstance(raw.get("orbit"), dict) and "file" in raw["orbit"]:
        raw["orbit"]["file"] = str(REPO / raw["orbit"]["file"])
    return raw


@cache
def base_parsed(family: str, name: str) -> Any:
    return LOADERS[family].parse(copy.deepcopy(base_raw(family, name)))


def nodes(tree: Any, path: tuple = ()) -> list[tuple]:
    """Every path below the root: leaves, list items and whole sections."""
    out = [path] if path else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += nodes(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += nodes(v, (*path, i))
    return out


def mappings(tree: Any, path: tuple = ()) -> list[tuple]:
    """Every mapping in the tree (the root included), where an unknown key can be added."""
    out = [path] if isinstance(tree, dict) else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += mappings(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += mappings(v, (*path, i))
    return out


def put(tree: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def damaged_name(raw: Any, path: tuple) -> Any:
    """The key an error must name for a damage at ``path``: its last mapping key (a list item
    is named by its list)."""
    for depth in range(len(path), 0, -1):
        if isinstance(walk(raw, path[:depth - 1]), dict):
            return path[depth - 1]
    return path[0]


# ----------------------------------------------------------------------------- strategies
WRONG = st.one_of(
    st.text(max_size=12), st.sampled_from(["", "ten", "1e3", "true", "null", "nan", "-1"]),
    st.integers(-10**6, -1), st.integers(10**15, 10**40), st.sampled_from([0, 1, -1, 2**63]),
    st.floats(), st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e308, 0.5]),
    st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.none(), st.booleans(),
)


@st.composite
def damaged(draw, family: str, names: list[str]):
    """``(name, how, path, key, raw)``: a config with the value at ``path`` replaced, or the
    unknown ``key`` added at ``path``; ``key`` is what an error must name."""
    name = draw(st.sampled_from(names))
    raw = copy.deepcopy(base_raw(family, name))
    if draw(st.integers(0, 4)) == 0:
        places = mappings(raw)
        if family == "serving":
            places = [p for p in places if not p or p[0] != "orbit" or len(p) == 1]
        where = draw(st.sampled_from(places))
        target = walk(raw, where)
        key = draw(st.one_of(st.text(min_size=1, max_size=12), st.integers(-5, 5)).filter(
            lambda k: k not in target))
        target[key] = draw(WRONG)
        return name, "unknown key", (*where, key), key, raw
    paths = nodes(raw)
    if family == "serving":  # inside ``orbit`` it is the orbit parser: the orbit family's cases
        paths = [p for p in paths if p[0] != "orbit" or len(p) == 1]
    path = draw(st.sampled_from(paths))
    value = draw(WRONG)
    put(raw, path, value)
    return name, f"= {value!r}", path, damaged_name(raw, path), raw


def check_outcome(loader: Loader, name: str, how: str, path: tuple, key: Any,
                  raw: dict) -> None:
    try:
        parsed = loader.parse(raw)
    except loader.error as err:
        message = str(err)
        assert repr(key) in message or str(key) in message, \
            f"{name}: {dotted(path)} {how}: the error does not name {key!r}: {message}"
        return
    except FileNotFoundError as err:  # a damaged file name: the path it looked for is named
        assert key == "file" and "not found" in str(err), f"{name}: {dotted(path)} {how}: {err}"
        return
    except ValueError as err:
        raise AssertionError(f"{name}: {dotted(path)} {how}: a bare "
                             f"{type(err).__name__}, not {loader.error.__name__}: {err}") from err
    assert how != "unknown key", f"{name}: unknown key {path} accepted"
    before = loader.value(base_parsed(loader.kind, name), path)
    after = loader.value(parsed, path)
    original = walk(base_raw(loader.kind, name), path)
    value = walk(raw, path)
    where = f"{name}: {dotted(path)} {how}"
    if before is NOTHING or after is NOTHING:
        return
    if value is None and after is None:
        return  # null for an optional value: "none"
    hint = declared(loader.kind, path)
    if hint is not None:
        assert matches_declared(after, hint), f"{where} accepted as {after!r}, declared {hint}"
    elif kind(before) in ("number", "bool"):
        assert kind(after) == kind(before), \
            f"{where} accepted as {after!r} ({kind(after)}), was {before!r} ({kind(before)})"
    if kind(before) == "text":  # a name or path: None may mean "none", never a number or list
        assert kind(after) in ("text", "none", "mapping"), \
            f"{where} accepted as {after!r} ({kind(after)}), was {before!r} ({kind(before)})"
    if kind(original) == "number" and kind(value) == "bool" and kind(after) != "bool":
        raise AssertionError(f"{where}: a bool accepted as a number ({after!r})")
    if kind(original) == "bool" and kind(value) == "number":
        raise AssertionError(f"{where}: a number accepted as a bool ({after!r})")
    if kind(before) == "number" and isinstance(after, float):
        assert not math.isnan(after), f"{where}: NaN accepted"


# ----------------------------------------------------------------------------- properties
FAMILIES = [
    pytest.param("fed", FED, id="fed"),
    pytest.param("serving", SERVING, id="serving"),
    pytest.param("orbit", ORBIT, id="orbit"),
]


@pytest.mark.parametrize("family, names", FAMILIES)
def test_damaged_configs_are_refused_by_name_or_keep_their_types(fuzz, family, names):
    loader = LOADERS[family]
    for name in names:  # the real files load as they are
        base_parsed(family, name)
    checked = fuzz.settings(scale=3)

    @checked
    @given(case=damaged(family, names))
    def prop(case):
        name, how, path, key, raw = case
        with fuzz.case(lambda: f"{name}: {path} {how}"):
            check_outcome(loader, name, how, path, key, raw)

    prop()


def dotted(path: tuple) -> str:
    return ".".join(str(k) for k in path)


OVERRIDE_TEXT = st.one_of(
    st.sampled_from(["", "ten", "-1", "0", "1e400", ".nan", ".inf", "-.inf", "null", "true",
                     "[1, 2]", "{a: 1}", "[", "{", "'", "!!python/object:os.system", "*x",
                     "2" * 40, "- 1", "a: b: c"]),
    st.text(max_size=10),
)


@pytest.mark.parametrize("family, names", [
    pytest.param("fed", FED, id="fed"),
    pytest.param("serving", SERVING, id="serving"),
    # not strict: whether the few fast examples hit it (--set refine_tol_s= gives a TypeError)
    # is chance; the slow ones do
    pytest.param("orbit", ORBIT, id="orbit"),
])
def test_damaged_overrides_are_refused_or_applied(fuzz, family, names):
    """``--set key=value`` with a drawn key (an existing path, a typo, a path through a value)
    and drawn YAML text: the loader's error, or a config."""
    load = {"fed": load_fed_config, "serving": load_serve_config, "orbit": load_orbit_config}
    error = LOADERS[family].error

    files = [n for n in names if n not in OVERLAYS]

    @st.composite
    def overrides(draw):
        name = draw(st.sampled_from(files))
        paths = [dotted(p) for p in nodes(base_raw(family, name))]
        key = draw(st.one_of(
            st.sampled_from(paths),
            st.sampled_from(paths).map(lambda p: p + ".sub"),
            st.sampled_from(paths).map(lambda p: p.replace(".", "..", 1) if "." in p else "." + p),
            st.text(max_size=12),
        ))
        return name, f"{key}={draw(OVERRIDE_TEXT)}"

    checked = fuzz.settings()

    @checked
    @given(case=overrides())
    def prop(case):
        name, item = case
        with fuzz.case(lambda: f"{name} --set {item!r}"):
            try:
                load[family]([EXPERIMENTS / name], overrides=[item])
            except error as err:
                assert str(err)
            except FileNotFoundError as err:  # an override naming a file that is not there
                assert re.search(r"not found", str(err))

    prop()

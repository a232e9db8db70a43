"""research.configfile: several YAML files merged in order, ``_base_`` files, dotted overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from research.cli import expand_config_bases
from research.configfile import apply_overrides, load_yaml, merge
from research.fed.config import FedConfigError, load_config
from research.orbit.config import OrbitConfigError
from research.orbit.config import load_config as load_orbit
from research.paths import REPO_ROOT

FED = REPO_ROOT / "experiments" / "fed"


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_merge_is_recursive_for_mappings_and_replaces_lists_and_scalars() -> None:
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "l": [1, 2, 3], "s": "base"}
    over = {"a": {"y": {"q": 20}, "z": 3}, "l": [9], "s": None}
    assert merge(base, over) == {"a": {"x": 1, "y": {"p": 1, "q": 20}, "z": 3}, "l": [9], "s": None}
    assert base["a"]["y"]["q"] == 2 and base["l"] == [1, 2, 3]  # inputs untouched
    assert merge({"a": {"x": 1}}, {"a": 5}) == {"a": 5}  # a scalar replaces a mapping
    assert merge({"a": 5}, {"a": {"x": 1}}) == {"a": {"x": 1}}


def test_files_merge_in_order(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", {"k": 1, "m": {"x": 1, "y": 1}, "l": [1, 2]})
    b = _write(tmp_path / "b.yaml", {"k": 2, "m": {"y": 2}, "l": [3]})
    assert load_yaml([a, b], "cfg") == {"k": 2, "m": {"x": 1, "y": 2}, "l": [3]}
    assert load_yaml([b, a], "cfg") == {"k": 1, "m": {"x": 1, "y": 1}, "l": [1, 2]}
    assert load_yaml(a, "cfg") == load_yaml([a], "cfg") == yaml.safe_load(a.read_text())


def test_base_key_is_relative_to_the_file_and_merged_underneath(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "root.yaml", {"k": 0, "m": {"x": 0, "y": 0}})
    _write(tmp_path / "sub" / "mid.yaml", {"_base_": "../root.yaml", "m": {"x": 1}})
    _write(tmp_path / "other.yaml", {"extra": True, "k": 5})
    top = _write(tmp_path / "sub" / "top.yaml", {"_base_": ["mid.yaml", "../other.yaml"], "k": 2})
    assert load_yaml(top, "cfg") == {"k": 2, "m": {"x": 1, "y": 0}, "extra": True}


def test_base_cycles_and_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cfg not found: .*nowhere.yaml"):
        load_yaml(tmp_path / "nowhere.yaml", "cfg")
    child = _write(tmp_path / "child.yaml", {"_base_": "gone.yaml", "k": 1})
    with pytest.raises(FileNotFoundError, match=r"gone.yaml \(_base_ of .*child.yaml\)"):
        load_yaml(child, "cfg")
    _write(tmp_path / "x.yaml", {"_base_": "y.yaml"})
    _write(tmp_path / "y.yaml", {"_base_": "x.yaml"})
    with pytest.raises(ValueError, match="_base_ cycle"):
        load_yaml(tmp_path / "x.yaml", "cfg")
    bad = _write(tmp_path / "bad.yaml", {"_base_": 3})
    with pytest.raises(ValueError, match="must be a path or a list of paths"):
        load_yaml(bad, "cfg")
    _write(tmp_path / "root.yaml", {"k": 1})
    lst = _write(tmp_path / "list.yaml", [1, 2])
    with pytest.raises(ValueError, match="list.yaml must be a mapping"):
        load_yaml([tmp_path / "root.yaml", lst], "cfg")


def test_dotted_overrides_parse_values_as_yaml() -> None:
    raw = {"train": {"rounds": 30, "lr": 0.1}, "schemes": [{"name": "a", "quality": 75}]}
    out = apply_overrides(raw, ["train.rounds=5", "train.lr=1e-2", "train.fresh=true",
                                "data.root=null", "name=quick run", "cuts=[1, 2]",
                                "schemes.0.quality=90"])
    assert out["train"] == {"rounds": 5, "lr": "1e-2", "fresh": True}  # YAML 1.1: 1e-2 is text
    assert out["data"] == {"root": None} and out["name"] == "quick run" and out["cuts"] == [1, 2]
    assert out["schemes"][0]["quality"] == 90 and raw["train"]["rounds"] == 30
    assert apply_overrides(raw, ["train.lr=0.01"])["train"]["lr"] == 0.01
    appended = apply_overrides(raw, ["schemes.1={name: b, quality: 50}"])["schemes"]
    assert appended == [{"name": "a", "quality": 75}, {"name": "b", "quality": 50}]
    assert len(raw["schemes"]) == 1  # the input is not touched
    for bad, match in [("train.rounds", "not key.sub=value"), ("train..x=1", "not key.sub=value"),
                       ("train.rounds.x=1", "train.rounds is 30, not a mapping"),
                       ("schemes.3.quality=1", "list of 1"),
                       ("schemes.1.quality=1", "list of 1"), ("schemes.2={name: c}", "list of 1"), ("a=[1", "not valid YAML")]:
        with pytest.raises(ValueError, match=match):
            apply_overrides(raw, [bad])


def test_overrides_after_files(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", {"k": 1})
    b = _write(tmp_path / "b.yaml", {"k": 2})
    assert load_yaml([a, b], "cfg", overrides=["k=3"]) == {"k": 3}


def test_fed_config_overlays_and_overrides() -> None:
    collab = load_config(FED / "collaborative.yaml")
    onboard = load_config(FED / "onboard.yaml")
    assert (onboard.scheme, onboard.name, onboard.out_dir) == ("onboard", "onboard", "outputs/fed/onboard")
    assert onboard.train == collab.train and onboard.network == collab.network
    both = load_config([FED / "collaborative.yaml", FED / "quick.yaml"], ["train.rounds=3"])
    assert both.train.rounds == 3 and both.train.local_epochs == 3 and both.data.root is None


def test_unknown_override_key_names_the_nearest_key_and_the_files() -> None:
    with pytest.raises(FedConfigError, match=r"unknown key 'roundz'.*quick.yaml --set "
                       r"train.roundz=5.*did you mean 'rounds'"):
        load_config(FED / "quick.yaml", ["train.roundz=5"])
    with pytest.raises(FedConfigError, match=r"unknown key 'netwrk'.*did you mean 'network'"):
        load_config([FED / "collaborative.yaml", FED / "onboard.yaml"], ["netwrk.capacity=unlimited"])
    with pytest.raises(FileNotFoundError, match="fed config not found: .*missing.yaml"):
        load_config([FED / "collaborative.yaml", FED / "missing.yaml"])


def test_orbit_name_defaults_to_the_last_file(tmp_path: Path) -> None:
    base = REPO_ROOT / "experiments" / "orbit" / "demo_6x11.yaml"
    over = _write(tmp_path / "short.yaml", {"duration_s": 600})
    cfg = load_orbit([base, over], ["isl.topology=none"])
    assert cfg.name == "demo_6x11" and cfg.grid.duration_s == 600 and cfg.isl.topology == "none"
    raw = yaml.safe_load(base.read_text())
    raw.pop("name")
    _write(tmp_path / "noname.yaml", raw)
    assert load_orbit([tmp_path / "noname.yaml", over]).name == "short"
    with pytest.raises(OrbitConfigError, match=r"'topolgy'.*did you mean 'topology'"):
        load_orbit(base, ["isl.topolgy=none"])


def test_lightning_configs_with_a_base_become_merged_yaml(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", {"trainer": {"max_epochs": 3, "precision": "32-true"}})
    child = _write(tmp_path / "child.yaml", {"_base_": "base.yaml", "trainer": {"max_epochs": 5}})
    plain = _write(tmp_path / "plain.yaml", {"trainer": {"max_epochs": 1}})
    argv = ["fit", "--config", str(child), f"--config={plain}", "--trainer.max_epochs", "2"]
    out = expand_config_bases(argv)
    assert out[:2] == ["fit", "--config"] and out[3:] == argv[3:]  # files without _base_ pass
    assert yaml.safe_load(out[2]) == {"trainer": {"max_epochs": 5, "precision": "32-true"}}

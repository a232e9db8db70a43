"""Every YAML under experiments/ parses with its own parser, and no two share a copied block.

Overlays name their base with ``_base_`` (research.configfile), so a file of more than
``MAX_SHARED`` identical consecutive lines in two places is a copy that should have been a base.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from research.cli import run_lightning
from research.configfile import BASE_KEY, load_yaml, read_yaml
from research.paths import REPO_ROOT, tle_dir

EXPERIMENTS = REPO_ROOT / "experiments"
YAMLS = sorted(EXPERIMENTS.rglob("*.yaml"))
MAX_SHARED = 5  # identical consecutive non-comment lines two files may share
LIGHTNING = ("foundation", "codec", "snn")  # LightningCLI configs (satedge fit/test)


def _id(p: Path) -> str:
    return str(p.relative_to(EXPERIMENTS))


def _parse(path: Path) -> None:
    area = path.relative_to(EXPERIMENTS).parts[0]
    if area == "orbit" or (area == "fed" and path.stem.startswith("scenario_")):
        from research.orbit.config import load_config

        if "tle" in (load_yaml(path, "orbit config").get("constellation") or {}) \
                and not tle_dir().is_dir():
            pytest.skip(f"shared TLE folder not present at {tle_dir()}")
        assert load_config(path).grid.n_steps > 0
    elif area == "fed":
        from research.fed.config import load_config

        assert load_config(path).train.rounds >= 1
    elif area == "serving":
        from research.serving.config import load_serve_config

        assert load_serve_config(path).workload.tasks
    elif area == "eval":
        from research.eval.scenario import load_scenario

        assert load_scenario(path).schemes
    else:
        pytest.fail(f"{_id(path)}: no parser known for experiments/{area}/ (add it to {__name__})")


@pytest.mark.parametrize("path", [p for p in YAMLS if _id(p).split("/")[0] not in LIGHTNING],
                         ids=_id)
def test_system_yaml_parses(path: Path) -> None:
    _parse(path)


def _lightning_configs() -> list[list[Path]]:
    """Each LightningCLI config as the ``--config`` files it runs with: a file that names its model
    class runs alone; an override file without one (codec/, snn/) runs over its folder's
    ``base.yaml``; a file that is only ever a ``_base_`` (foundation/eurosat.yaml) is covered by
    the files built on it."""
    runs = []
    for p in YAMLS:
        if _id(p).split("/")[0] not in LIGHTNING:
            continue
        model = load_yaml(p, "config").get("model") or {}
        if "class_path" in model:
            runs.append([p])
        elif (p.parent / "base.yaml").is_file():
            runs.append([p.parent / "base.yaml", p])
        else:
            assert p.resolve() in _named_as_base(), f"{_id(p)} has no model and no file builds on it"
    return runs


def _named_as_base() -> set[Path]:
    out = set()
    for q in YAMLS:
        bases = (read_yaml(q, "config") or {}).get(BASE_KEY) or []
        out |= {(q.parent / b).resolve() for b in ([bases] if isinstance(bases, str) else bases)}
    return out


def _print_config(files: list[Path], capsys: pytest.CaptureFixture) -> str:
    args = ["fit", *itertools.chain.from_iterable(("--config", str(f)) for f in files),
            "--print_config"]
    with pytest.raises(SystemExit) as done:
        run_lightning(args)
    assert done.value.code in (0, None)
    return capsys.readouterr().out


def test_lightning_yamls_parse(capsys: pytest.CaptureFixture) -> None:
    """``satedge fit --print_config`` resolves every foundation, codec and SNN config (no run)."""
    runs = _lightning_configs()
    assert {_id(r[-1]) for r in runs} >= {"foundation/finetune_full_mae_long.yaml",
                                         "codec/split_5.yaml", "snn/t4.yaml"}
    for files in runs:
        printed = _print_config(files, capsys)
        assert "class_path: research.tasks" in printed, [_id(f) for f in files]


def test_stage_alone_equals_stage_over_its_base(capsys: pytest.CaptureFixture) -> None:
    """A stage names finetune_full.yaml as its ``_base_``: alone or after it, the same run."""
    f = EXPERIMENTS / "foundation"
    alone = _print_config([f / "finetune_full_mae_long.yaml"], capsys)
    both = _print_config([f / "finetune_full.yaml", f / "finetune_full_mae_long.yaml"], capsys)
    assert alone == both and "EMAWeightAveraging" in alone and "layer_decay: 0.75" in alone


def _lines(path: Path) -> list[str]:
    """Non-blank lines without comments (a ``#`` at the start or after a space)."""
    out = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.strip():
            out.append(line)
    return out


def _longest_shared_run(a: list[str], b: list[str]) -> tuple[int, int]:
    """Length of the longest run of identical consecutive lines of ``a`` and ``b``, its start in a."""
    best, start = 0, 0
    prev = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        cur = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best:
                    best, start = cur[j], i - cur[j]
        prev = cur
    return best, start


def test_no_copied_blocks_between_yamls() -> None:
    lines = {p: _lines(p) for p in YAMLS}
    copies = []
    for a, b in itertools.combinations(YAMLS, 2):
        n, start = _longest_shared_run(lines[a], lines[b])
        if n > MAX_SHARED:
            copies.append(f"{_id(a)} and {_id(b)}: {n} lines from {lines[a][start].strip()!r}")
    assert not copies, ("YAML blocks copied between files (move them to a _base_ file):\n  "
                        + "\n  ".join(copies))


def test_the_duplicate_check_sees_a_copy(tmp_path: Path) -> None:
    block = ["a:", "  b: 1  # comment", "  c: 2", "", "  d: 3", "  e: 4", "  f: 5"]
    (tmp_path / "x.yaml").write_text("\n".join(["x: 0", *block]))
    (tmp_path / "y.yaml").write_text("\n".join(["# header", *block, "y: 0"]))
    assert _longest_shared_run(_lines(tmp_path / "x.yaml"), _lines(tmp_path / "y.yaml")) == (6, 1)

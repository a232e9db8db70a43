"""``scripts/fig_snn_energy.py`` parses its options into the experiment's config. The experiment
itself: tests/eval/test_snn_energy.py."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from research.eval.snn_energy import SnnEnergyConfig
from research.paths import REPO_ROOT


def test_fig_snn_energy_help_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "fig_snn_energy.py"))
    with pytest.raises(SystemExit) as exit_:
        script["main"](["--help"])
    assert exit_.value.code == 0 and "--linear-steps" in capsys.readouterr().out
    config = script["parse_args"](["--quick", "--out", "x", "--steps", "1", "2", "--linear-steps"])
    assert config == SnnEnergyConfig(quick=True, out=Path("x"), steps=[1, 2],
                                     linear_steps=[]).with_defaults()
    with pytest.raises(SystemExit, match="run the full fine-tune first"):
        script["parse_args"](["--pretrained", "no/such/checkpoint.ckpt"])

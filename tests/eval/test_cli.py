"""``satedge evaluate`` writes the ledger, summary and figure; a bad file is a clear message."""

from __future__ import annotations

import yaml

from research.cli import main


def test_evaluate_cli_writes_files(raw_scenario, tmp_path, capsys):
    raw_scenario["schemes"] = raw_scenario["schemes"][:3]
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(raw_scenario))
    out = tmp_path / "run"
    assert main(["evaluate", "--config", str(config), "--out", str(out), "--captures", "4",
                 "--no-progress"]) == 0
    for name in ("ledger.csv", "summary.csv", "summary.json", "ledger.png", "ledger.pdf"):
        assert (out / name).stat().st_size > 0
    assert "split-identity" in capsys.readouterr().out


def test_evaluate_cli_reports_a_typo(raw_scenario, tmp_path, capsys):
    raw_scenario["captures"]["cuont"] = 3
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(raw_scenario))
    assert main(["evaluate", "--config", str(config)]) == 2
    assert "unknown key 'cuont'" in capsys.readouterr().err
    del raw_scenario["captures"]["cuont"]
    config.write_text(yaml.safe_dump(raw_scenario))
    assert main(["evaluate", "--config", str(config), "--set", "captures.cuont=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'cuont'" in err and "did you mean 'count'" in err and "s.yaml" in err

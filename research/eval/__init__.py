"""Per-inference evaluation: scenarios, schemes, the ledger and its report.

``satedge evaluate --config experiments/eval/demo.yaml`` runs every scheme of a scenario on the
same captures and writes one ledger row per inference (accuracy, bytes per link type, energy,
latency split into its parts); with a ``policy:`` section, per-capture policies (:mod:`research.opt`)
choose among the schemes for each capture.
"""

from research.eval.evaluate import (
    Capture,
    EvalResult,
    captures_for,
    evaluate,
    option_bank,
    simulate_policy,
    simulate_scheme,
    test_images,
)
from research.eval.ledger import LATENCY_PARTS, LedgerRow, check_row, summarise, write_ledger
from research.eval.scenario import EvalScenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "LATENCY_PARTS",
    "Capture",
    "EvalResult",
    "EvalScenario",
    "LedgerRow",
    "ScenarioError",
    "captures_for",
    "check_row",
    "evaluate",
    "load_scenario",
    "parse_scenario",
    "summarise",
    "option_bank",
    "simulate_policy",
    "simulate_scheme",
    "test_images",
    "write_ledger",
]

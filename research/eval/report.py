"""The ledger's summary as a terminal table and as a figure (PNG + PDF)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from research.figures import save_figure  # noqa: E402

__all__ = ["plot_summary", "print_summary"]


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "u")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def print_summary(summary: list[dict], title: str, reference: str | None = None,
                  console: Console | None = None) -> None:
    """One line per scheme: accuracy, bits, energy, latency (p50/p95) and bytes vs ``reference``.

    When the ledger priced the on-board ops on an event-driven profile, its compute energy gets a
    column of its own (beside the satellite accelerator's compute + transmit energy).
    """
    table = Table(title=title)
    event = all("energy_onboard_event_j" in s for s in summary) and bool(summary)
    cols = ["scheme", "acc", "bits/inf", "vs " + (reference or "-"), "on-board J/inf"]
    cols += ["event-driven compute J/inf"] if event else []
    for col in (*cols, "latency p50", "latency p95", "queue (mean)", "delivered"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    ref = next((s for s in summary if s["scheme"] == reference), None)
    for s in summary:
        ratio = (f"{s['payload_bytes'] / ref['payload_bytes']:.3f}x" if ref else "-")
        energy = [_si(s["energy_onboard_j"], "J")]
        energy += [_si(s["energy_onboard_event_j"], "J")] if event else []
        table.add_row(
            s["scheme"], f"{100 * s['accuracy']:.1f}%", _si(s["bits_per_inference"], "b"), ratio,
            *energy, _si(s["latency_p50_s"], "s"), _si(s["latency_p95_s"], "s"),
            _si(s["mean_queue_s"], "s"), f"{s['delivered']}/{s['inferences']}",
        )
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: wide enough that no column wraps
            console = Console(width=160)
    console.print(table)


def plot_summary(summary: list[dict], out: str | Path, title: str) -> list[Path]:
    """Four panels (accuracy, bits, energy, p50/p95 latency) per scheme; writes PNG and PDF."""
    names = [s["scheme"] for s in summary]
    fig, axes = plt.subplots(1, 4, figsize=(16, 0.45 * len(names) + 1.8), sharey=True)
    panels = (
        ("accuracy (%)", [100 * s["accuracy"] for s in summary], False),
        ("bits per inference", [s["bits_per_inference"] for s in summary], True),
        ("on-board energy per inference (J)", [s["energy_onboard_j"] for s in summary], True),
    )
    y = range(len(names))
    for ax, (label, values, log) in zip(axes[:3], panels, strict=True):
        ax.barh(list(y), values, color="tab:blue")
        ax.set_xlabel(label)
        if log:
            ax.set_xscale("log")
    ax = axes[3]
    # markers joined by a line, not bars: a bar on a log axis starts at an arbitrary limit
    p50, p95 = [s["latency_p50_s"] for s in summary], [s["latency_p95_s"] for s in summary]
    ax.hlines(list(y), p50, p95, color="0.6", lw=1.5)
    ax.plot(p50, list(y), "o", color="tab:blue", label="p50")
    ax.plot(p95, list(y), ">", color="tab:orange", label="p95")
    if max(p95) > 20 * min(p50):  # decades apart (say ISL against waiting for a contact)
        ax.set_xscale("log")
    else:  # within a decade a log axis has no labelled tick: linear from zero
        ax.set_xlim(0, 1.05 * max(p95))
    ax.set_xlabel("latency capture -> answer on ground (s)")
    # above the panel: inside, it hides the bottom schemes' bars
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False)
    axes[0].set_yticks(list(y), names)
    axes[0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out, "ledger")

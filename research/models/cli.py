"""``satedge profile``: measured cost of each part of a split ViT at every (or one) split index."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from research.models.presets import build_backbone, list_backbones
from research.models.profile import profile_split
from research.models.split_vit import SplitViT


def profile_rows(backbone: str, split_indices: list[int] | None, head_placement: str) -> list[dict]:
    """One row per split index: satellite/ground/head FLOPs and params, bytes crossing the cut."""
    vit = build_backbone(backbone)
    indices = split_indices if split_indices is not None else list(range(len(vit.blocks) + 1))
    rows = []
    for k in indices:
        prof = profile_split(SplitViT(vit, k, head_placement))
        on_board = prof.on_board()
        rows.append({
            "backbone": backbone,
            "split_index": k,
            "head_placement": head_placement,
            "on_board_params": on_board.params,
            "on_board_param_bytes": on_board.param_bytes,
            "on_board_flops": on_board.flops,
            "ground_flops": prof.part("ground").flops,
            "head_flops": prof.part("head").flops,
            "cut_shape": list(prof.cut_shape),
            "cut_bytes_float32": prof.cut_bytes_float32,
            "return_bytes_float32": prof.return_bytes_float32,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="satedge profile", description=__doc__)
    parser.add_argument("--backbone", default="satvit_small", choices=list_backbones())
    parser.add_argument("--split-index", type=int, nargs="*", default=None)
    parser.add_argument("--head-placement", default="satellite", choices=["satellite", "ground"])
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    try:
        rows = profile_rows(args.backbone, args.split_index, args.head_placement)
    except ValueError as err:
        parser.error(str(err))
    table = Table(title=f"{args.backbone}: per-image cost of each part (FlopCounterMode)")
    for col in ("split", "on-board params", "on-board MFLOPs", "ground MFLOPs", "cut (float32)", "return"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["split_index"]), f"{r['on_board_params']:,}", f"{r['on_board_flops'] / 1e6:.1f}",
            f"{r['ground_flops'] / 1e6:.1f}", f"{r['cut_bytes_float32']:,} B", f"{r['return_bytes_float32']:,} B",
        )
    Console().print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0

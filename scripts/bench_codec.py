"""Encode and decode time per image of every registered link, next to the satellite part's forward.

The on-board budget is the satellite part plus ``compress``; the ground pays ``decompress``. All
three are timed in the same run on the same tokens (real EuroSAT tiles from the embedded subset),
alternating per repetition so that machine load hits them alike; medians are reported per image.
Learned codecs are untrained here (their speed does not depend on training).

    python scripts/bench_codec.py --quick                # satvit_tiny, seconds
    python scripts/bench_codec.py --split-index 3        # satvit_small, cut after block 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import snn.link  # noqa: F401  (registers the "spike" link)
from encoders import build_for_cut, list_links, payload_bits
from research.data.embedded import load_embedded
from research.data.transforms import normalize
from research.models.presets import build_backbone, get_preset
from research.models.split_vit import SplitViT


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


@torch.no_grad()
def bench(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    preset = get_preset(args.backbone)
    model = SplitViT(build_backbone(args.backbone), args.split_index).eval()
    data = load_embedded()
    images = normalize(data.images[: args.batch_size], [0.5] * 3, [0.25] * 3)
    num_tokens = (preset.img_size // preset.patch_size) ** 2
    results = {}
    for name in args.links or list_links():
        link = build_for_cut(name, preset.embed_dim, num_tokens,
                             {"latent_dim": args.latent_dim}).eval()
        link.update(force=True)
        sat, enc, dec, sizes = [], [], [], None
        for _ in range(args.warmup + args.reps):
            tokens, t_sat = _timed(model.satellite_part, images)
            payloads, t_enc = _timed(link.compress, tokens)
            _, t_dec = _timed(link.decompress, payloads, tokens.shape)
            sat.append(t_sat)
            enc.append(t_enc)
            dec.append(t_dec)
            sizes = payload_bits(payloads) / 8
        n = len(images)
        per_image = {
            key: 1e3 * statistics.median(values[args.warmup :]) / n
            for key, values in (("satellite_ms", sat), ("encode_ms", enc), ("decode_ms", dec))
        }
        per_image["encode_over_satellite"] = per_image["encode_ms"] / per_image["satellite_ms"]
        per_image["bytes_per_inference"] = float(sizes.mean())
        results[name] = per_image
        print(f"{name:>10}: satellite {per_image['satellite_ms']:7.3f} ms  encode "
              f"{per_image['encode_ms']:7.3f} ms  decode {per_image['decode_ms']:7.3f} ms  "
              f"({per_image['encode_over_satellite']:.2f}x sat)  {per_image['bytes_per_inference']:.0f} B",
              flush=True)
    return {
        "backbone": args.backbone, "split_index": args.split_index, "batch_size": len(images),
        "threads": torch.get_num_threads(), "reps": args.reps, "per_image": results,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="satvit_tiny, 8 images, 2 repetitions")
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--split-index", type=int, default=0)
    parser.add_argument("--links", nargs="+", default=None, help="default: every registered link")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/bench_codec.json"))
    args = parser.parse_args(argv)
    quick = {"backbone": "satvit_tiny", "batch_size": 8, "reps": 2}
    full = {"backbone": "satvit_small", "batch_size": 64, "reps": 5}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    record = bench(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()

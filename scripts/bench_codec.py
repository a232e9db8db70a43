"""Encode and decode time per image of every registered link, next to the satellite part's forward.

The on-board budget is the satellite part plus ``compress``; the ground pays ``decompress``. All
three are timed in the same run on the same tokens (real EuroSAT tiles from the embedded subset),
alternating per repetition so that machine load hits them alike; medians are reported per image.
Learned codecs are untrained here unless ``--checkpoint`` gives a trained codec (the entropy
coder's time grows with the symbols it codes, so a trained student is timed from its checkpoint).
Image formats (``--image-formats``) are timed encoding the uint8 tiles with Pillow, next to the
same satellite part. One CPU thread by default: the on-board budget of issue 22 is one core.

    python scripts/bench_codec.py --quick                # satvit_tiny, seconds
    python scripts/bench_codec.py --split-index 3        # satvit_small, cut after block 3
    python scripts/bench_codec.py --links int8 student \
        --checkpoint checkpoints/satvit_small_student_split0.ckpt \
        --out results/bench_codec_split0.json            # the student against the patch embedding
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import snn.link  # noqa: F401  (registers the "spike" link)
from encoders import build_for_cut, list_links, payload_bits
from encoders.images import encode_image
from research.data.embedded import load_embedded
from research.data.transforms import normalize
from research.models.presets import build_backbone, get_preset
from research.models.split_vit import SplitViT
from research.tasks.loading import load_classifier


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


@torch.no_grad()
def bench(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    preset = get_preset(args.backbone)
    torch.set_num_threads(args.threads)
    model = SplitViT(build_backbone(args.backbone), args.split_index).eval()
    trained = load_classifier(args.checkpoint).model.link if args.checkpoint else None
    data = load_embedded()
    tiles = data.images[: args.batch_size]
    images = normalize(tiles, [0.5] * 3, [0.25] * 3)
    num_tokens = (preset.img_size // preset.patch_size) ** 2
    results = {}
    for name in args.links or list_links():
        if trained is not None and name == trained.link_name:
            link = trained.eval()
        else:
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
    for fmt, quality in _image_settings(args.image_formats):
        sat, enc, sizes = [], [], []
        for _ in range(args.warmup + args.reps):
            _, t_sat = _timed(model.satellite_part, images)
            sizes, t_enc = _timed(_encode_tiles, tiles, fmt, quality)
            sat.append(t_sat)
            enc.append(t_enc)
        n = len(images)
        per_image = {key: 1e3 * statistics.median(values[args.warmup :]) / n
                     for key, values in (("satellite_ms", sat), ("encode_ms", enc))}
        per_image["encode_over_satellite"] = per_image["encode_ms"] / per_image["satellite_ms"]
        per_image["bytes_per_inference"] = sum(sizes) / n
        label = f"{fmt}" + (f" q{quality}" if quality else "")
        results[label] = per_image
        print(f"{label:>10}: satellite {per_image['satellite_ms']:7.3f} ms  encode "
              f"{per_image['encode_ms']:7.3f} ms  ({per_image['encode_over_satellite']:.2f}x sat, "
              f"pixels, not after the satellite part)  {per_image['bytes_per_inference']:.0f} B", flush=True)
    return {
        "command": "python scripts/bench_codec.py " + " ".join(args.argv),
        "checkpoint": args.checkpoint,
        "backbone": args.backbone, "split_index": args.split_index, "batch_size": len(images),
        "threads": torch.get_num_threads(), "reps": args.reps, "per_image": results,
    }


def _image_settings(names: list[str]) -> list[tuple[str, int | None]]:
    """``jpeg90`` -> ("jpeg", 90); ``png`` -> ("png", None)."""
    out = []
    for name in names:
        fmt = name.rstrip("0123456789").lower()
        if fmt not in ("jpeg", "webp", "png"):
            raise ValueError(f"--image-formats {name!r}; expected jpeg<quality>, webp<quality> or png")
        out.append((fmt, int(name[len(fmt):]) if name[len(fmt):] else None))
    return out


def _encode_tiles(tiles: torch.Tensor, fmt: str, quality: int | None) -> list[int]:
    """Bytes of each uint8 tile ``[C, H, W]`` encoded by Pillow (encode only: the satellite's work)."""
    return [len(encode_image(tile, fmt, quality or 75)) for tile in tiles]


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
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the target: one core)")
    parser.add_argument("--checkpoint", default=None,
                        help="CodecTask checkpoint: time its trained link under its own name")
    parser.add_argument("--image-formats", nargs="*", default=["jpeg90", "webp90", "png"],
                        help="Pillow formats to time on the same tiles (jpeg<q>, webp<q>, png)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/bench_codec.json"))
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    quick = {"backbone": "satvit_tiny", "batch_size": 8, "reps": 2}
    full = {"backbone": "satvit_small", "batch_size": 64, "reps": 5}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    threads = torch.get_num_threads()
    try:
        record = bench(args)
    finally:
        torch.set_num_threads(threads)  # a caller in the same process keeps its own
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()

"""Slim a training checkpoint into a committed one (weights only, fp16) and record its sha256.

    python scripts/export_checkpoint.py mae  outputs/pretrain_mae/.../last.ckpt checkpoints/satvit_small_mae.pt
    python scripts/export_checkpoint.py task outputs/finetune_full/.../full-epoch=09.ckpt checkpoints/satvit_small_full.ckpt
    python scripts/export_checkpoint.py task a.ckpt b.ckpt checkpoints/soup.ckpt   # weight average of a and b
    python scripts/export_checkpoint.py task gpu.ckpt out.ckpt --set pretrained=checkpoints/x.pt \
        --set-data root=../shared/data/eurosat_rgb   # paths of the training machine -> this repo's

``mae`` writes the encoder's state dict (what ``ClassificationTask(pretrained=...)`` loads);
``task`` writes a Lightning checkpoint without optimizer or loop state, which
``satedge test --ckpt_path`` restores (weights, hyper-parameters, data normalisation). Several
``task`` sources are averaged weight by weight first (a model soup of runs from one start).
``codec`` is ``task`` for a ``CodecTask``: its link module stays float32, because the entropy
coder's tables and transforms must match the ones that wrote a bitstream bit for bit.

    python scripts/export_checkpoint.py codec "results/rate_accuracy/codecs/split5_<setting>.ckpt" checkpoints/satvit_small_codec_split5_m8.ckpt
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
import yaml

from research.models.weights import (
    average_task_checkpoints,
    mae_encoder_weights,
    set_saved_hyperparameters,
    slim_task_checkpoint,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with the value read as YAML (``null``, numbers, strings)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["mae", "task", "codec"])
    parser.add_argument("source", type=Path, nargs="+", help="one checkpoint, or several task ones to average")
    parser.add_argument("target", type=Path)
    parser.add_argument("--note", default="", help="what made the source (command), kept in the manifest")
    parser.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="task/codec: overwrite a saved model hyper-parameter (e.g. pretrained=...)")
    parser.add_argument("--keep-float32", action="append", default=[], metavar="PREFIX",
                        help="task/codec: weights under PREFIX stay float32 (e.g. spiking blocks, "
                             "whose spikes flip under fp16 rounding: model.vit.blocks.0.)")
    parser.add_argument("--set-data", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="task/codec: overwrite a saved datamodule hyper-parameter (e.g. root=...)")
    args = parser.parse_args()
    if args.kind == "mae" and len(args.source) > 1:
        parser.error("mae: expected one source checkpoint")
    if args.kind == "mae" and (args.set or args.set_data):
        parser.error("--set/--set-data apply to task and codec checkpoints only")
    missing = [str(source) for source in args.source if not source.is_file()]
    if missing:
        parser.error(f"no such checkpoint: {', '.join(missing)}")
    ckpts = [torch.load(source, map_location="cpu", weights_only=False) for source in args.source]
    ckpt = ckpts[0] if len(ckpts) == 1 else average_task_checkpoints(ckpts)
    if args.kind == "mae":
        slim = mae_encoder_weights(ckpt)
    else:
        keep = (("model.link.",) if args.kind == "codec" else ()) + tuple(args.keep_float32)
        slim = slim_task_checkpoint(ckpt, keep)
    try:
        if args.set:
            set_saved_hyperparameters(slim, "hyper_parameters", dict(args.set))
        if args.set_data:
            set_saved_hyperparameters(slim, "datamodule_hyper_parameters", dict(args.set_data))
    except KeyError as error:
        parser.error(str(error.args[0]))
    args.target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(slim, args.target)
    digest = sha256(args.target)
    manifest_path = args.target.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[args.target.name] = {
        "sha256": digest,
        "bytes": args.target.stat().st_size,
        "kind": args.kind,
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "made_by": args.note,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"{args.target} {args.target.stat().st_size} bytes sha256 {digest}")


if __name__ == "__main__":
    main()

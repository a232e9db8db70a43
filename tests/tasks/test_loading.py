"""load_classifier rebuilds a committed checkpoint as a plain SplitViT."""

import pytest
import torch

from research.data.embedded import load_embedded
from research.paths import checkpoints_dir
from research.tasks.loading import load_classifier

CKPT = checkpoints_dir() / "satvit_small_full.ckpt"


@pytest.mark.skipif(not CKPT.exists(), reason="committed checkpoint missing")
def test_recut_model_gives_the_same_predictions():
    data = load_embedded()
    images = data.images[:40]
    a = load_classifier(CKPT)
    b = load_classifier(CKPT, split_index=3)
    assert b.model.split_index == 3
    torch.testing.assert_close(a.model(a.normalize(images)), b.model(b.normalize(images)),
                               atol=1e-4, rtol=1e-4)
    assert (a.predict(images) == data.labels[:40]).float().mean() > 0.6


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_classifier(tmp_path / "nope.ckpt")
    bad = tmp_path / "bad.ckpt"
    torch.save({"x": 1}, bad)
    with pytest.raises(ValueError, match="not a ClassificationTask checkpoint"):
        load_classifier(bad)


def test_codec_checkpoint_with_its_parents_hyperparameters_loads(tmp_path):
    """CodecTask checkpoints written while it subclassed ClassificationTask carry its arguments
    too (``layer_decay``, ...)."""
    from research.tasks.codec import CodecTask

    task = CodecTask(backbone="satvit_tiny", codec="int8", split_index=1)
    hparams = dict(task.hparams, layer_decay=0.75)
    path = tmp_path / "codec.ckpt"
    torch.save({"hyper_parameters": hparams, "state_dict": task.state_dict(),
                "EuroSATDataModule": {"mean": [0.5] * 3, "std": [0.25] * 3}}, path)
    clf = load_classifier(path)
    assert clf.model.split_index == 1 and clf.hparams["layer_decay"] == 0.75

"""Worked example (README, "Adding a codec"): a new codec is one file and one test.

``BFloat16Link`` below is everything a new codec needs. In a real addition it is its own file,
``encoders/bfloat16.py``, with the decorator on the class::

    @register_link("bfloat16", codec_id=4)  # next free id in 0..127, never reused
    class BFloat16Link(LinkModule): ...

The registry imports every module of ``encoders`` on first use, so nothing else changes: the
payload header, ``CodecTask(codec="bfloat16")``, the evaluation schemes and the registry-wide
tests (``test_link_registry.py``) all find it by name. The tests below show each of them taking
it with no other edit. Here, outside ``encoders``, it takes a plugin id (128..255), and it is
registered only while this module's tests run so that other test modules see the shipped
registry (``register_link`` is applied in a fixture rather than on the class for that reason).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest
import torch

from encoders import (
    CODEC_IDS,
    HEADER_SIZE,
    LinkModule,
    build_link,
    link_spec,
    list_links,
    register_link,
    unregister_link,
)
from encoders.baselines import straight_through
from encoders.header import FLAG_ZLIB, Header

NAME, CODEC_ID = "bfloat16", 250


# ----------------------------------------------------------------- the new file: the codec
class BFloat16Link(LinkModule):
    """Tokens rounded to bfloat16 (float32's range, 8 mantissa bits), then deflated with zlib.

    Args:
        zlib_level: zlib level of the lossless back end (0 stores the raw 2-byte values).
    """

    flag_mask = FLAG_ZLIB  # the only header flag this link writes

    def __init__(self, zlib_level: int = 9) -> None:
        super().__init__()
        self.zlib_level = zlib_level

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:
        rounded = tokens.to(torch.bfloat16).to(tokens.dtype)
        return {"y_hat": straight_through(tokens, rounded), "likelihoods": {}}

    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:
        raw = tokens.float().to(torch.bfloat16).view(torch.int16).cpu().numpy().astype("<i2")
        out = []
        for sample in raw:
            body = sample.tobytes()
            packed = zlib.compress(body, self.zlib_level) if self.zlib_level else body
            out.append((packed, FLAG_ZLIB) if len(packed) < len(body) else (body, 0))
        return out

    def _decode(
        self, parsed: list[tuple[Header, bytes]], num_tokens: int, dim: int
    ) -> torch.Tensor:
        samples = []
        for i, (head, body) in enumerate(parsed):
            if head.flags & FLAG_ZLIB:
                try:
                    body = zlib.decompress(body)
                except zlib.error as err:
                    raise ValueError(f"bfloat16 payload {i}: body does not inflate ({err})") from err
            if len(body) != 2 * num_tokens * dim:
                raise ValueError(f"bfloat16 payload {i}: {len(body)} bytes, expected {2 * num_tokens * dim}")
            values = torch.from_numpy(np.frombuffer(body, dtype="<i2").astype(np.int16))
            samples.append(values.view(torch.bfloat16).float().view(num_tokens, dim))
        return torch.stack(samples).to(self._device())


# ----------------------------------------------------------------- the new test
@pytest.fixture(autouse=True)
def registered():
    """What the decorator does at import in ``encoders/bfloat16.py``, undone after each test."""
    register_link(NAME, codec_id=CODEC_ID)(BFloat16Link)
    yield
    unregister_link(NAME)


def test_the_registry_lists_it():
    assert NAME in list_links() and CODEC_IDS[NAME] == CODEC_ID
    spec = link_spec(NAME)
    assert spec.cls is BFloat16Link and not spec.learned and not spec.lossless
    assert isinstance(build_link(NAME, zlib_level=1), BFloat16Link)


def test_it_meets_the_registry_wide_contract(check_entry):
    """Round trip, header, refusal of foreign and damaged payloads: what every entry passes."""
    check_entry(NAME)


def test_the_header_names_it(tokens):
    payload = build_link(NAME).compress(tokens)[0]
    assert payload[3] == CODEC_ID and len(payload) <= HEADER_SIZE + 2 * tokens[0].numel()
    with pytest.raises(ValueError, match="encoded by codec 'bfloat16', expected 'int8'"):
        build_link("int8").decompress([payload], tokens.shape[1:])


def test_codec_task_builds_it_by_name():
    from research.tasks.codec import CodecTask

    torch.manual_seed(0)
    task = CodecTask(backbone="satvit_tiny", codec=NAME, split_index=1,
                     codec_options={"zlib_level": 1})  # a link-specific option, set exactly
    assert isinstance(task.link, BFloat16Link) and task.link.zlib_level == 1
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    assert torch.isfinite(task._losses(images, labels)["loss"])
    tokens = task.model.cut_tokens(images)
    decoded = task.link.decompress(task.link.compress(tokens), tokens.shape)
    assert task.model.head(task.model.ground_part(decoded)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"link 'bfloat16' takes no argument \['zlib'\]"):
        CodecTask(backbone="satvit_tiny", codec=NAME, codec_options={"zlib": 1})


def test_the_evaluation_scheme_takes_it():
    from research.eval.scenario import ScenarioError, parse_scenario
    from research.eval.schemes import SplitScheme, build_scheme
    from research.models.presets import build_backbone
    from research.models.split_vit import SplitViT
    from research.paths import DEFAULT_CLASSIFIER
    from research.tasks import Classifier

    raw = {"orbit": "experiments/orbit/demo_6x11.yaml", "model": {"checkpoint": DEFAULT_CLASSIFIER},
           "schemes": [{"name": "split-bf16", "kind": "split", "link": NAME}]}
    spec = parse_scenario(raw).schemes[0]
    torch.manual_seed(0)
    model = SplitViT(build_backbone("satvit_tiny"), split_index=1).eval()
    clf = Classifier(model, [0.5] * 3, [0.25] * 3, {"backbone": "satvit_tiny"}, DEFAULT_CLASSIFIER)
    scheme = build_scheme(spec, clf)
    assert isinstance(scheme, SplitScheme) and isinstance(scheme.link, BFloat16Link)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    out = scheme.run(images)
    assert out.predictions.shape == (2,) and (out.payload_bytes > HEADER_SIZE).all()
    # a learned link needs a trained checkpoint; the error lists the training-free ones, this one too
    raw["schemes"][0]["link"] = "factorized"
    with pytest.raises(ScenarioError, match="expected a training-free link, one of .*'bfloat16'"):
        parse_scenario(raw)

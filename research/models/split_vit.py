"""SplitViT: a timm ViT cut into a satellite part, a link module, a ground part and a task head.

``split_index`` 0 cuts right after the patch embedding (the paper's architecture: embedding and
head on board, encoder on the ground); ``k`` cuts after block ``k``. Composing the parts equals the
unsplit model exactly when the link is the identity.
"""

from __future__ import annotations

from typing import Literal

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from encoders.base import IdentityLink, LinkModule

HeadPlacement = Literal["satellite", "ground"]


class SplitViT(nn.Module):
    """A ViT with a cut at ``split_index`` and a pluggable link module at the cut.

    Args:
        vit: a timm ``VisionTransformer`` with global average pooling and no class token.
        split_index: number of transformer blocks on the satellite (0..depth).
        head_placement: where the task head runs; ``"satellite"`` means the pooled features
            cross back from the ground to the satellite (the paper's split).
        link: module at the cut (identity by default).
        gradient_link: what the cut's gradient crosses back through when the model trains by
            split learning (a training-free link: identity is float32; never used in inference).
    """

    def __init__(
        self,
        vit: VisionTransformer,
        split_index: int = 0,
        head_placement: HeadPlacement = "satellite",
        link: LinkModule | None = None,
        gradient_link: LinkModule | None = None,
    ) -> None:
        super().__init__()
        depth = len(vit.blocks)
        if not isinstance(split_index, int) or not 0 <= split_index <= depth:
            raise ValueError(
                f"split_index={split_index!r} is out of range; expected an integer in 0..{depth} "
                f"(0 = after patch embedding, {depth} = after the last block)"
            )
        if head_placement not in ("satellite", "ground"):
            raise ValueError(f"head_placement={head_placement!r}; expected 'satellite' or 'ground'")
        if vit.cls_token is not None or vit.global_pool != "avg":
            raise ValueError("SplitViT expects a ViT with global_pool='avg' and no class token")
        self.vit = vit
        self.split_index = split_index
        self.head_placement = head_placement
        self.link = link if link is not None else IdentityLink()
        self.gradient_link = gradient_link if gradient_link is not None else IdentityLink()

    @property
    def depth(self) -> int:
        return len(self.vit.blocks)

    @property
    def embed_dim(self) -> int:
        return self.vit.embed_dim

    @property
    def num_tokens(self) -> int:
        return self.vit.patch_embed.num_patches

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` to the tokens ``[B, N, D]`` entering the first block."""
        v = self.vit
        return v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(images))))

    def satellite_part(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` to the tokens ``[B, N, D]`` that cross the cut."""
        x = self.embed(images)
        for block in self.vit.blocks[: self.split_index]:
            x = block(x)
        return x

    def ground_part(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens after the cut to pooled features ``[B, D]`` (the input of the task head)."""
        v = self.vit
        x = tokens
        for block in v.blocks[self.split_index :]:
            x = block(x)
        x = v.norm(x)
        return v.pool(x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features to class logits (``fc_norm`` + linear classifier)."""
        v = self.vit
        return v.head(v.head_drop(v.fc_norm(features)))

    def head_modules(self) -> list[nn.Module]:
        """The modules that form the task head (trained in head-only fine-tuning)."""
        return [self.vit.fc_norm, self.vit.head]

    def cut_tokens(self, inputs: torch.Tensor) -> torch.Tensor:
        """Tokens at the cut from images ``[B, C, H, W]``, or ``inputs`` itself if it already holds
        them (``[B, N, D]``, e.g. from a :class:`~research.data.features.FeatureDataModule`)."""
        if inputs.dim() == 4:
            return self.satellite_part(inputs)
        if inputs.dim() == 3 and tuple(inputs.shape[1:]) == (self.num_tokens, self.embed_dim):
            return inputs
        raise ValueError(
            f"expected images [B, C, H, W] or cut tokens [B, {self.num_tokens}, {self.embed_dim}], "
            f"got a tensor of shape {list(inputs.shape)}"
        )

    def forward_parts(self, inputs: torch.Tensor) -> dict[str, object]:
        """Run every part; returns tokens, link output (``y_hat``, ``likelihoods``), features, logits.

        ``inputs`` are images, or the tokens at the cut (then the satellite part is skipped).
        """
        tokens = self.cut_tokens(inputs)
        link_out = self.link(tokens)
        features = self.ground_part(link_out["y_hat"])
        return {
            "tokens": tokens,
            "y_hat": link_out["y_hat"],
            "likelihoods": link_out["likelihoods"],
            "features": features,
            "logits": self.head(features),
        }

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(images)["logits"]


class OnBoard(nn.Module):
    """Everything a split satellite runs: patch embedding, blocks before the cut, link encoder,
    and the head when it is placed on board.

    The parts are children, so :func:`snn.count_ops` counts them and nothing on the ground.
    ``forward`` keeps the cut tokens and payloads it produced, so a caller can decode them
    without running the satellite part twice. An on-board head runs on features of the
    uncompressed tokens (its dense ops do not depend on the values), so the link's decoder is
    never called here and never counted.
    """

    def __init__(self, model: SplitViT, link: LinkModule) -> None:
        super().__init__()
        self.patch_embed = model.vit.patch_embed
        self.blocks = nn.ModuleList(model.vit.blocks[: model.split_index])
        self.link = link
        on_board = model.head_placement == "satellite"
        self.head = nn.ModuleList(model.head_modules() if on_board else [])
        self._model = [model]  # not a child: its ground modules must not be counted
        self.tokens: torch.Tensor | None = None
        self.payloads: list[bytes] = []
        self.train(model.training)  # count_ops restores this mode on the shared modules

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        model = self._model[0]
        self.tokens = model.satellite_part(images)
        self.payloads = self.link.compress(self.tokens)
        if len(self.head):
            model.head(model.ground_part(self.tokens))
        return self.tokens


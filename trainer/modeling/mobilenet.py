"""MobileNetV2 as nsfwjs ships it: Keras 2.2.4's MobileNetV2 (width 1.0, 224 px) with nsfwjs's
head (7x7 average pool -> dense 256 ReLU -> dense 128 ReLU -> dense 5 softmax).

Keras details kept exactly: stride-2 convolutions see an explicit zero padding of one row/column
at the bottom/right only (ZeroPadding2D ((0, 1), (0, 1))), stride-1 3x3 convolutions pad 1 on all
sides ("same"), BatchNorm epsilon is 1e-3, activations are ReLU6, and dropout is identity at
inference. BatchNorm is kept unfolded so every Keras tensor has one home in the state dict.

Input: pixel values in [0, 1], NCHW, 224 x 224, resized as nsfwjs does (see `preprocess`).
Outputs: class probabilities, and the last feature map (`out_relu`, after ReLU6) as rows
[batch, grid * grid, channels], row index y * grid + x: the vision-encoder output of a VLM.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .config import NSFW_CLASSES, MobileNetConfig  # noqa: F401  (the config lives beside LLaVA's; re-exported)

# (expansion t, output channels c, repeats n, first stride s): MobileNetV2 paper, table 2.
INVERTED_RESIDUALS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetOutput(NamedTuple):
    probs: torch.Tensor  # [batch, classes], softmax of logits
    logits: torch.Tensor  # [batch, classes], dense_3 before its softmax
    feature_rows: torch.Tensor  # [batch, grid * grid, channels], row-major over the grid


class FrozenBatchNorm2d(nn.Module):
    """Inference-only BatchNorm: the stored statistics always, whatever train() says, and no step
    counter. State-dict names are nn.BatchNorm2d's (weight, bias, running_mean, running_var)."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class ConvBn(nn.Module):
    """Conv (no bias) -> BatchNorm -> optional ReLU6. A 3x3 stride-2 conv first pads one zero
    column right and one zero row below (Keras ZeroPadding2D ((0, 1), (0, 1)), then "valid");
    a 3x3 stride-1 conv pads one on every side (Keras "same")."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int, relu: bool, eps: float):
        super().__init__()
        same = kernel == 3 and stride == 1
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=1 if same else 0, groups=groups, bias=False)
        self.bn = FrozenBatchNorm2d(cout, eps)
        self.relu = relu
        self.pad_bottom_right = kernel == 3 and stride == 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_bottom_right:
            x = F.pad(x, (0, 1, 0, 1))
        x = self.bn(self.conv(x))
        return F.relu6(x) if self.relu else x


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int, eps: float):
        super().__init__()
        mid = cin * expansion
        self.expand = ConvBn(cin, mid, 1, 1, 1, True, eps) if expansion != 1 else None
        self.depthwise = ConvBn(mid, mid, 3, stride, mid, True, eps)
        self.project = ConvBn(mid, cout, 1, 1, 1, False, eps)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class NsfwMobileNetV2(nn.Module):
    """A frozen tower: BatchNorm always uses its stored statistics (they never move), and `train()`
    keeps the module in eval mode all the same."""

    def __init__(self, cfg: MobileNetConfig):
        super().__init__()
        self.config = cfg
        eps = cfg.batch_norm_eps
        self.stem = ConvBn(cfg.num_channels, cfg.stem_channels, 3, 2, 1, True, eps)
        blocks, cin = [], cfg.stem_channels
        for expansion, cout, repeats, stride in INVERTED_RESIDUALS:
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion, eps))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.last = ConvBn(cin, cfg.last_channels, 1, 1, 1, True, eps)
        sizes = [cfg.last_channels, *cfg.head_hidden_sizes, len(cfg.class_names)]
        self.classifier = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.eval()

    def train(self, mode: bool = True) -> NsfwMobileNetV2:
        return super().train(False)

    def feature_map(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[batch, channels, grid, grid] after the last ReLU6 (Keras layer `out_relu`)."""
        size = self.config.image_size
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (self.config.num_channels, size, size):
            raise ValueError(
                f"pixel_values must be [batch, {self.config.num_channels}, {size}, {size}], "
                f"got {list(pixel_values.shape)}"
            )
        x = self.stem(pixel_values.to(self.stem.conv.weight.dtype))
        for block in self.blocks:
            x = block(x)
        return self.last(x)

    def feature_rows(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[batch, grid * grid, channels]: the feature map as rows, without the classifier head."""
        return self.feature_map(pixel_values).flatten(2).transpose(1, 2)

    def forward(self, pixel_values: torch.Tensor) -> MobileNetOutput:
        fmap = self.feature_map(pixel_values)
        x = fmap.mean(dim=(2, 3))  # AveragePooling2D 7x7 "valid" on a 7x7 map, then Flatten
        for i, layer in enumerate(self.classifier):
            x = layer(x)
            if i < len(self.classifier) - 1:
                x = F.relu(x)
        rows = fmap.flatten(2).transpose(1, 2)
        return MobileNetOutput(torch.softmax(x.float(), dim=-1), x, rows)


def preprocess(rgb: torch.Tensor, image_size: int = 224) -> torch.Tensor:
    """uint8 RGB [H, W, 3] or [B, H, W, 3] -> float NCHW in [0, 1] at image_size, as nsfwjs's
    `infer` does it: divide by 255 first, then (only if the size differs) bilinear resize with
    align_corners=True."""
    x = rgb.unsqueeze(0) if rgb.dim() == 3 else rgb
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected RGB pixels [H, W, 3] or [B, H, W, 3], got {list(rgb.shape)}")
    x = (x.float() / 255.0).permute(0, 3, 1, 2)
    if tuple(x.shape[2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=True)
    return x.contiguous()

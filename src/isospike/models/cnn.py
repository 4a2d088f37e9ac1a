"""Reference convolutional networks built from ordinary torch layers.

Pooling is average pooling by default: it is linear, so rate-coded spike trains pass through
it unchanged in meaning (max pooling of spike trains is not the max of their rates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

Pool = Literal["avg", "max"]


def _pool(kind: Pool) -> nn.Module:
    if kind == "avg":
        return nn.AvgPool2d(2)
    if kind == "max":
        return nn.MaxPool2d(2)
    raise ValueError(f"pool must be 'avg' or 'max', got {kind!r}")


class SmallCNN(nn.Sequential):
    """A small CNN for 8x8 (digits) or 28x28 (MNIST-like) single- or multi-channel images.

    conv3x3(c1)-BN-ReLU-[pool]-conv3x3(c2)-BN-ReLU-pool-flatten-linear(hidden)-ReLU-linear(classes).
    The first pooling is used only for inputs of 16 pixels or more (28x28 -> 14 -> 7; 8x8 -> 8 -> 4).
    Input ``[batch, in_channels, H, W]`` float32, output logits ``[batch, num_classes]``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 8,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 64,
        pool: Pool = "avg",
    ) -> None:
        if input_size < 4:
            raise ValueError(f"input_size must be >= 4, got {input_size}")
        c1, c2 = channels
        early_pool = input_size >= 16
        side = input_size // 2 if early_pool else input_size
        side //= 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
        ]
        if early_pool:
            layers.append(_pool(pool))
        layers += [
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(), _pool(pool),
            nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU(), nn.Linear(hidden, num_classes),
        ]
        super().__init__(*layers)
        self.input_size = input_size


VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "P", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"],
    "vgg16": [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"],
    # A narrow VGG that trains on a CPU in minutes; same structure, fewer channels.
    "vgg-small": [32, 32, "P", 64, 64, "P", 128, 128, "P"],
}


class VGG(nn.Module):
    """VGG-style network for 32x32 images (CIFAR): conv3x3-BN-ReLU blocks separated by 2x2
    pooling, global average pooling, then a linear classifier.

    ``config`` is a name in :data:`VGG_CONFIGS` or a list of channel counts and ``"P"`` (pool).
    Input ``[batch, in_channels, 32, 32]`` float32 (other sizes work if divisible by the pools),
    output logits ``[batch, num_classes]``.
    """

    def __init__(
        self,
        config: str | Sequence[int | str] = "vgg-small",
        in_channels: int = 3,
        num_classes: int = 10,
        pool: Pool = "avg",
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        cfg = VGG_CONFIGS[config] if isinstance(config, str) else list(config)
        layers: list[nn.Module] = []
        c = in_channels
        for item in cfg:
            if item == "P":
                layers.append(_pool(pool))
            else:
                layers += [nn.Conv2d(c, int(item), 3, padding=1, bias=False), nn.BatchNorm2d(int(item)), nn.ReLU()]
                c = int(item)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        if hidden:
            self.classifier = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        else:
            self.classifier = nn.Sequential(nn.Linear(c, num_classes))

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))

"""Reference networks by name, so that a command line or a saved config can rebuild them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from isospike.models.cnn import VGG, SmallCNN
from isospike.models.resnet import ResNet

MODELS: dict[str, Callable[..., nn.Module]] = {
    "small-cnn": lambda in_channels=1, num_classes=10, input_size=8, **kw: SmallCNN(in_channels, num_classes, input_size, **kw),
    "vgg-small": lambda in_channels=3, num_classes=10, **kw: VGG("vgg-small", in_channels, num_classes, **kw),
    "vgg11": lambda in_channels=3, num_classes=10, **kw: VGG("vgg11", in_channels, num_classes, **kw),
    "vgg16": lambda in_channels=3, num_classes=10, **kw: VGG("vgg16", in_channels, num_classes, **kw),
    "resnet20": lambda in_channels=3, num_classes=10, **kw: ResNet(3, (16, 32, 64), in_channels, num_classes),
}


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build a reference network: one of :data:`MODELS`. ``kwargs``: in_channels, num_classes,
    input_size (small-cnn), pool ("avg"/"max", CNNs)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None
    kwargs = {k: v for k, v in kwargs.items() if not (name == "resnet20" and k in ("input_size", "pool"))}
    if name.startswith("vgg"):
        kwargs.pop("input_size", None)
    return factory(**kwargs)

"""Reference networks built from ordinary torch layers."""

from isospike.models.cnn import VGG, VGG_CONFIGS, SmallCNN
from isospike.models.registry import MODELS, build
from isospike.models.resnet import BasicBlock, ResNet

__all__ = ["BasicBlock", "MODELS", "ResNet", "SmallCNN", "VGG", "VGG_CONFIGS", "build"]

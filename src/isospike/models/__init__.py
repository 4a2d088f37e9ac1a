"""Reference networks built from ordinary torch layers."""

from isospike.models.cnn import VGG, VGG_CONFIGS, SmallCNN
from isospike.models.lif_sequence import LIFSequenceNet
from isospike.models.registry import MODELS, build
from isospike.models.resnet import BasicBlock, ResNet
from isospike.models.spiking_gamma import GammaRun, SpikingGammaNet

__all__ = [
    "BasicBlock", "GammaRun", "LIFSequenceNet", "MODELS", "ResNet", "SmallCNN", "SpikingGammaNet", "VGG", "VGG_CONFIGS",
    "build",
]

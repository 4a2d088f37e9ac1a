"""Fashion-MNIST (Zalando): 70,000 28x28 grey images of clothing, 10 classes.

Read from the gzip IDX files that Debian's ``dataset-fashion-mnist`` package installs in
``/usr/share/datasets/fashion-mnist`` (or any folder holding the four standard files).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from numpy.typing import DTypeLike

from isospike.data.splits import DatasetSplits, LabelledData
from isospike.errors import DatasetNotFoundError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "ISOSPIKE_FASHION_MNIST"
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed) into a numpy array of its stored dtype."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtypes: dict[int, DTypeLike] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    arr = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {tuple(dims)} but holds {arr.size} values (truncated?)")
    return arr.reshape(tuple(dims))


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the Fashion-MNIST files: ``root``, else ``$ISOSPIKE_FASHION_MNIST``,
    else Debian's location. Raises :class:`DatasetNotFoundError` with the fix when absent."""
    candidates = [Path(root)] if root is not None else []
    if root is None and os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    if root is None:
        candidates.append(DEBIAN_DIR)
    for c in candidates:
        if all(_find(c, stem) for stem in _FILES.values()):
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise DatasetNotFoundError(
        f"Fashion-MNIST files ({', '.join(s + '.gz' for s in _FILES.values())}) not found in {looked}. "
        "Fix: `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four files "
        f"in a folder and pass root=... or set {ENV_VAR}."
    )


def load_fashion_mnist(root: str | os.PathLike | None = None) -> DatasetSplits:
    """Fashion-MNIST as float32 ``[N, 1, 28, 28]`` images in [0, 1], official 60k/10k split."""
    d = fashion_mnist_dir(root)
    arrays = {}
    for k, stem in _FILES.items():
        path = _find(d, stem)
        assert path is not None  # fashion_mnist_dir only returns a folder holding every file
        arrays[k] = read_idx(path)

    def part(images: np.ndarray, labels: np.ndarray) -> LabelledData:
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        return LabelledData(x, torch.from_numpy(labels.astype(np.int64)))

    return DatasetSplits(
        name="fashion-mnist",
        train=part(arrays["train_images"], arrays["train_labels"]),
        test=part(arrays["test_images"], arrays["test_labels"]),
        classes=CLASSES,
    )

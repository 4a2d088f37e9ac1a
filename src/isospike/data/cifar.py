"""CIFAR-10 / CIFAR-100 from a local copy of the standard python-pickle batches.

Expected layout (as unpacked from the official archives): ``cifar-10-batches-py/`` with
``data_batch_1..5`` and ``test_batch``; ``cifar-100-python/`` with ``train`` and ``test``.
The pickles hold only numpy arrays, bytes and lists; they are read with a restricted
unpickler that refuses any other object, so a tampered file cannot run code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from isospike.data.splits import DatasetSplits, LabelledData
from isospike.errors import DatasetNotFoundError

ENV_VAR = "ISOSPIKE_CIFAR"


class _SafeUnpickler(pickle.Unpickler):
    _allowed = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")


def _load_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        return _SafeUnpickler(f, encoding="bytes").load()


def _locate(root: str | os.PathLike | None, folder: str, files: list[str], name: str) -> Path:
    bases = [Path(root)] if root is not None else []
    if root is None and os.environ.get(ENV_VAR):
        bases.append(Path(os.environ[ENV_VAR]))
    for base in bases:
        for d in (base / folder, base):
            if all((d / f).is_file() for f in files):
                return d
    where = ", ".join(str(b) for b in bases) or "(no folder given)"
    raise DatasetNotFoundError(
        f"{name} not found in {where}: expected {folder}/ with {', '.join(files)}. "
        f"Fix: download the python version of {name} from https://www.cs.toronto.edu/~kriz/cifar.html "
        f"on a machine with internet, unpack it, and pass root=<folder containing {folder}> "
        f"or set {ENV_VAR}."
    )


def _to_images(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)


def load_cifar10(root: str | os.PathLike | None = None) -> DatasetSplits:
    """CIFAR-10 as float32 ``[N, 3, 32, 32]`` in [0, 1] with int64 labels (50k/10k)."""
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    d = _locate(root, "cifar-10-batches-py", files, "CIFAR-10")
    train = [_load_batch(d / f"data_batch_{i}") for i in range(1, 6)]
    test = _load_batch(d / "test_batch")
    meta = _load_batch(d / "batches.meta")
    return DatasetSplits(
        name="cifar10",
        train=LabelledData(
            _to_images(np.concatenate([b[b"data"] for b in train])),
            torch.tensor(sum((list(b[b"labels"]) for b in train), []), dtype=torch.int64),
        ),
        test=LabelledData(_to_images(test[b"data"]), torch.tensor(test[b"labels"], dtype=torch.int64)),
        classes=tuple(n.decode() for n in meta[b"label_names"]),
    )


def load_cifar100(root: str | os.PathLike | None = None) -> DatasetSplits:
    """CIFAR-100 (fine labels) as float32 ``[N, 3, 32, 32]`` in [0, 1] (50k/10k)."""
    d = _locate(root, "cifar-100-python", ["train", "test", "meta"], "CIFAR-100")
    train, test, meta = (_load_batch(d / f) for f in ("train", "test", "meta"))
    return DatasetSplits(
        name="cifar100",
        train=LabelledData(_to_images(train[b"data"]), torch.tensor(train[b"fine_labels"], dtype=torch.int64)),
        test=LabelledData(_to_images(test[b"data"]), torch.tensor(test[b"fine_labels"], dtype=torch.int64)),
        classes=tuple(n.decode() for n in meta[b"fine_label_names"]),
    )


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FOLDER_ENV_VAR = "ISOSPIKE_CIFAR10_FOLDER"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_cifar10_folder(root: str | os.PathLike | None = None, test_fraction: float = 0.2, seed: int = 0,
                        max_examples: int | None = None) -> DatasetSplits:
    """CIFAR-10 images kept as one file per image under ``<root>/<class name>/`` (the ten standard
    class names; files read in sorted name order), as a fixed stratified train/test split like
    :func:`isospike.data.load_cifar10_png`'s: float32 ``[N, 3, 32, 32]`` in [0, 1].

    A stand-in for users without BIG-bench's archive, e.g. the test set of a clone of the
    CIFAR-10-images repository (``root`` = its ``test/`` folder). Such copies may be JPEG
    re-encodings: lossy, so accuracies differ from the original pixels -- say which copy a number
    is measured on. ``root`` defaults to ``$ISOSPIKE_CIFAR10_FOLDER``."""
    from PIL import Image

    from isospike.data.splits import stratified_split

    if root is None and os.environ.get(FOLDER_ENV_VAR):
        root = os.environ[FOLDER_ENV_VAR]
    base = Path(root) if root is not None else None
    if base is None or not all((base / c).is_dir() for c in CIFAR10_CLASSES):
        raise DatasetNotFoundError(
            f"no CIFAR-10 image folder at {base}: expected one sub-folder per class ({', '.join(CIFAR10_CLASSES)}). "
            f"Fix: pass root=<that folder> or set {FOLDER_ENV_VAR}")
    files, labels = [], []
    for k, c in enumerate(CIFAR10_CLASSES):
        found = sorted(p for p in (base / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files += found
        labels += [k] * len(found)
    if not files:
        raise DatasetNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {base}/<class>/")
    y = np.asarray(labels, dtype=np.int64)
    if max_examples is not None and max_examples < len(y):
        _, keep = stratified_split(y, max_examples / len(y), seed)
        keep = np.sort(keep)
    else:
        keep = np.arange(len(y))
    images = np.empty((len(keep), 3, 32, 32), dtype=np.float32)
    for j, i in enumerate(keep):
        with Image.open(files[i]) as im:
            if im.size != (32, 32):
                raise ValueError(f"{files[i]} is {im.size}, not 32x32")
            images[j] = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
    y = y[keep]
    tr, te = stratified_split(y, test_fraction, seed)
    x, labels_t = torch.from_numpy(images), torch.from_numpy(y)
    return DatasetSplits("cifar10-folder", LabelledData(x[tr], labels_t[tr]), LabelledData(x[te], labels_t[te]),
                         CIFAR10_CLASSES)

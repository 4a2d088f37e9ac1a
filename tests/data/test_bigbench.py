"""BIG-bench tasks streamed from the source archive: the loader logic on a small archive built
here (pairs, labels, stratified subsets, malformed files), and the real archive when
``make bench-setup`` fetched it (skipped otherwise)."""

import base64
import io
import json
import tarfile

import numpy as np
import pytest
import torch

from isospike.data import bigbench
from isospike.errors import DatasetNotFoundError

ROOT = "bigbench-1.0.0/bigbench/benchmark_tasks/"


def _archive(tmp_path, members: dict[str, object]):
    path = tmp_path / "bigbench-1.0.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, obj in members.items():
            raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
            info = tarfile.TarInfo(ROOT + name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return path


def _png(colour) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_pairs_labels_and_stratified_subsets_from_a_small_archive(tmp_path):
    epi = {"examples": [{"input": f"Premise: p{i} sees. Hypothesis: h{i} sees.",
                         "target_scores": {"entailment": int(i % 3 == 0), "non-entailment": int(i % 3 != 0)}}
                        for i in range(30)]}
    vit = {"examples": [{"input": f"Page: evidence {i} .\nClaim: claim {i} .",
                         "target_scores": {"True": int(i % 3 == 0), "False": int(i % 3 == 1), "Neither": int(i % 3 == 2)}}
                        for i in range(60)]}
    classes = bigbench.TASKS["cifar10"][1]
    cif = {"examples": [{"input": _png((25 * c, 0, 255 - 25 * c)), "target_scores": {k: int(k == name) for k in classes}}
                        for c, name in enumerate(classes) for _ in range(5)]}
    path = _archive(tmp_path, {"epistemic_reasoning/task.json": epi, "vitaminc_fact_verification/task.json": vit,
                               "cifar10_classification/base64/task.json": cif})
    e = bigbench.load_epistemic_reasoning(archive=path, test_fraction=0.2)
    assert (len(e.train), len(e.test)) == (24, 6) and e.classes == ("entailment", "non-entailment")
    text, label = e.train.texts[0], int(e.train.labels[0])
    i = int(text.split()[0][1:])
    assert text == f"p{i} sees. [SEP] h{i} sees." and label == int(i % 3 != 0)
    v = bigbench.load_vitaminc(max_examples=30, archive=path)
    assert len(v.train) + len(v.test) == 30
    assert np.bincount(np.concatenate([v.train.labels, v.test.labels])).tolist() == [10, 10, 10]  # stratified
    assert all(t.startswith("Page: evidence") and " [SEP] claim " in t for t in v.train.texts)
    c = bigbench.load_cifar10_png(archive=path, test_fraction=0.2)
    assert c.train.x.shape == (40, 3, 32, 32) and c.train.x.dtype == torch.float32
    assert torch.bincount(c.test.y).tolist() == [1] * 10
    red = c.train.x[c.train.y == 0][0]
    assert torch.allclose(red[:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))  # class 0: colour (0, 0, 255)
    with pytest.raises(ValueError, match="max_examples"):
        bigbench.load_vitaminc(max_examples=0, archive=path)


@pytest.mark.parametrize("bad", [
    {"examples": []},
    [1, 2],
    {"examples": [{"input": "x", "target_scores": {"entailment": 1, "non-entailment": 1}}]},
    {"examples": [{"input": "x", "target_scores": {"yes": 1, "no": 0}}]},
    {"examples": [{"input": 3, "target_scores": {"entailment": 1, "non-entailment": 0}}]},
], ids=["empty", "list", "two-true", "unknown-labels", "not-text"])
def test_malformed_tasks_are_one_clear_error(tmp_path, bad):
    path = _archive(tmp_path, {"epistemic_reasoning/task.json": bad})
    with pytest.raises(ValueError, match="epistemic_reasoning"):
        bigbench.load_epistemic_reasoning(archive=path)


def test_missing_or_foreign_archives_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(bigbench.ENV_VAR, raising=False)
    with pytest.raises(DatasetNotFoundError, match="make bench-setup"):
        bigbench.load_vitaminc(archive=tmp_path / "absent.tar.gz")
    other = _archive(tmp_path, {"something_else/task.json": {"examples": []}})
    with pytest.raises(DatasetNotFoundError, match="holds no vitaminc"):
        bigbench.load_vitaminc(archive=other)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    with pytest.raises(DatasetNotFoundError, match="not a readable"):
        bigbench.load_vitaminc(archive=junk)
    with pytest.raises(ValueError, match="unknown BIG-bench task"):
        bigbench.read_examples("mnli", archive=other)


def test_the_real_archive_when_present():
    try:
        path = bigbench.archive_path()
    except DatasetNotFoundError as exc:
        pytest.skip(str(exc))
    _, y = bigbench.read_examples("epistemic_reasoning", path)
    assert np.bincount(y).tolist() == [741, 1259]
    texts, y = bigbench.read_examples("vitaminc", path)
    assert len(texts) == 54668 and np.bincount(y).tolist() == [27242, 20169, 7257]

"""The .ts parser on small inline files, and the JapaneseVowels / BasicMotions loaders on the
files of the sktime 1.2.0 wheel when it is installed (``make bench-setup``)."""

import importlib.util
import math
import sys

import numpy as np
import pytest
import torch

from isospike.data import TimeSeriesData, load_basic_motions, load_japanese_vowels, parse_ts, read_ts
from isospike.data.timeseries import pad_series, ts_data_dir
from isospike.errors import DatasetNotFoundError

SMALL = """# a comment line
#another
@problemName Tiny
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down

@data
1,2,3:4,5,6:up
0.5,?:-1e-1,2:down
7:8:up
"""


def test_parse_ts_variable_lengths_missing_values_and_labels():
    f = parse_ts(SMALL)
    assert f.header["problemname"] == "Tiny" and f.classes == ("up", "down")
    assert f.labels == ["up", "down", "up"] and f.channels == 2
    assert [s.shape for s in f.series] == [(3, 2), (2, 2), (1, 2)]
    assert all(s.dtype == np.float32 for s in f.series)
    assert f.series[0].tolist() == [[1, 4], [2, 5], [3, 6]]  # channels are columns
    assert f.series[1][0].tolist() == [0.5, pytest.approx(-0.1)]
    assert math.isnan(f.series[1][1, 0]) and f.series[1][1, 1] == 2


def test_pad_series_start_and_end():
    f = parse_ts(SMALL)
    x, lengths = pad_series(f.series)  # pad before: every series ends at the last step
    assert x.shape == (3, 3, 2) and x.dtype == torch.float32 and lengths.tolist() == [3, 2, 1]
    assert x[2].tolist() == [[0, 0], [0, 0], [7, 8]]
    x, _ = pad_series(f.series, pad="end", length=4, fill=-1.0)
    assert x.shape == (3, 4, 2) and x[2].tolist() == [[7, 8], [-1, -1], [-1, -1], [-1, -1]]
    with pytest.raises(ValueError, match="shorter"):
        pad_series(f.series, length=2)
    with pytest.raises(ValueError, match="pad"):
        pad_series(f.series, pad="middle")


def test_parse_ts_univariate_without_labels_and_equal_length():
    f = parse_ts("@problemName U\n@univariate true\n@equalLength true\n@seriesLength 2\n@classLabel false\n@data\n"
                 "1,2\n3,4\n")
    assert f.labels is None and f.classes == () and [s.tolist() for s in f.series] == [[[1], [2]], [[3], [4]]]


@pytest.mark.parametrize("text, match", [
    ("@problemName X\n@classLabel true a b\n@data\n1,2:c\n", "not declared"),
    ("@dimensions 2\n@classLabel true a\n@data\n1,2:a\n", "1 channels, expected 2"),
    ("@dimensions 2\n@classLabel false\n@data\n1,2:3\n", "different lengths"),
    ("@classLabel false\n@data\n1,x,3\n", "numbers"),
    ("@timeStamps true\n@data\n(0,1),(1,2)\n", "time-stamped"),
    ("@classLabel true\n@data\n1:a\n", "declares no class labels"),
    ("@problemName X\n1,2\n", "header line"),
    ("@problemName X\n", "no @data"),
    ("@problemName X\n@data\n", "no cases"),
    ("@equalLength true\n@seriesLength 3\n@classLabel false\n@data\n1,2,3\n1,2\n", "case 1 has 2"),
])
def test_parse_ts_errors_name_the_problem(text, match):
    with pytest.raises(ValueError, match=match):
        parse_ts(text)


def test_loader_reads_a_folder_and_keeps_lengths_through_subset(tmp_path):
    folder = tmp_path / "JapaneseVowels"
    folder.mkdir()
    rows = ",".join(["0.1"] * 3)
    case = ":".join([rows] * 12)
    short = ":".join(["0.2,0.3"] * 12)
    header = "@problemName JapaneseVowels\n@dimensions 12\n@classLabel true 1 2\n@data\n"
    (folder / "JapaneseVowels_TRAIN.ts").write_text(header + f"{case}:1\n{short}:2\n")
    (folder / "JapaneseVowels_TEST.ts").write_text(header + f"{short}:2\n")
    d = load_japanese_vowels(root=tmp_path)
    assert d.train.x.shape == (2, 3, 12) and d.test.x.shape == (1, 3, 12)  # padded to the longest of both
    assert d.train.y.tolist() == [0, 1] and d.train.lengths.tolist() == [3, 2] and d.sample_ms == 6.4
    assert d.test.x[0, 0].abs().sum() == 0 and torch.allclose(d.test.x[0, 1], torch.full((12,), 0.2))
    sub = d.train.subset(1, seed=0)
    assert isinstance(sub, TimeSeriesData) and int(sub.lengths[0]) == (3 if int(sub.y[0]) == 0 else 2)
    x, y = d.train  # unpacks like any (frames, labels) pair
    assert x is d.train.x and y is d.train.y
    assert read_ts(folder / "JapaneseVowels_TEST.ts").labels == ["2"]


def test_missing_files_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("ISOSPIKE_TS_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="pip install --no-deps sktime==1.2.0"):
        load_basic_motions()
    with pytest.raises(DatasetNotFoundError, match="make bench-setup"):
        ts_data_dir("JapaneseVowels")


installed = pytest.mark.skipif(importlib.util.find_spec("sktime") is None,
                               reason="sktime 1.2.0 wheel not installed: make bench-setup "
                                      "(or pip install --no-deps sktime==1.2.0)")


@installed
def test_japanese_vowels_from_the_wheel_without_importing_sktime(monkeypatch):
    monkeypatch.delenv("ISOSPIKE_TS_DATA", raising=False)
    d = load_japanese_vowels()
    assert "sktime" not in sys.modules  # found by find_spec, never imported
    assert d.name == "JapaneseVowels" and d.classes == tuple(str(i) for i in range(1, 10))
    assert d.train.x.shape == (270, 29, 12) and d.test.x.shape == (370, 29, 12)
    assert d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64
    assert torch.bincount(d.train.y).tolist() == [30] * 9 and len(d.test) == 370
    for part in (d.train, d.test):
        assert int(part.lengths.min()) >= 7 and int(part.lengths.max()) <= 29
        # padding sits before each utterance: zero rows exactly there, data after
        first = 29 - part.lengths
        steps = torch.arange(29)
        pad = steps[None, :] < first[:, None]
        assert bool((part.x[pad] == 0).all()) and bool((part.x[~pad].abs().sum(-1) > 0).all())
    assert not bool(d.train.x.isnan().any()) and float(d.train.x.abs().max()) < 5
    end = load_japanese_vowels(pad="end")
    i = int(torch.argmin(end.train.lengths))
    n = int(end.train.lengths[i])
    assert torch.equal(end.train.x[i, :n], d.train.x[i, 29 - n:])


@installed
def test_basic_motions_from_the_wheel(monkeypatch):
    monkeypatch.delenv("ISOSPIKE_TS_DATA", raising=False)
    d = load_basic_motions()
    assert d.train.x.shape == (40, 100, 6) and d.test.x.shape == (40, 100, 6)
    assert d.classes == ("Standing", "Running", "Walking", "Badminton") and d.sample_ms == 100.0
    assert torch.bincount(d.train.y).tolist() == [10] * 4 and torch.bincount(d.test.y).tolist() == [10] * 4
    assert d.train.lengths.eq(100).all() and not bool(d.test.x.isnan().any())

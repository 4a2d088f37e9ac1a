"""Real multichannel time series for sequence models (SpikingGamma), read offline.

Two tasks of the UEA/UCR archive, shipped inside the PyPI wheel ``sktime==1.2.0`` as ``.ts``
text files (``sktime/datasets/data/<Name>/<Name>_{TRAIN,TEST}.ts``); the package is found with
``importlib.util.find_spec`` and never imported (importing it pulls pandas, scikit-learn and more):

- JapaneseVowels (Kudo, Toyama & Shimbo 1999; UCI): nine male speakers say the vowels /ae/; each
  utterance is 7-29 frames of 12 LPC cepstrum coefficients (10 kHz speech, 25.6 ms analysis
  window, one frame every 6.4 ms). Task: the speaker. Official split 270 train / 370 test.
- BasicMotions (UEA): a smart watch's 3-axis accelerometer and 3-axis gyroscope, 100 samples at
  10 Hz (10 s) while standing, walking, running or playing badminton. 40 train / 40 test.

``make bench-setup`` installs the wheel (``pip install --no-deps sktime==1.2.0``); a folder of
``<Name>/<Name>_TRAIN.ts`` files (e.g. the UEA archive) can be given instead with ``root=`` or
``$ISOSPIKE_TS_DATA``. :func:`parse_ts` reads the ``.ts`` format itself.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from isospike.data.splits import DatasetSplits, LabelledData
from isospike.errors import DatasetNotFoundError

ENV_VAR = "ISOSPIKE_TS_DATA"
INSTALL_HINT = ("Fix: make bench-setup, or .venv/bin/pip install --no-deps sktime==1.2.0 (the wheel ships the "
                ".ts files; it is never imported), or pass root= / set $ISOSPIKE_TS_DATA to a folder holding "
                "<Name>/<Name>_TRAIN.ts and <Name>/<Name>_TEST.ts")


# ---------------------------------------------------------------- the .ts text format
@dataclass(frozen=True)
class TsFile:
    """One parsed ``.ts`` file.

    series: one float32 array ``[length, channels]`` per case (NaN where the file has ``?``).
    labels: the class label string of each case (None when the file has no class labels).
    classes: the class labels declared by ``@classLabel true ...``, in their declared order.
    header: every ``@key value`` line of the header, keys lower-cased (``"problemname"``, ...).
    """

    series: list[np.ndarray]
    labels: list[str] | None
    classes: tuple[str, ...]
    header: dict[str, str]

    @property
    def channels(self) -> int:
        return self.series[0].shape[1] if self.series else 0


def _flag(header: dict[str, str], key: str, default: bool = False) -> bool:
    value = header.get(key)
    if value is None:
        return default
    word = value.split()[0].lower() if value.split() else ""
    if word not in ("true", "false"):
        raise ValueError(f".ts header @{key}: expected true or false, got {value!r}")
    return word == "true"


def _values(text: str, where: str) -> np.ndarray:
    try:
        return np.array([np.nan if v.strip() == "?" else float(v) for v in text.split(",")], dtype=np.float32)
    except ValueError:
        raise ValueError(f"{where}: not a comma-separated list of numbers or '?': {text[:60]!r}") from None


def parse_ts(text: str, name: str = "<string>") -> TsFile:
    """Parse the text of a ``.ts`` file (the sktime / UEA time-series format).

    Header lines start with ``@`` (``@problemName``, ``@timeStamps``, ``@missing``,
    ``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@classLabel true
    A B ...``), comments with ``#``; after ``@data`` each line is one case: its channels
    separated by ``:``, each a comma-separated list of values (``?`` = missing, read as NaN),
    then the class label when ``@classLabel`` is true. Cases may differ in length; the channels of
    one case may not. Time-stamped series (``@timeStamps true``) are not supported."""
    header: dict[str, str] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    has_labels = False
    classes: tuple[str, ...] = ()
    channels: int | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}, line {lineno}"
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"{where}: expected a header line (@...) before @data, got {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                in_data = True
                if _flag(header, "timestamps"):
                    raise ValueError(f"{name}: time-stamped series (@timeStamps true) are not supported")
                label_words = header.get("classlabel", "false").split()
                has_labels = _flag(header, "classlabel")
                classes = tuple(label_words[1:]) if has_labels else ()
                if has_labels and not classes:
                    raise ValueError(f"{name}: @classLabel true declares no class labels")
                if "dimensions" in header:
                    channels = int(header["dimensions"])
                elif _flag(header, "univariate"):
                    channels = 1
                continue
            header[key] = value.strip()
            continue
        fields = line.split(":")
        if has_labels:
            if len(fields) < 2:
                raise ValueError(f"{where}: expected channels and a class label separated by ':'")
            label = fields.pop().strip()
            if label not in classes:
                raise ValueError(f"{where}: class label {label!r} is not declared in @classLabel {list(classes)}")
            labels.append(label)
        if channels is None:
            channels = len(fields)
        if len(fields) != channels:
            raise ValueError(f"{where}: {len(fields)} channels, expected {channels}")
        cols = [_values(f, where) for f in fields]
        lengths = {len(c) for c in cols}
        if len(lengths) != 1:
            raise ValueError(f"{where}: the channels of one case have different lengths {sorted(lengths)}")
        series.append(np.stack(cols, axis=1))
    if not in_data:
        raise ValueError(f"{name}: no @data line")
    if not series:
        raise ValueError(f"{name}: no cases after @data")
    if "serieslength" in header and _flag(header, "equallength"):
        expected = int(header["serieslength"])
        bad = [i for i, s in enumerate(series) if len(s) != expected]
        if bad:
            raise ValueError(f"{name}: @seriesLength {expected} but case {bad[0]} has {len(series[bad[0]])} values")
    return TsFile(series, labels if has_labels else None, classes, header)


def read_ts(path: str | os.PathLike) -> TsFile:
    """Parse a ``.ts`` file (see :func:`parse_ts`)."""
    path = Path(path)
    return parse_ts(path.read_text(encoding="utf-8"), name=str(path))


def pad_series(series: list[np.ndarray], pad: str = "start", length: int | None = None,
               fill: float = 0.0) -> tuple[Tensor, Tensor]:
    """Stack series ``[length_i, C]`` into float32 ``[N, T, C]`` (T = the longest, or ``length``)
    and their lengths (int64 ``[N]``). ``pad="start"`` puts the fill before each series, so all of
    them end together at the last step (what a model read out at the end of the sequence needs);
    ``"end"`` puts it after."""
    if pad not in ("start", "end"):
        raise ValueError(f"pad must be 'start' or 'end', got {pad!r}")
    if not series:
        raise ValueError("no series to pad")
    lengths = torch.tensor([len(s) for s in series], dtype=torch.int64)
    T = int(lengths.max()) if length is None else int(length)
    if T < int(lengths.max()):
        raise ValueError(f"length {T} is shorter than the longest series ({int(lengths.max())})")
    x = torch.full((len(series), T, series[0].shape[1]), float(fill), dtype=torch.float32)
    for i, s in enumerate(series):
        n = len(s)
        if pad == "start":
            x[i, T - n:] = torch.from_numpy(np.asarray(s, dtype=np.float32))
        else:
            x[i, :n] = torch.from_numpy(np.asarray(s, dtype=np.float32))
    return x, lengths


# ---------------------------------------------------------------- datasets
@dataclass(frozen=True)
class TimeSeriesData(LabelledData):
    """Padded series ``x`` (float32 ``[N, T, C]``), class indices ``y`` (int64 ``[N]``) and each
    series' true length (int64 ``[N]``, in samples). Unpacks as ``x, y`` and trains like any
    (frames, labels) pair."""

    lengths: Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.lengths) != len(self.y):
            raise ValueError(f"lengths has {len(self.lengths)} entries for {len(self.y)} samples")

    def subset(self, n: int, seed: int = 0) -> TimeSeriesData:
        """A random (seeded) subset of ``n`` series, lengths kept."""
        if n >= len(self):
            return self
        idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(self))[:n])
        return TimeSeriesData(self.x[idx], self.y[idx], self.lengths[idx])


@dataclass(frozen=True)
class TimeSeriesDataset(DatasetSplits):
    """Train and test series plus what their time axis means: ``sample_ms`` between samples
    (frames), ``channel_names`` and ``pad`` (where the padding went)."""

    sample_ms: float = 1.0
    channel_names: tuple[str, ...] = ()
    pad: str = "start"

    @property
    def channels(self) -> int:
        return int(self.train.x.shape[-1])


def ts_data_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder holding ``<name>_TRAIN.ts`` and ``<name>_TEST.ts``: ``root/<name>`` (or
    ``$ISOSPIKE_TS_DATA/<name>``) when given, else the installed sktime wheel's data folder."""
    base = root if root is not None else os.environ.get(ENV_VAR)
    candidates: list[Path] = []
    if base:
        candidates += [Path(base) / name, Path(base)]
    else:
        # find_spec on a top-level name locates the package without importing (executing) it
        spec = importlib.util.find_spec("sktime")
        for location in (spec.submodule_search_locations or []) if spec is not None else []:
            candidates.append(Path(location) / "datasets" / "data" / name)
    for folder in candidates:
        if (folder / f"{name}_TRAIN.ts").is_file() and (folder / f"{name}_TEST.ts").is_file():
            return folder
    looked = ", ".join(str(c) for c in candidates) or "no sktime package installed"
    raise DatasetNotFoundError(f"{name} .ts files not found (looked in: {looked}). {INSTALL_HINT}")


def _load(name: str, root: str | os.PathLike | None, pad: str, sample_ms: float,
          channel_names: tuple[str, ...]) -> TimeSeriesDataset:
    folder = ts_data_dir(name, root)
    train, test = read_ts(folder / f"{name}_TRAIN.ts"), read_ts(folder / f"{name}_TEST.ts")
    if train.classes != test.classes or train.labels is None or test.labels is None:
        raise ValueError(f"{name}: train and test files declare different classes or have no labels")
    if train.channels != len(channel_names) or test.channels != len(channel_names):
        raise ValueError(f"{name}: expected {len(channel_names)} channels, found {train.channels} / {test.channels}")
    T = max(max(len(s) for s in train.series), max(len(s) for s in test.series))
    index = {c: i for i, c in enumerate(train.classes)}

    def split(f: TsFile) -> TimeSeriesData:
        x, lengths = pad_series(f.series, pad=pad, length=T)
        y = torch.tensor([index[label] for label in f.labels or []], dtype=torch.int64)
        return TimeSeriesData(x, y, lengths)

    return TimeSeriesDataset(name=train.header.get("problemname", name), train=split(train), test=split(test),
                             classes=train.classes, sample_ms=sample_ms, channel_names=channel_names, pad=pad)


def load_japanese_vowels(root: str | os.PathLike | None = None, pad: str = "start") -> TimeSeriesDataset:
    """JapaneseVowels: speaker identification (9 classes, "1".."9") from utterances of 7-29 frames
    of 12 LPC cepstrum coefficients (dimensionless, roughly -2..2), one frame every 6.4 ms
    (``sample_ms``). Official split: 270 train (30 per speaker) / 370 test.

    ``x``: float32 ``[N, 29, 12]``, zeros where a shorter utterance is padded (before it with
    ``pad="start"``, the default, so every utterance ends at the last frame; after it with
    ``"end"``); ``lengths``: frames per utterance. Values are the file's, not normalized."""
    names = tuple(f"lpc{i}" for i in range(1, 13))
    return _load("JapaneseVowels", root, pad, 6.4, names)


def load_basic_motions(root: str | os.PathLike | None = None) -> TimeSeriesDataset:
    """BasicMotions: activity from a smart watch (4 classes: Standing, Running, Walking,
    Badminton), 100 samples per series at 10 Hz (``sample_ms`` = 100). Official split 40 / 40.

    ``x``: float32 ``[N, 100, 6]``: 3-axis accelerometer then 3-axis gyroscope, raw readings (the
    archive does not state units); all series have the same length."""
    names = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    return _load("BasicMotions", root, "start", 100.0, names)

"""Reading a folder written by ``isospike train`` (:func:`isospike.train.save_trained`): its
``model.json`` and ``weights.safetensors``, as data.

``isospike convert --model FOLDER`` may be pointed at a folder someone else wrote, so
``model.json`` is read field by field through closed sets (the model names of
:data:`isospike.models.MODELS`, bounded sizes, the noise kinds) and the network is built on the
``meta`` device and compared tensor by tensor with the weights file before anything is
allocated. Every refusal is one :class:`~isospike.errors.FileFormatError` naming the file and
the field (a crafted ``model.json`` used to give a raw KeyError, AttributeError or RuntimeError).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from isospike._io import regular_file
from isospike.errors import FileFormatError
from isospike.schema import Field, parse_json

MAX_MODEL_JSON_BYTES = 2**20
_KEYS = {"model", "kwargs", "levels", "noise", "dataset"}
# what `isospike train` writes as the builder's keyword arguments, and their ranges
_KWARGS = {"in_channels": (1, 1024), "num_classes": (1, 2**16), "input_size": (4, 4096)}
NOISES = ("gaussian", "uniform", "none")


@dataclass
class TrainedConfig:
    """A checked ``model.json``: the model's name in :data:`isospike.models.MODELS`, its builder's
    keyword arguments, the quantization levels (None: a plain ReLU network), the noise kind and
    the dataset it was trained on (None when not recorded)."""

    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    levels: int | None = None
    noise: str = "gaussian"
    dataset: str | None = None


def read_model_json(directory: str | Path) -> TrainedConfig:
    """The checked ``model.json`` of a training folder (FileNotFoundError when there is none)."""
    from isospike.models import MODELS

    path = Path(directory) / "model.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass the output folder of `isospike train`")
    size = regular_file(path, "isospike convert --model").st_size
    if size > MAX_MODEL_JSON_BYTES:
        raise FileFormatError(f"{path}: {size} bytes, far more than the model.json `isospike train` writes; the "
                              "folder is damaged or crafted")
    root = Field(parse_json(path.read_bytes(), str(path), "model.json"), "model.json", str(path))
    entries = root.object(_KEYS)
    model = root["model"].choice(sorted(MODELS), "models isospike builds")
    kwargs: dict[str, Any] = {}
    if "kwargs" in entries:
        for key, value in entries["kwargs"].object(set(_KWARGS) | {"pool"}).items():
            kwargs[key] = value.choice(("avg", "max")) if key == "pool" else value.integer(*_KWARGS[key])
    levels = entries.get("levels")
    noise = entries.get("noise")
    dataset = entries.get("dataset")
    return TrainedConfig(model, kwargs, None if levels is None or levels.is_none or levels.value == 0
                         else levels.integer(1, 2**16),
                         "gaussian" if noise is None else noise.choice(NOISES),
                         None if dataset is None or dataset.is_none else dataset.text(64))


def load_trained(directory: str | Path) -> nn.Module:
    """Rebuild a model written by :func:`isospike.train.save_trained` (e.g. by ``isospike train``),
    in eval mode: ``model.json`` through :func:`read_model_json`, the network built on the meta
    device and its tensors compared by name, shape and dtype with ``weights.safetensors`` before
    they are assigned."""
    from isospike.models import build
    from isospike.serialize import read_tensors
    from isospike.serialize.hf import check_stored
    from isospike.train.qcfs import quantize_relus

    directory = Path(directory)
    config = read_model_json(directory)
    source = str(directory / "model.json")
    try:
        with torch.device("meta"):
            model = build(config.model, **config.kwargs)
            if config.levels:
                model = quantize_relus(model, config.levels, 1.0, config.noise)  # type: ignore[arg-type]  # a NOISES name
    except (ValueError, TypeError, RuntimeError) as exc:
        raise FileFormatError(f"{source}: the model it describes cannot be built ({exc})") from None
    weights = directory / "weights.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} not found: the folder from `isospike train` is incomplete")
    _, state = read_tensors(weights, "isospike convert --model", "a training folder's weights are the "
                            "weights.safetensors `isospike train` writes")
    check_stored(model.state_dict(), state, {}, str(weights), fix="the weights are not those of the model "
                 "model.json describes (the folder is damaged or its files come from different runs)",
                 what=f"the {config.model} model.json describes")
    model.load_state_dict(state, assign=True)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_meta:  # a computed buffer that is not stored: none in isospike's models
            raise FileFormatError(f"{weights}: no stored tensor for {name!r}")
    return model.eval()

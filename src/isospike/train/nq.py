"""Noise-aware training for low-latency rate conversion (seed 001, Huang et al., TNNLS 2025).

Every ReLU becomes a :class:`~isospike.train.qcfs.NoisyQCFS` activation. Epoch 1 trains noise
free (plain QCFS); after every epoch each layer's noise scale sigma_l is re-measured on a
validation split as the standard deviation of (noise-free quantized ANN activation - firing
rate of the converted SNN over T_noise = L steps), and the next epoch trains with that noise.
The checkpoint kept is the one whose converted SNN (T = L) is most accurate on the validation
split -- never the test set. Checkpoints are safetensors files written atomically after every
epoch; an interrupted run resumes from the last completed epoch.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from isospike._io import atomic_write, atomic_write_json
from isospike.conversion import convert
from isospike.conversion.calibration import sample_activations
from isospike.conversion.network import SpikingNetwork
from isospike.conversion.rate_analysis import layer_gaps
from isospike.data.splits import LabelledData, train_validation_split
from isospike.train.classifier import accuracy, classification_step, labelled_batches
from isospike.train.qcfs import NoiseKind, qcfs_layers, quantize_relus


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    sigma: dict[str, float]
    val_ann_accuracy: float
    val_snn_accuracy: float
    lambdas: dict[str, float]


@dataclass
class NoiseAwareHistory:
    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = -1
    best_val_snn_accuracy: float = -1.0

    def as_dict(self) -> dict[str, Any]:
        return {"epochs": [asdict(e) for e in self.epochs], "best_epoch": self.best_epoch,
                "best_val_snn_accuracy": self.best_val_snn_accuracy}


@torch.no_grad()
def measure_sigma(model: nn.Module, data: LabelledData, timesteps: int, batch_size: int = 500) -> dict[str, float]:
    """Per NoisyQCFS layer: std of (noise-free quantized ANN activation - SNN rate over
    ``timesteps`` steps), pooled over ``data``."""
    snn = convert(model, coding="rate", timesteps=timesteps)
    assert isinstance(snn, SpikingNetwork)  # the rate coding builds a SpikingNetwork
    sums: dict[str, list[float]] = {}
    for i in range(0, len(data), batch_size):
        gaps = layer_gaps(model, snn, data.x[i:i + batch_size], timesteps)
        for p, g in gaps.items():
            d = g.gap.double()
            s = sums.setdefault(p, [0.0, 0.0, 0.0])
            s[0] += float(d.sum())
            s[1] += float((d * d).sum())
            s[2] += d.numel()
    return {p: math.sqrt(max(s[1] / s[2] - (s[0] / s[2]) ** 2, 0.0)) for p, s in sums.items()}


def relu_percentiles(model: nn.Module, x: Tensor, q: float = 99.9) -> dict[str, float]:
    """Per nn.ReLU module path: the q-th percentile of its activations on ``x`` (positive)."""
    relus: dict[str, nn.Module] = {p: m for p, m in model.named_modules() if isinstance(m, nn.ReLU)}
    was_training = model.training
    model.eval()
    try:
        sampler = sample_activations(model, relus, x)
    finally:
        model.train(was_training)
    return {p: max(sampler.percentile(p, q), 1e-3) for p in relus}


def _snn_accuracy(model: nn.Module, data: LabelledData, timesteps: int) -> float:
    return accuracy(convert(model, coding="rate", timesteps=timesteps), data)


def _optimizer(name: str, params, lr: float, weight_decay: float, momentum: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {name!r}")


# ---------------------------------------------------------------- checkpoints
def _save_checkpoint(directory: Path, model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any],
                     best_model: nn.Module | None) -> None:
    tensors = {f"model.{k}": v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"optim.{pid}.{k}"] = v.detach().contiguous().clone().reshape(v.shape)
    meta = dict(state)
    meta["param_groups"] = opt_state["param_groups"]
    meta["optim_scalars"] = {f"{pid}.{k}": v for pid, st in opt_state["state"].items() for k, v in st.items()
                             if not isinstance(v, Tensor)}
    atomic_write(directory / "checkpoint.safetensors", lambda p: save_file(tensors, str(p)))
    if best_model is not None:
        best = {k: v.detach().contiguous().clone() for k, v in best_model.state_dict().items()}
        atomic_write(directory / "best.safetensors", lambda p: save_file(best, str(p)))
    atomic_write_json(directory / "checkpoint.json", meta)  # written last: marks a complete checkpoint


def _load_checkpoint(directory: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any] | None:
    meta_path = directory / "checkpoint.json"
    if not meta_path.is_file() or not (directory / "checkpoint.safetensors").is_file():
        return None
    meta = json.loads(meta_path.read_text())
    tensors = load_file(str(directory / "checkpoint.safetensors"))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for key, v in meta.get("optim_scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta


def load_best(directory: str | Path, model: nn.Module) -> nn.Module:
    """Load ``best.safetensors`` of a noise-aware run into ``model`` (built with the same
    architecture and NoisyQCFS activations)."""
    model.load_state_dict(load_file(str(Path(directory) / "best.safetensors")))
    return model


# ---------------------------------------------------------------- the recipe
def noise_aware(
    model: nn.Module,
    train: Any,
    *,
    epochs: int = 3,
    levels: int = 4,
    init_lambda: float | str = "percentile",
    noise: NoiseKind = "gaussian",
    optimizer: str = "adamw",
    lr: float | None = None,
    lambda_lr: float | None = None,
    init_percentile: float = 99.0,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    batch_size: int = 128,
    validation: Any = 0.1,
    noise_timesteps: int | None = None,
    select: str = "snn",
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
) -> nn.Module:
    """Train (from scratch or fine-tune) ``model`` with noise-aware quantized activations and
    return the trained copy, ready for ``isospike.convert(m, coding="rate", timesteps=T)``.

    Args:
        model: a ReLU network (its nn.ReLU modules are swapped; max pooling becomes average
            pooling) or a network that already has NoisyQCFS activations. Not modified.
        train: (inputs, targets) tensors, LabelledData or a DataLoader of (inputs, targets) batches;
            targets are class indices [N].
        epochs: noise-aware training epochs.
        levels: L, quantization levels above zero.
        noise: "gaussian", "uniform" or "none" (plain QCFS).
        init_lambda: a number (the paper's 8), or "percentile": each layer's lambda starts at the
            ``init_percentile``-th percentile of its ReLU's activations on (up to 1,024) training
            inputs, which matters when the budget is a few epochs.
        lambda_lr: learning rate of the clip values lambda (default 25 x lr for AdamW, lr for SGD):
            with adaptive optimizers a step moves lambda by about lr, too slowly otherwise.
        optimizer: "adamw" (default; lr 2e-3) or "sgd" (the paper's: lr 0.05, momentum 0.9);
            cosine learning-rate decay; weight decay applies to lambda too, as in the paper.
        validation: a fraction of ``train`` held out (stratified, by ``seed``) or data.
        noise_timesteps: T used to measure sigma (default L).
        select: "snn" keeps the epoch whose converted SNN at T = L is most accurate on the
            validation split; "last" keeps the last epoch.
        checkpoint_dir: where checkpoint.safetensors/.json and best.safetensors are written after
            every epoch; with ``resume`` an existing checkpoint is continued.

    The returned model has ``.nq_history`` (per-epoch loss, accuracy, sigma, lambda) attached.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if select not in ("snn", "last"):
        raise ValueError(f"select must be 'snn' or 'last', got {select!r}")
    data = labelled_batches(train, model, "train")
    if isinstance(validation, float):
        data, val = train_validation_split(data, validation, seed)
    else:
        val = labelled_batches(validation, model, "validation")
    if qcfs_layers(model):
        model = copy.deepcopy(model)
    else:
        lambdas: float | dict[str, float]
        if init_lambda == "percentile":
            lambdas = relu_percentiles(model, data.x[:1024], init_percentile)
        elif isinstance(init_lambda, (int, float)):
            lambdas = init_lambda
        else:
            raise ValueError(f"init_lambda must be a number or 'percentile', got {init_lambda!r}")
        model = quantize_relus(model, levels, lambdas, noise)
    layers = qcfs_layers(model)
    for m in layers.values():
        m.noise = noise
        m.sigma.fill_(0.0)
    t_noise = noise_timesteps or levels
    lr = lr if lr is not None else (0.05 if optimizer == "sgd" else 2e-3)
    lambda_lr = lambda_lr if lambda_lr is not None else (lr if optimizer == "sgd" else 25 * lr)
    lam_params = [m.lam for m in layers.values()]
    lam_ids = {id(p) for p in lam_params}
    groups = [{"params": [p for p in model.parameters() if id(p) not in lam_ids], "lr": lr, "base_lr": lr},
              {"params": lam_params, "lr": lambda_lr, "base_lr": lambda_lr}]
    opt = _optimizer(optimizer, groups, lr, weight_decay, momentum)
    steps_per_epoch = (len(data) + batch_size - 1) // batch_size
    history = NoiseAwareHistory()
    start_epoch = 0
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    best_state = copy.deepcopy(model.state_dict())
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = _load_checkpoint(directory, model, opt) if resume else None
        if meta is not None:
            start_epoch = meta["epoch"] + 1
            history = NoiseAwareHistory([EpochRecord(**e) for e in meta["history"]["epochs"]],
                                        meta["history"]["best_epoch"], meta["history"]["best_val_snn_accuracy"])
            for p, s in meta["sigma"].items():
                layers[p].sigma.fill_(s)
            if (directory / "best.safetensors").is_file():
                best_state = load_file(str(directory / "best.safetensors"))
    total_steps = epochs * steps_per_epoch

    def cosine(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

    bar = tqdm(range(start_epoch, epochs), desc="noise-aware training", disable=not progress, leave=False,
               initial=start_epoch, total=epochs)
    for epoch in bar:
        model.train()
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        perm = torch.randperm(len(data), generator=g)
        g_noise = torch.Generator().manual_seed(seed * 1000 + epoch + 500)  # reproducible across resumes
        for m in layers.values():
            m.generator = g_noise
        loss_sum, correct, seen = 0.0, 0, 0
        for k, i in enumerate(range(0, len(data), batch_size)):
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * cosine(epoch * steps_per_epoch + k)
            idx = perm[i:i + batch_size]
            xb, yb = data.x[idx], data.y[idx]
            if augment is not None:
                xb = augment(xb, g)
            loss, right = classification_step(model, opt, xb, yb)
            loss_sum += loss * len(idx)
            correct += right
            seen += len(idx)
        model.eval()
        sigma = measure_sigma(model, val, t_noise)
        for p, s in sigma.items():
            layers[p].sigma.fill_(s)
        val_ann = accuracy(model, val)
        val_snn = _snn_accuracy(model, val, levels)
        record = EpochRecord(epoch, loss_sum / seen, correct / seen, sigma, val_ann, val_snn,
                             {p: m.spike_threshold for p, m in layers.items()})
        history.epochs.append(record)
        improved = val_snn > history.best_val_snn_accuracy or select == "last"
        if improved:
            history.best_epoch, history.best_val_snn_accuracy = epoch, val_snn
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(loss=f"{record.train_loss:.3f}", val_snn=f"{val_snn:.3f}")
        if directory is not None:
            _save_checkpoint(directory, model, opt, {"epoch": epoch, "sigma": sigma, "history": history.as_dict(),
                                                     "levels": levels, "noise": noise},
                             model if improved else None)
    model.load_state_dict(best_state)
    for m in layers.values():
        m.generator = None
    model.eval()
    model.nq_history = history  # type: ignore[assignment]  # torch types Module.__setattr__ values as Tensor | Module
    return model



def save_trained(directory: str | Path, model: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``model.json`` (how to rebuild: isospike.models.build name and kwargs, levels) and
    ``weights.safetensors`` into ``directory`` (atomically)."""
    directory = Path(directory)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(directory / "weights.safetensors", lambda p: save_file(tensors, str(p)))
    atomic_write_json(directory / "model.json", config)
    return directory


def load_trained(directory: str | Path) -> nn.Module:
    """Rebuild a model written by :func:`save_trained` (e.g. by ``isospike train``); the folder is
    read as data (:func:`isospike.train.folder.load_trained`)."""
    from isospike.train.folder import load_trained as load_folder

    return load_folder(directory)

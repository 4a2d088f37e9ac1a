"""Plain supervised training and evaluation of classifiers (the ANNs that get converted)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from isospike.conversion.graph import parameter_dtype
from isospike.data.splits import LabelledData, as_labelled, class_targets


def labelled_batches(data: Any, model: nn.Module | None = None, what: str = "data") -> LabelledData:
    """``data`` (an (inputs, targets) pair, LabelledData or DataLoader) as inputs and int64 class
    indices; with ``model``, inputs whose floating dtype differs from its parameters are refused."""
    d = as_labelled(data, what)
    y = class_targets(d.y, f"{what} targets")
    dtype = parameter_dtype(model) if model is not None else None
    if dtype is not None and d.x.is_floating_point() and d.x.dtype != dtype:
        raise TypeError(f"{what} inputs are {d.x.dtype} but the model's parameters are {dtype}: "
                        f"pass x.to({dtype}) (or convert the model)")
    return d if y is d.y else LabelledData(d.x, y)


@dataclass
class TrainingHistory:
    """Loss and accuracy per epoch (training set; validation when given)."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


def accuracy(model: Callable[[Tensor], Tensor], data: Any, batch_size: int = 500) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` on ``data`` ((x, y) or LabelledData).

    nn.Modules are put in eval mode; the mode is restored afterwards."""
    x, y = labelled_batches(data, model if isinstance(model, nn.Module) else None)
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                correct += int((model(x[i:i + batch_size]).argmax(-1) == y[i:i + batch_size]).sum())
    finally:
        if was_training and isinstance(model, nn.Module):  # was_training is only ever True for an nn.Module
            model.train()
    return correct / max(len(x), 1)


def fit_classifier(
    model: nn.Module,
    train: Any,
    *,
    epochs: int = 10,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    validation: Any = None,
    progress: bool = True,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
) -> TrainingHistory:
    """Train ``model`` in place with AdamW + cosine learning-rate decay on cross-entropy.

    ``train`` and ``validation`` are (x, y) pairs, LabelledData or DataLoaders of (x, y) batches.
    Deterministic for a given ``seed`` (shuffling and, when given, ``augment(x, generator)``)."""
    x, y = labelled_batches(train, model, "train")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    history = TrainingHistory()
    bar = tqdm(range(epochs), desc="training", disable=not progress, leave=False)
    for _ in bar:
        model.train()
        perm = torch.randperm(len(x), generator=g)
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb, g)
            loss, right = classification_step(model, opt, xb, yb)
            sched.step()
            total += loss * len(idx)
            correct += right
            seen += len(idx)
        history.train_loss.append(total / seen)
        history.train_accuracy.append(correct / seen)
        if validation is not None:
            history.val_accuracy.append(accuracy(model, validation))
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", acc=f"{history.train_accuracy[-1]:.3f}")
    model.eval()
    return history


def classification_step(model: nn.Module, opt: torch.optim.Optimizer, xb: Tensor, yb: Tensor) -> tuple[float, int]:
    """One cross-entropy optimizer step on a batch; returns (mean loss, correct predictions)."""
    logits = model(xb)
    loss = F.cross_entropy(logits, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item(), int((logits.argmax(-1) == yb).sum())


def digits_cnn(epochs: int = 20, seed: int = 0, progress: bool = False) -> nn.Module:
    """The embedded default network, trained: a SmallCNN for scikit-learn's 8x8 digits, fitted on
    their fixed training split (``isospike.data.load_digits(seed=seed)``) with
    :func:`fit_classifier` (about 5 s for 20 epochs on 2 cores). What ``isospike demo`` and the
    README's tour convert; returned in eval mode."""
    from isospike.data import load_digits
    from isospike.models import SmallCNN

    torch.manual_seed(seed)
    model = SmallCNN(in_channels=1, num_classes=10, input_size=8)
    fit_classifier(model, load_digits(seed=seed).train, epochs=epochs, seed=seed, progress=progress)
    return model.eval()

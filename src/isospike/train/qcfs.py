"""The quantized clip-floor-shift activation (QCFS) with additive residual noise (NQ).

    a = lambda * clip(floor(z L / lambda + 1/2) / L, 0, 1)   (+ sigma * eps while training)

``lambda`` is a trainable scalar per layer (initialised to 8), ``L`` the number of levels, the
floor has a straight-through gradient. ``eps`` models the residual membrane potential that an
IF neuron with reset by subtraction leaves after a few time steps (Huang et al., TNNLS 2025):
zero-mean Gaussian or uniform noise of standard deviation ``sigma``, added after quantization
and not clipped, never at evaluation. With sigma = 0 this is exactly QCFS (Bu et al., ICLR 2022).

A trained layer converts to IF neurons with threshold lambda and initial membrane lambda / 2:
for a constant input and T = L steps the spike count equals the quantized level exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from isospike.errors import UnsupportedLayerError

NoiseKind = Literal["gaussian", "uniform", "none"]


def floor_ste(x: Tensor) -> Tensor:
    """floor(x) in the forward pass, identity gradient in the backward pass."""
    return x + (torch.floor(x) - x).detach()


class NoisyQCFS(nn.Module):
    """Drop-in replacement for ReLU. Input and output: any shape, float.

    Args:
        levels: L, quantization levels above zero.
        init_lambda: initial clip value lambda (the converted neuron's threshold).
        noise: "gaussian", "uniform" or "none"; the noise is active only in training mode.
        sigma: noise standard deviation in activation units (set per epoch by the recipe).
    """

    sigma: Tensor  # buffer (registered in __init__)

    def __init__(self, levels: int = 4, init_lambda: float = 8.0, noise: NoiseKind = "gaussian", sigma: float = 0.0) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        if noise not in ("gaussian", "uniform", "none"):
            raise ValueError(f"noise must be 'gaussian', 'uniform' or 'none', got {noise!r}")
        if not init_lambda > 0:
            raise ValueError(f"init_lambda must be > 0, got {init_lambda}")
        self.levels = int(levels)
        self.noise = noise
        self.lam = nn.Parameter(torch.tensor(float(init_lambda)))
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.shift = 0.5
        self.generator: torch.Generator | None = None  # noise source (the global RNG if None)

    @property
    def spike_threshold(self) -> float:
        """Threshold of the IF neurons this layer converts to (|lambda|)."""
        return float(self.lam.detach().abs())

    def quantize(self, z: Tensor) -> Tensor:
        lam = self.lam.abs() + 1e-12
        q = floor_ste(torch.clamp(z / lam, 0.0, 1.0) * self.levels + self.shift) / self.levels
        return lam * q

    def forward(self, z: Tensor) -> Tensor:
        a = self.quantize(z)
        s = float(self.sigma)
        if self.training and s > 0 and self.noise != "none":
            if self.noise == "gaussian":
                eps = torch.randn(a.shape, generator=self.generator, dtype=a.dtype, device=a.device)
            else:  # uniform with unit variance
                eps = (torch.rand(a.shape, generator=self.generator, dtype=a.dtype, device=a.device) * 2 - 1) * 3 ** 0.5
            a = a + s * eps
        return a

    def extra_repr(self) -> str:
        return f"levels={self.levels}, lambda={self.spike_threshold:.4g}, noise={self.noise}, sigma={float(self.sigma):.4g}"


def _replace(model: nn.Module, match: Callable[[nn.Module], bool], make: Callable[[nn.Module, str], nn.Module]) -> int:
    """Replace every submodule ``match`` accepts (not inside one it accepted) by ``make(module, path)``."""
    n = 0
    for path, m in list(model.named_modules(remove_duplicate=False)):  # a module used at two places: both
        if path and match(m) and model.get_submodule(path) is m:  # not under a module replaced already
            model.set_submodule(path, make(m, path))
            n += 1
    return n


def _average_pool(m: nn.Module, _path: str) -> nn.Module:
    """The average pooling of a max pooling's geometry."""
    assert isinstance(m, nn.MaxPool2d)  # matched above
    return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode)


def quantize_relus(
    model: nn.Module, levels: int = 4, init_lambda: float | dict[str, float] = 8.0, noise: NoiseKind = "gaussian",
    replace_maxpool: bool = True,
) -> nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` replaced by :class:`NoisyQCFS` and (by default)
    every ``nn.MaxPool2d`` by an ``nn.AvgPool2d`` of the same geometry (max pooling has no exact
    rate-coded form). ``init_lambda``: one value, or a value per ReLU path. Functional ReLUs
    (``F.relu`` in forward) cannot be swapped: use modules."""
    for path, m in model.named_modules():
        if type(m).__module__ == nn.modules.activation.__name__ and not isinstance(m, (nn.ReLU, NoisyQCFS)):
            raise UnsupportedLayerError(type(m).__name__, path, "rate", "noise-aware training quantizes ReLUs only; "
                                        "replace this activation by nn.ReLU")
    model = copy.deepcopy(model)

    def make(_m: nn.Module, path: str) -> NoisyQCFS:
        lam = init_lambda[path] if isinstance(init_lambda, dict) else init_lambda
        return NoisyQCFS(levels, lam, noise)

    n = _replace(model, lambda m: isinstance(m, nn.ReLU), make)
    if replace_maxpool:
        _replace(model, lambda m: isinstance(m, nn.MaxPool2d), _average_pool)
    if n == 0:
        raise ValueError("the model has no nn.ReLU modules to replace (functional ReLUs cannot be swapped)")
    return model


def qcfs_layers(model: nn.Module) -> dict[str, NoisyQCFS]:
    return {name: m for name, m in model.named_modules() if isinstance(m, NoisyQCFS)}

"""Memristive compute-in-memory synapses: weights held as conductances in analog crossbars.

A weight w is stored on a differential pair of memristors, G+ - G- = w / w_max * (g_max - g_min),
each programmed to one of ``levels`` conductances between ``g_min`` and ``g_max`` (uniform in
conductance), with a programming error drawn once per device (``variation``: relative standard
deviation of the conductance range, Gaussian, clipped to the range). Inputs drive the rows; each
column integrates its current (Kirchhoff: the analog dot product) and an ``adc_bits`` converter
digitizes it over a full scale set from calibration data. Weights never move: no weight fetches,
but every synaptic event reads its cells, drives a row, and every output needs a conversion.

    xbar = MemristiveCrossbar(levels=16, variation=0.02, adc_bits=8)
    snn = xbar.place(snn, calibration=x_cal)          # every spike-driven Linear/Conv -> crossbar
    isospike.energy.estimate(snn, x, hardware=isospike.energy.crossbar_hardware(xbar))

Energy defaults (``cell_read_pj``, ``dac_pj``, ``adc_pj``) are those of the ``cim-memristor``
preset (ISAAC, Shafiee et al. ISCA 2016, Table I); conductance range and levels follow the
HfO2/TaOx arrays of Yao et al., Nature 577, 2020 (about 2-20 uS, 8-16 distinguishable levels).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isospike.batches import calibration_batches

_YAO = "Yao et al., Fully hardware-implemented memristor convolutional neural network, Nature 577, 641 (2020)"


@runtime_checkable
class SynapseHost(Protocol):
    """A module of a converted network that holds one synaptic ``layer`` (a converted network's
    synapses: :class:`isospike.conversion.timefold.CountingSynapse`): ``spike_input`` tells a
    layer driven by spikes, ``in_crossbar`` is set when the layer is placed on a crossbar."""

    layer: nn.Module
    spike_input: bool
    in_crossbar: bool


@dataclass(frozen=True)
class MemristiveCrossbar:
    """A memristive crossbar synapse unit (see the module docstring).

    levels: programmable conductance levels per device (>= 2). g_min_us, g_max_us: conductance
    range in microsiemens. variation: programming error, relative to the range (std of a
    Gaussian). adc_bits: output converter resolution (None: ideal analog read-out).
    adc_percentile: full scale of each layer's ADC = this percentile of |column output| on the
    calibration data. seed: programming errors are drawn from this seed (one draw per device).
    cell_read_pj, dac_pj, adc_pj: energy per cell read, row drive, conversion (pJ).
    """

    levels: int = 16
    g_min_us: float = 2.0
    g_max_us: float = 20.0
    variation: float = 0.0
    adc_bits: int | None = 8
    adc_percentile: float = 99.99
    seed: int = 0
    cell_read_pj: float = 0.0018
    dac_pj: float = 0.39
    adc_pj: float = 1.56
    sources: dict[str, str] = field(default_factory=lambda: {
        "levels, g_min_us, g_max_us, variation": _YAO,
        "cell_read_pj, dac_pj, adc_pj": "cim-memristor preset: Shafiee et al., ISAAC, ISCA 2016, Table I",
    })

    def __post_init__(self) -> None:
        if self.levels < 2:
            raise ValueError(f"levels must be >= 2, got {self.levels}")
        if not 0 <= self.g_min_us < self.g_max_us:
            raise ValueError(f"need 0 <= g_min_us < g_max_us, got {self.g_min_us}, {self.g_max_us}")
        if self.variation < 0:
            raise ValueError(f"variation must be >= 0, got {self.variation}")
        if self.adc_bits is not None and not 1 <= self.adc_bits <= 24:
            raise ValueError(f"adc_bits must be in 1..24 or None, got {self.adc_bits}")

    # ------------------------------------------------------------------ programming
    def program(self, weight: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, float]:
        """Conductances (G+, G-) in uS for ``weight`` and the weight per uS of difference.

        Each weight is quantized to the nearest difference of programmable levels (the larger
        device at a level, the other at g_min), then each device gets its programming error."""
        w = weight.detach().to(torch.float32)
        w_max = float(w.abs().max())
        span = self.g_max_us - self.g_min_us
        per_us = (w_max / span) if w_max > 0 else 1.0
        step = span / (self.levels - 1)
        mag = torch.round(w.abs() / per_us / step) * step  # quantized |G+ - G-|
        g_pos = torch.where(w >= 0, self.g_min_us + mag, torch.full_like(w, self.g_min_us))
        g_neg = torch.where(w < 0, self.g_min_us + mag, torch.full_like(w, self.g_min_us))
        if self.variation > 0:
            g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
            g_pos = g_pos + self.variation * span * torch.randn(w.shape, generator=g)
            g_neg = g_neg + self.variation * span * torch.randn(w.shape, generator=g)
            g_pos, g_neg = g_pos.clamp(self.g_min_us, self.g_max_us), g_neg.clamp(self.g_min_us, self.g_max_us)
        return g_pos, g_neg, per_us

    def effective_weight(self, weight: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The weight the crossbar realizes: (G+ - G-) * weight per uS."""
        g_pos, g_neg, per_us = self.program(weight, generator)
        return ((g_pos - g_neg) * per_us).to(weight.dtype)

    # ------------------------------------------------------------------ placement
    def place(self, model: nn.Module, calibration: Any = None, only_spike_driven: bool = True) -> nn.Module:
        """A copy of ``model`` whose synaptic layers run on crossbars.

        Converted SNNs (``isospike.convert``): every Linear/Conv synapse layer driven by spikes
        (``only_spike_driven=False``: every one); site-coded networks (any eager model) and plain
        modules: every Linear/Conv (a site-coded layer stays the same site: its population codes its
        input, the crossbar computes the product). With an ADC,
        ``calibration`` (required) sets each layer's full scale: inputs (tensor, pair, batches) or
        a function ``run(model)`` that feeds them (models with several inputs)."""
        model = copy.deepcopy(model)
        gen = torch.Generator().manual_seed(self.seed)
        placed: list[CrossbarLayer] = []
        if any(isinstance(m, SynapseHost) for m in model.modules()):
            for m in model.modules():
                if isinstance(m, SynapseHost) and isinstance(m.layer, (nn.Linear, nn.Conv1d, nn.Conv2d)) \
                        and (m.spike_input or not only_spike_driven):
                    layer = crossbar_layer(m.layer, self, gen)
                    m.layer = layer
                    m.in_crossbar = True
                    placed.append(layer)
        else:
            for path, m in list(model.named_modules()):
                if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and not isinstance(m, CrossbarLayer):
                    layer = crossbar_layer(m, self, gen)
                    if path:
                        model.set_submodule(path, layer)
                    else:  # the model is itself one layer: the crossbar version replaces it
                        model = cast(nn.Module, layer)
                    placed.append(layer)
        if not placed:
            raise ValueError("no Linear/Conv synapse layer to place on crossbars (spike-driven ones only: "
                             "pass only_spike_driven=False to include the input layer)")
        if self.adc_bits is not None:
            if calibration is None:
                raise ValueError("an ADC needs a full scale per layer: pass calibration=<inputs> (or adc_bits=None)")
            for layer in placed:
                layer.calibrating = True
            with torch.no_grad():
                if callable(calibration) and not isinstance(calibration, (Tensor, nn.Module)):
                    calibration(model)
                else:
                    for batch in calibration_batches(calibration, 256):
                        model(batch)
            for layer in placed:
                layer.finish_calibration(self.adc_percentile)
        model.crossbar = self  # type: ignore[assignment]  # torch stub: Module.__setattr__ takes any value
        return model


if TYPE_CHECKING:  # the mixin is only ever combined with nn.Linear / nn.Conv1d / nn.Conv2d
    _LayerBase = nn.Module
else:
    _LayerBase = object


class CrossbarLayer(_LayerBase):
    """Mixin: a Linear/Conv whose weight is the crossbar's realized weight, whose column sums go
    through an ADC (full scale from calibration), and whose bias is added digitally after it."""

    weight: Tensor
    adc_full_scale: Tensor  # buffer registered in _init_crossbar
    adc_bits: int | None
    calibrating: bool

    def _init_crossbar(self, source: nn.Linear | nn.Conv1d | nn.Conv2d, xbar: MemristiveCrossbar, gen: torch.Generator) -> None:
        self.load_state_dict(source.state_dict())
        with torch.no_grad():
            self.weight.copy_(xbar.effective_weight(source.weight, gen))
        self.adc_bits = xbar.adc_bits
        self.calibrating = False
        self._samples: list[Tensor] = []
        self.register_buffer("adc_full_scale", torch.tensor(0.0))

    def _bias_shaped(self, y: Tensor) -> Tensor:
        """The digital bias broadcast over the output: the last dimension of a Linear's output
        (any leading dimensions), the channel dimension 1 of a convolution's."""
        bias = cast(Tensor, self.bias)  # only called on a layer with a bias (a Parameter)
        if isinstance(self, nn.Linear):
            return bias
        return bias.reshape(-1, *([1] * (y.dim() - 2)))

    def analog(self, x: Tensor) -> Tensor:  # pragma: no cover - implemented by the subclasses
        raise NotImplementedError

    def ideal(self, x: Tensor) -> Tensor:
        """Analog column output plus bias, without the ADC (what folding a constant uses)."""
        y = self.analog(x)
        return y if self.bias is None else y + self._bias_shaped(y)

    def forward(self, x: Tensor) -> Tensor:
        y = self.analog(x)
        if self.calibrating:
            flat = y.detach().abs().flatten()
            if flat.numel() > 200_000:
                flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(len(self._samples)))[:200_000]]
            self._samples.append(flat)
        elif self.adc_bits is not None and float(self.adc_full_scale) > 0:
            fs = self.adc_full_scale
            lsb = 2 * fs / (2 ** self.adc_bits - 1)
            y = torch.round(y.clamp(-fs, fs) / lsb) * lsb
        return y if self.bias is None else y + self._bias_shaped(y)

    def finish_calibration(self, percentile: float) -> None:
        self.calibrating = False
        if self._samples:
            v = torch.cat(self._samples)
            v = v[torch.randperm(v.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
            self.adc_full_scale.fill_(max(float(torch.quantile(v.float(), percentile / 100)), 1e-12))
        self._samples = []


class CrossbarLinear(CrossbarLayer, nn.Linear):
    def analog(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight)


class CrossbarConv1d(CrossbarLayer, nn.Conv1d):
    def analog(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight, None)


class CrossbarConv2d(CrossbarLayer, nn.Conv2d):
    def analog(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight, None)


def crossbar_layer(layer: nn.Module, xbar: MemristiveCrossbar, gen: torch.Generator) -> CrossbarLayer:
    """The crossbar version of a Linear/Conv1d/Conv2d layer (same shapes and hyper-parameters)."""
    new: CrossbarLayer
    if isinstance(layer, nn.Linear):
        new = CrossbarLinear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    elif isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        cls = CrossbarConv1d if isinstance(layer, nn.Conv1d) else CrossbarConv2d
        new = cls(layer.in_channels, layer.out_channels,
                  layer.kernel_size, layer.stride,  # type: ignore[arg-type]  # torch stub: _ConvNd sizes are tuple[int, ...]
                  layer.padding, layer.dilation,  # type: ignore[arg-type]  # (the same, for padding and dilation)
                  layer.groups, layer.bias is not None, layer.padding_mode)
    else:
        raise TypeError(f"no crossbar version of {type(layer).__name__}")
    new._init_crossbar(layer, xbar, gen)
    return new

"""Spatial bit coding: a value of a k-bit format travels as k parallel spike lines in one time
step, line i firing iff bit i of its encoding is 1. A bijection on every bit pattern (NaN, inf,
subnormals, -0 included), so the coding error is zero by construction.

    spikes = encode(x)            # bool [..., k], line 0 = sign bit (msb first, as NEXUS)
    x2 = decode(spikes, x.dtype)  # bit-identical to x
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

_WIDTH = {
    torch.float32: (32, torch.int32), torch.float16: (16, torch.int16), torch.bfloat16: (16, torch.int16),
    torch.int32: (32, torch.int32), torch.int16: (16, torch.int16), torch.int8: (8, torch.int8),
    torch.uint8: (8, torch.uint8), torch.int64: (64, torch.int64),
}
BitOrder = Literal["msb", "lsb"]


def _spec(dtype: torch.dtype) -> tuple[int, torch.dtype]:
    try:
        return _WIDTH[dtype]
    except KeyError:
        raise TypeError(
            f"spatial bit coding supports {', '.join(str(d).replace('torch.', '') for d in _WIDTH)}; got {dtype}"
        ) from None


def encode(x: Tensor, bit_order: BitOrder = "msb") -> Tensor:
    """Spike lines of ``x``: bool tensor ``[*x.shape, k]`` (k = bits of x's dtype). With
    ``bit_order="msb"`` line 0 carries the most significant bit (the sign of a float)."""
    width, int_dtype = _spec(x.dtype)
    if bit_order not in ("msb", "lsb"):
        raise ValueError(f"bit_order must be 'msb' or 'lsb', got {bit_order!r}")
    ints = x.contiguous().view(int_dtype).to(torch.int64) if x.dtype != torch.int64 else x.contiguous()
    shifts = torch.arange(width, device=x.device)
    bits = ((ints.unsqueeze(-1) >> shifts) & 1).to(torch.bool)
    return bits.flip(-1) if bit_order == "msb" else bits


def decode(spikes: Tensor, dtype: torch.dtype, bit_order: BitOrder = "msb") -> Tensor:
    """Inverse of :func:`encode`: ``[..., k]`` spike lines -> tensor of ``dtype`` and shape ``[...]``."""
    width, int_dtype = _spec(dtype)
    if spikes.shape[-1:] != (width,):
        raise ValueError(f"{dtype} needs {width} spike lines in the last dimension, got shape {tuple(spikes.shape)}")
    if bit_order not in ("msb", "lsb"):
        raise ValueError(f"bit_order must be 'msb' or 'lsb', got {bit_order!r}")
    bits = spikes.flip(-1) if bit_order == "msb" else spikes
    weights = torch.ones(width, dtype=torch.int64, device=spikes.device) << torch.arange(width, device=spikes.device)
    ints = (bits.to(torch.int64) * weights).sum(-1)  # two's complement wrap for the top bit
    if width < 64:
        half = 1 << (width - 1)
        ints = ints.to(int_dtype) if int_dtype == torch.uint8 else ((ints + half) % (1 << width) - half).to(int_dtype)
    return ints.view(dtype) if dtype != int_dtype else ints

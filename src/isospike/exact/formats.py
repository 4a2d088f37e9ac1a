"""IEEE-754 binary formats handled by the exact circuits."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE-754 binary format: ``exp_bits`` exponent bits, ``man_bits`` stored fraction bits.

    Values are (-1)^s * 1.f * 2^(e - bias) for 0 < e < 2^E - 1, subnormals 0.f * 2^(1 - bias)
    for e = 0, infinities and NaNs for e = 2^E - 1."""

    name: str
    exp_bits: int
    man_bits: int
    dtype: torch.dtype
    int_dtype: torch.dtype  # same-width integer dtype for bit views

    @property
    def width(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def precision(self) -> int:
        """p: significand bits including the hidden bit."""
        return self.man_bits + 1

    @property
    def exp_max(self) -> int:
        """The all-ones exponent field (infinities and NaNs)."""
        return (1 << self.exp_bits) - 1

    @property
    def quiet_nan(self) -> int:
        """Canonical quiet NaN bit pattern: sign 0, exponent all ones, top fraction bit set."""
        return (self.exp_max << self.man_bits) | (1 << (self.man_bits - 1))


FLOAT32 = FloatFormat("float32", 8, 23, torch.float32, torch.int32)
BFLOAT16 = FloatFormat("bfloat16", 8, 7, torch.bfloat16, torch.int16)
FLOAT16 = FloatFormat("float16", 5, 10, torch.float16, torch.int16)
FORMATS: dict[torch.dtype, FloatFormat] = {f.dtype: f for f in (FLOAT32, BFLOAT16, FLOAT16)}


def format_of(dtype: torch.dtype) -> FloatFormat:
    """The format of a supported floating dtype; TypeError naming the fix otherwise."""
    try:
        return FORMATS[dtype]
    except KeyError:
        raise TypeError(
            f"isospike.exact supports float32, bfloat16 and float16 tensors, got {dtype}; "
            "convert first, e.g. x.float()"
        ) from None


def canonical_nan(y: torch.Tensor) -> torch.Tensor:
    """Replace every NaN by the canonical quiet NaN (positive, payload 0), as the circuits do
    (nothing is copied when there is no NaN)."""
    nan = torch.isnan(y)
    if bool(nan.any()):
        y = y.masked_fill(nan, abs(float("nan")))
    return y

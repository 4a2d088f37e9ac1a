"""Agreement metrics between networks: ULP distance, spike statistics."""

from __future__ import annotations

import torch
from torch import Tensor

_INT = {torch.float32: (torch.int32, 0x7FFFFFFF), torch.float16: (torch.int16, 0x7FFF),
        torch.bfloat16: (torch.int16, 0x7FFF), torch.float64: (torch.int64, 0x7FFFFFFFFFFFFFFF)}
NAN_MISMATCH = torch.iinfo(torch.int64).max


def ordered_bits(x: Tensor) -> Tensor:
    """Map floats to int64 so that consecutive representable values differ by 1 and the order
    is that of the reals (+0 and -0 both map to 0)."""
    try:
        int_dtype, mag_mask = _INT[x.dtype]
    except KeyError:
        raise TypeError(f"ordered_bits needs a float32/float16/bfloat16/float64 tensor, got {x.dtype}") from None
    i = x.contiguous().view(int_dtype).to(torch.int64)
    return torch.where(i < 0, -(i & mag_mask), i)


def ulp_distance(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise distance in units in the last place between two tensors of one float dtype:
    the number of representable values between them (0 = bit-identical or +-0). Both NaN -> 0;
    exactly one NaN -> ``NAN_MISMATCH`` (int64 max). Returns int64, broadcast shape. float64
    distances beyond int64 (values of opposite signs near the ends of the range, e.g. -inf and
    +inf) saturate at int64 max, the same value as ``NAN_MISMATCH``."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"ulp_distance needs two tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.dtype != b.dtype:
        raise TypeError(f"ulp_distance needs one dtype, got {a.dtype} and {b.dtype}")
    if a.dtype not in _INT:
        raise TypeError(f"ulp_distance needs float32/float16/bfloat16/float64 tensors, got {a.dtype}")
    try:
        a, b = torch.broadcast_tensors(a, b)
    except RuntimeError:
        raise ValueError(f"ulp_distance: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast "
                         "together") from None
    d = _saturating_distance(ordered_bits(a), ordered_bits(b))
    na, nb = torch.isnan(a), torch.isnan(b)
    d = torch.where(na & nb, torch.zeros_like(d), d)
    return torch.where(na ^ nb, torch.full_like(d, NAN_MISMATCH), d)


def _saturating_distance(ia: Tensor, ib: Tensor) -> Tensor:
    """|ia - ib| for int64 ordered bits (each within +-(2^63 - 1)), saturated at int64 max
    instead of wrapping around: of one sign the difference cannot overflow; of opposite signs
    it is |ia| + |ib|, computed as min(|ia|, max - |ib|) + |ib|."""
    same_sign = (ia < 0) == (ib < 0)
    aa, ab = ia.abs(), ib.abs()
    across = torch.minimum(aa, NAN_MISMATCH - ab) + ab
    return torch.where(same_sign, (ia - ib).abs(), across)

import math
import struct

import numpy as np
import pytest
import torch

from isospike.metrics import NAN_MISMATCH, ulp_distance


def test_ulp_distance_counts_representable_steps():
    x = torch.tensor([1.0, 1.0, -0.0, 0.0, 1e-45, -1e-45, float("inf"), 3.4028235e38])
    y = torch.tensor([np.nextafter(np.float32(1), np.float32(2)), 1.0, 0.0, 0.0, -1e-45, 1e-45, 3.4028235e38, float("inf")])
    assert ulp_distance(x, y).tolist() == [1, 0, 0, 0, 2, 2, 1, 1]
    assert ulp_distance(torch.tensor([2.0]), torch.tensor([1.0])).item() == 2**23


def test_ulp_distance_nan_and_dtypes():
    n = torch.tensor([float("nan"), float("nan"), 1.0])
    m = torch.tensor([float("nan"), 1.0, float("nan")])
    assert ulp_distance(n, m).tolist() == [0, NAN_MISMATCH, NAN_MISMATCH]
    h = torch.tensor([1.0], dtype=torch.float16)
    assert ulp_distance(h, h + torch.tensor([2 ** -10], dtype=torch.float16)).item() == 1
    assert ulp_distance(torch.ones(2, 1), torch.ones(3)).shape == (2, 3)
    with pytest.raises(TypeError, match="one dtype"):
        ulp_distance(torch.ones(1), torch.ones(1, dtype=torch.float16))
    with pytest.raises(TypeError, match="float32"):
        ulp_distance(torch.ones(1, dtype=torch.int32), torch.ones(1, dtype=torch.int32))


def _ordered_f64(v: float) -> int:
    """Independent reference: the ordered integer of a float64 with Python's unbounded ints."""
    i = struct.unpack("<q", struct.pack("<d", v))[0]
    return -(i & 0x7FFFFFFFFFFFFFFF) if i < 0 else i


def test_ulp_distance_float64_opposite_signs_saturates_instead_of_wrapping():
    int64_max = torch.iinfo(torch.int64).max
    a = [-math.inf, -1e308, -5e-324, 1.0, -0.0, -2.5, 1e-300]
    b = [math.inf, 1e308, 1.0, -1.0, 5e-324, 3.0, -1e-300]
    got = ulp_distance(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)).tolist()
    want = [min(abs(_ordered_f64(x) - _ordered_f64(y)), int64_max) for x, y in zip(a, b)]
    assert got == want
    assert got[0] == got[1] == int64_max and 0 < got[3] < int64_max


def test_ulp_distance_refuses_bad_shapes_and_non_floats():
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\)"):
        ulp_distance(torch.ones(2), torch.ones(3))
    with pytest.raises(TypeError, match="ulp_distance.*int64"):
        ulp_distance(torch.ones(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64))
    with pytest.raises(TypeError, match="ulp_distance.*list"):
        ulp_distance([1.0], torch.ones(1))

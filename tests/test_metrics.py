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

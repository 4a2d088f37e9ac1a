import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from isospike.coding import sigma_delta

signals = arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 5)),
                 elements=st.floats(-50, 50, width=32))


def _loop_reference(x: np.ndarray, threshold: float, leak: float, rounding: bool) -> np.ndarray:
    """Straightforward per-element loop of the send-on-delta rule."""
    out = np.zeros(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        xhat = 0.0
        for t in range(x.shape[0]):
            e = (float(x[t, j]) - leak * xhat) / threshold
            n = int(np.round(e)) if rounding else int(np.trunc(e))
            xhat = leak * xhat + threshold * n
            out[t, j] = n
    return out


def _float32_rounding(x: np.ndarray, threshold: float) -> float:
    """What float32 decoding adds to the exact bound: one rounding of the decoded value per step
    (|decoded| <= |x| + threshold), e.g. 2.4e-7 at x = 4."""
    return 2 * x.shape[0] * float(np.spacing(np.float32(np.abs(x).max() + threshold)))


@given(signals, st.sampled_from([0.01, 0.1, 0.7, 3.0]), st.sampled_from([1.0, 0.9, 0.5]))
def test_reconstruction_error_is_below_threshold(x, threshold, leak):
    xt = torch.from_numpy(x)
    spikes = sigma_delta.encode(xt, threshold=threshold, leak=leak)
    err = (sigma_delta.decode(spikes, threshold=threshold, leak=leak).double() - xt.double()).abs()
    assert float(err.max()) < threshold * (1 + 1e-6) + _float32_rounding(x, threshold)
    np.testing.assert_array_equal(spikes.numpy(), _loop_reference(x, threshold, leak, rounding=False))


@given(signals, st.sampled_from([0.01, 0.1, 0.7, 3.0]))
def test_rounding_quantizer_halves_the_bound(x, threshold):
    xt = torch.from_numpy(x)
    spikes = sigma_delta.encode(xt, threshold=threshold, quantizer="round")
    err = (sigma_delta.decode(spikes, threshold=threshold).double() - xt.double()).abs()
    assert float(err.max()) <= threshold / 2 * (1 + 1e-6) + _float32_rounding(x, threshold)
    np.testing.assert_array_equal(spikes.numpy(), _loop_reference(x, threshold, 1.0, rounding=True))


def test_constant_signal_spikes_once_and_changes_cost_spikes():
    x = torch.full((10, 3), 0.55)
    spikes = sigma_delta.encode(x, threshold=0.1)
    assert spikes[0].tolist() == [5, 5, 5] and int(spikes[1:].abs().sum()) == 0
    step = torch.cat([torch.zeros(4, 1), torch.ones(4, 1), torch.zeros(4, 1)])
    s = sigma_delta.encode(step, threshold=0.25)
    assert s[:, 0].tolist() == [0, 0, 0, 0, 4, 0, 0, 0, -4, 0, 0, 0]


def test_empty_and_bad_input():
    assert sigma_delta.encode(torch.zeros(0, 4), threshold=0.1).shape == (0, 4)
    with pytest.raises(ValueError, match="threshold"):
        sigma_delta.encode(torch.zeros(3), threshold=0.0)
    with pytest.raises(ValueError, match="leak"):
        sigma_delta.decode(torch.zeros(3, dtype=torch.int32), threshold=0.1, leak=1.5)
    with pytest.raises(TypeError, match="floating"):
        sigma_delta.encode(torch.zeros(3, dtype=torch.int64), threshold=0.1)
    with pytest.raises(ValueError, match="quantizer"):
        sigma_delta.encode(torch.zeros(3), threshold=0.1, quantizer="floor")


def test_non_finite_or_overflowing_signals_are_refused_and_decode_keeps_float64():
    with pytest.raises(ValueError, match="NaN or inf"):
        sigma_delta.encode(torch.tensor([[0.0], [float("nan")]]), threshold=0.1)
    with pytest.raises(ValueError, match="max_spikes"):
        sigma_delta.encode(torch.tensor([[0.0], [1e9]]), threshold=0.01)
    capped = sigma_delta.encode(torch.tensor([[0.0], [1e9]]), threshold=0.01, max_spikes=3)
    assert capped.abs().max() == 3
    x = torch.tensor([[0.1234567891234], [1e3 + 0.1234567891234]], dtype=torch.float64)
    x_hat = sigma_delta.decode(sigma_delta.encode(x, threshold=1e-6), threshold=1e-6, dtype=torch.float64)
    assert x_hat.dtype == torch.float64 and float((x_hat - x).abs().max()) <= 1e-6


@pytest.mark.parametrize("kwargs, match", [
    (dict(threshold=float("inf")), "finite"),
    (dict(threshold=float("nan")), "finite"),
    (dict(threshold=0.1, max_spikes=-1), "max_spikes"),
    (dict(threshold=0.1, max_spikes=0), "max_spikes"),
    (dict(threshold=0.1, max_spikes=1.5), "max_spikes"),
])
def test_encode_refuses_thresholds_and_limits_that_carry_nothing(kwargs, match):
    # an infinite threshold made 0 * inf = NaN spike counts (cast to -2**31); max_spikes <= 0 sent nothing
    with pytest.raises(ValueError, match=match):
        sigma_delta.encode(torch.randn(4, 3), **kwargs)
    assert sigma_delta.encode(torch.randn(4, 3), threshold=0.1, max_spikes=np.int64(2)).abs().max() <= 2

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from isospike.coding import rate
from isospike.neurons import IFNeuron


@given(st.integers(1, 64), st.floats(0.1, 5.0), st.integers(0, 2**31 - 1))
def test_deterministic_rate_is_within_half_a_step(T, scale, seed):
    x = (torch.rand(200, generator=torch.Generator().manual_seed(seed)) * 1.4 - 0.2) * scale
    spikes = rate.encode(x, T, scale)
    assert spikes.shape == (T, 200) and set(spikes.unique().tolist()) <= {0.0, 1.0}
    err = (rate.decode(spikes, scale) - x.clamp(0, scale)).abs()
    assert float(err.max()) <= scale / (2 * T) + 1e-5 * scale


def test_deterministic_encoder_is_an_if_neuron():
    x = torch.rand(50)
    n = IFNeuron(threshold=1.0, v_init=0.5, reset="subtract", step_mode="multi")
    assert torch.equal(rate.encode(x, 16), n(x.expand(16, 50)).float())


def test_poisson_rates_converge():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    s = rate.encode(x, 20000, method="poisson", generator=torch.Generator().manual_seed(0))
    assert torch.allclose(rate.decode(s), x, atol=0.02)


def test_errors():
    with pytest.raises(ValueError):
        rate.encode(torch.zeros(2), 0)
    with pytest.raises(TypeError):
        rate.encode(torch.zeros(2, dtype=torch.int64), 4)
    with pytest.raises(ValueError):
        rate.encode(torch.zeros(2), 4, method="burst")
    with pytest.raises(ValueError):
        rate.decode(torch.zeros(0, 3))

"""torch.compile on converted networks: dynamo cannot trace into the numba kernel, so the IF
populations take their torch path while compiling (the same float32 sequence). Spikes are the
eager run's exactly; the outputs agree to float rounding (inductor fuses the synapse layers'
bias additions and the read-out mean, so their last bit may differ, as for any compiled model).
The compiled module goes wherever the eager one does (simulate, counting, verify, energy)."""

import pytest
import torch
from torch import nn

import isospike as isp


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("coding", ["rate", "ttfs", "mttfs", "sigma_delta"])
def test_compiled_networks_give_the_eager_outputs_and_counts(coding):
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(16, 6)
    snn = isp.convert(ann, coding=coding, calibration=x)
    eager = isp.simulate(snn, x)
    compiled = torch.compile(snn)
    with torch.no_grad():
        y = compiled(x)
        assert torch.allclose(y, eager.output, rtol=1e-6, atol=1e-6)
        y2 = compiled(x)  # no recompilation is needed for a second call
    assert torch.equal(y, y2)
    with isp.counting(compiled) as seen:
        with torch.no_grad():
            compiled(x)
    assert seen.spikes == eager.spikes and seen.layers == eager.layers
    again = isp.simulate(compiled, x)
    assert again.spikes == eager.spikes and torch.allclose(again.output, eager.output, rtol=1e-6, atol=1e-6)
    assert isp.verify(compiled, x).holds == isp.verify(snn, x).holds
    assert isp.energy.estimate(compiled, x).total_j == pytest.approx(isp.energy.estimate(snn, x).total_j)

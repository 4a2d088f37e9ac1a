"""NeuroBench on every coding and network shape (issue 33, item 4): isospike.energy.neurobench_model
gives NeuroBench isospike's counts on every layer except those neurobench_differences names, and
those are exactly where the totals differ."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import isospike as isp
import isospike.energy as E
from isospike.models import SmallCNN

pytest.importorskip("neurobench")


class _ResCNN(nn.Module):
    """A residual block (identity shortcut: spikes enter the sum directly), pooling, Flatten."""

    def __init__(self):
        super().__init__()
        self.conv0, self.conv1, self.conv2 = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1), \
            nn.Conv2d(6, 6, 3, padding=1)
        self.pool, self.fc1, self.fc2 = nn.AvgPool2d(2), nn.Linear(6 * 16, 24), nn.Linear(24, 5)

    def forward(self, x):
        h = torch.relu(self.conv0(x))
        h = torch.relu(h + self.conv2(torch.relu(self.conv1(h))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.pool(h), 1))))


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 5))


def _both(snn, x):
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations

    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=len(x))
    nb = Benchmark(E.neurobench_model(snn), loader, [], [], [[], [SynapticOperations, ActivationSparsity]]).run()
    synapses = [a for a in E.collect(snn, x).layers if a.kind in ("ac", "mac")]
    neurons = [s for s in isp.simulate(snn, x).layers.values() if s.kind == "neuron"]
    sparsity = 1 - sum(s.spikes for s in neurons) / sum(s.neuron_updates for s in neurons)
    return nb["SynapticOperations"], nb["ActivationSparsity"], synapses, sparsity


@pytest.mark.parametrize("make", [lambda: SmallCNN(input_size=8), _ResCNN], ids=["pooled", "residual"])
def test_rate_cnns_agree_except_the_pooling_neurobench_does_not_count(make):
    torch.manual_seed(0)
    x = torch.rand(12, 1, 8, 8)
    snn = isp.convert(make().eval(), "rate", timesteps=4, calibration=x)
    assert any(float(m.neuron.spike_value.max()) != 1.0 for _, m in snn.neurons())
    ops, sparsity, synapses, ours_sparsity = _both(snn, x)
    differ = E.neurobench_differences(snn)
    pools = {name for name, m in snn.graph_module.named_modules() if isinstance(getattr(m, "layer", None), nn.AvgPool2d)}
    assert len(pools) == 1
    assert {d.layer for d in differ} == pools and all(d.metric == "SynapticOperations" for d in differ)
    counted = [a for a in synapses if a.name not in pools]
    assert sum(a.acs for a in counted) == pytest.approx(ops["Effective_ACs"])
    assert sum(a.macs for a in counted) == pytest.approx(ops["Effective_MACs"])
    assert sum(a.dense_ops for a in counted) == pytest.approx(ops["Dense"])
    assert sum(a.acs for a in synapses) > ops["Effective_ACs"]  # the pooling isospike counts on top
    assert sparsity == pytest.approx(ours_sparsity, abs=1e-9)
    assert torch.allclose(E.neurobench_model(snn).net(x), snn(x), atol=1e-5)  # the same function


@pytest.mark.parametrize("coding,kwargs", [("ttfs", {}), ("mttfs", {}), ("sigma_delta", {})])
def test_ttfs_mttfs_and_sigma_delta_differ_where_neurobench_differences_says(coding, kwargs):
    torch.manual_seed(0)
    x = torch.rand(12, 1, 8, 8)
    snn = isp.convert(_mlp().eval(), coding, calibration=x, **kwargs)
    ops, sparsity, synapses, ours_sparsity = _both(snn, x)
    differ = E.neurobench_differences(snn)
    fed = {d.layer for d in differ if d.metric == "SynapticOperations"}
    populations = {d.layer for d in differ if d.metric == "ActivationSparsity"}
    assert len(populations) == 2 and fed == {a.name for a in synapses if a.kind == "ac"} and len(fed) == 2
    first = [a for a in synapses if a.name not in fed]  # the analog input layer: MACs for both
    assert ops["Dense"] == pytest.approx(sum(a.dense_ops for a in synapses))
    assert ops["Effective_ACs"] == 0  # spikes reach the layers as values: all MACs to NeuroBench
    if coding == "sigma_delta":  # k levels: k ACs to isospike, one MAC to NeuroBench
        assert ops["Effective_MACs"] < sum(a.macs + a.acs for a in synapses)
        assert all("k levels" in d.isospike for d in differ if d.layer in fed)
    else:  # one spike, one operation per synapse either way: the same number, split differently
        assert ops["Effective_MACs"] == pytest.approx(sum(a.macs + a.acs for a in synapses))
        assert ops["Effective_MACs"] > sum(a.macs for a in first)
    assert sparsity != pytest.approx(ours_sparsity, abs=1e-3)  # per neuron vs per neuron update

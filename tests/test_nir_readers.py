"""isospike's NIR exports run in other tools as they are (issue 33, item 1).

Each reader (snnTorch, Norse, sinabs, rockpool, nirtorch) reads the file written for it by
``isospike.nir.export(snn, path, reader=...)`` with its own NIR importer, runs it T steps on the
test digits, and is compared with isospike's simulation of the same network: the decisions
(argmax of the summed read-out) and the spikes of every population. Networks: an MLP, and a CNN
with a residual add, average pooling and Flatten. Readers that run the populations' dynamics
exactly (snnTorch, Norse, nirtorch: reset to zero) give the same spikes; sinabs and rockpool emit
several spikes in a step where isospike's IF neuron emits one and keeps the rest for later, which
the tolerance (>= 99% decisions, spikes within 1%) covers. A reader that is not installed is
skipped with its name.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import isospike as isp
from isospike.nir.readers import READERS

nir = pytest.importorskip("nir")

T = 16
SAMPLES = 100


class ResCNN(nn.Module):
    """Conv -> residual block (identity shortcut) -> average pooling -> Flatten -> MLP head."""

    def __init__(self, shortcut: bool = False):
        super().__init__()
        self.conv0 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.proj = nn.Conv2d(8, 8, 1) if shortcut else None
        self.pool = nn.AvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(8 * 16, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        h = torch.relu(self.conv0(x))
        skip = self.proj(h) if self.proj is not None else h
        h = torch.relu(skip + self.conv2(torch.relu(self.conv1(h))))
        return self.fc2(torch.relu(self.fc1(self.flat(self.pool(h)))))


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 10))


def _train(model, data, epochs):
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(epochs):
        perm = torch.randperm(len(data.x), generator=g)
        for i in range(0, len(perm), 128):
            idx = perm[i:i + 128]
            loss = nn.functional.cross_entropy(model(data.x[idx]), data.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def models(digits):
    torch.manual_seed(0)
    return {"mlp": _train(_mlp(), digits.train, 10), "cnn": _train(ResCNN(), digits.train, 6)}


# ------------------------------------------------------------------ each reader, as a user runs it
def _counting(modules):
    """Spikes each module emits (a multi-spike output counts its value)."""
    counts: dict[str, float] = {}

    def hook(name):
        def record(_m, _i, out):
            out = out[0] if isinstance(out, tuple) else out
            counts[name] = counts.get(name, 0.0) + float(out.detach().sum())
        return record

    for name, m in modules:
        m.register_forward_hook(hook(name))
    return counts


def _stepwise(net, x, steps):
    state, total = None, 0
    with torch.no_grad():
        for _ in range(steps):
            y, state = net(x, state)
            total = total + y
    return total


def run_norse(path, x, steps):
    import norse.torch as nt

    net = nt.from_nir(nir.read(str(path)))
    counts = _counting([(n, m) for n, m in net.named_modules() if isinstance(m, nt.IAFCell)])
    return _stepwise(net, x, steps), counts


class SpecIF(nn.Module):
    """nir.IF as NIR defines it (reset to v_reset, V(0) = 0): the module a nirtorch user maps it to."""

    def __init__(self, node):
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(np.asarray(node.v_threshold * node.r), dtype=torch.float32))
        self.register_buffer("v_reset", torch.as_tensor(np.asarray(node.v_reset), dtype=torch.float32))

    def forward(self, x, state=None):
        v = (torch.zeros_like(x) if state is None else state) + x
        s = (v > self.threshold).float()
        return s, torch.where(s > 0, self.v_reset.expand_as(v), v)


def affine(node):
    """nir.Affine with its bias: nirtorch 2.6's default map assigns the bias to ``weight.bias``
    (the layer keeps its random one), so a user maps Affine too."""
    m = nn.Linear(node.weight.shape[1], node.weight.shape[0])
    m.weight.data = torch.as_tensor(np.asarray(node.weight))
    m.bias.data = torch.as_tensor(np.asarray(node.bias))
    return m


def run_nirtorch(path, x, steps):
    import nirtorch

    net = nirtorch.nir_to_torch(nir.read(str(path)), {nir.IF: SpecIF, nir.Affine: affine})
    counts = _counting([(n, m) for n, m in net.named_modules() if isinstance(m, SpecIF)])
    return _stepwise(net, x, steps), counts


def run_snntorch(path, x, steps):
    import snntorch
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        net = import_from_nir(nir.read(str(path)))
    neurons = [(n, m) for n, m in net.named_modules() if isinstance(m, snntorch.Leaky)]
    for _, m in neurons:
        m.reset_hidden()
    counts = _counting(neurons)
    return _stepwise(net, x, steps), counts


def run_sinabs(path, x, steps):
    import sinabs.layers as sl
    from sinabs.nir import from_nir

    b = x.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # nirtorch.load
        net = from_nir(nir.read(str(path)), batch_size=b)
    counts = _counting([(n, m) for n, m in net.named_modules() if isinstance(m, (sl.LIFSqueeze, sl.IAFSqueeze))])
    steps_in = x.unsqueeze(1).expand(b, steps, *x.shape[1:]).reshape(b * steps, *x.shape[1:])
    with torch.no_grad():
        y, _ = net(steps_in)
    return y.reshape(b, steps, -1).sum(1), counts


def run_rockpool(path, x, steps):
    from rockpool.nn.modules.torch import LIFTorch
    from rockpool.nn.modules.torch.nir import from_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nirtorch.load, rockpool's optional back-ends
        net = from_nir(nir.read(str(path)))
    counts = _counting([(n, m) for n, m in net.named_modules() if isinstance(m, LIFTorch)])
    b = x.shape[0]
    with torch.no_grad():
        y, _ = net(x.reshape(b, 1, -1).expand(b, steps, -1))  # rockpool layers are dense: flat samples
    return y.sum(1), counts


RUNNERS = {"snntorch": (run_snntorch, "snntorch.import_nir"), "norse": (run_norse, "norse.torch"),
           "sinabs": (run_sinabs, "sinabs.nir"), "rockpool": (run_rockpool, "rockpool.nn.modules.torch.nir"),
           "nirtorch": (run_nirtorch, "nirtorch")}


def _reader(name):
    run, module = RUNNERS[name]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found or importlib.util.find_spec("nirtorch") is None:
        pytest.skip(f"{name} is not installed (make test installs it: see the Makefile)")
    try:
        importlib.import_module(module)
    except ImportError as exc:  # installed without a requirement it imports
        pytest.skip(f"{name} does not import here ({exc})")
    return run



@pytest.mark.parametrize("shape", ["mlp", "cnn"])
@pytest.mark.parametrize("reader", list(RUNNERS))
def test_the_export_runs_in_the_reader_as_isospike_runs_it(tmp_path, models, digits, reader, shape):
    run = _reader(reader)
    profile = READERS[reader]
    snn = isp.convert(models[shape], coding="rate", timesteps=T, calibration=digits.train.x[:512],
                      reset=profile.reset, v_init=0.0)
    path = tmp_path / f"{reader}.nir"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a network the reader runs exactly: nothing to warn about
        isp.nir.export(snn, path, reader=reader)
    x = digits.test.x[:SAMPLES]
    ours = isp.simulate(snn, x, timesteps=T)
    populations = {name: s.spikes for name, s in ours.layers.items() if s.kind == "neuron"}
    y, counts = run(path, x, T)
    graph = nir.read(str(path))
    theirs = {k: counts[k] for k, n in graph.nodes.items() if isinstance(n, (nir.IF, nir.LIF, nir.CubaLIF))}
    assert len(theirs) == len(populations) == (2 if shape == "mlp" else 4)
    decisions = float((y.argmax(1) == ours.output.argmax(1)).float().mean())
    if profile.multi_spike:  # several spikes per step where isospike's IF keeps the surplus for later steps
        assert decisions >= 0.99
        assert abs(sum(theirs.values()) - ours.spikes) <= 0.01 * ours.spikes
        for got, want in zip(theirs.values(), populations.values()):
            assert abs(got - want) <= 0.01 * want
    else:
        assert decisions == 1.0
        assert list(theirs.values()) == list(populations.values())
    # isospike reads the reader's file back as the exported network
    back = isp.nir.load(path)
    again = isp.simulate(back, x.flatten(1) if profile.dense else x, timesteps=T)
    assert again.spikes == ours.spikes and torch.equal(again.output.argmax(1), ours.output.argmax(1))


def test_a_network_the_reader_would_run_differently_is_refused_with_the_conversion_it_runs(models, digits):
    cal = digits.train.x[:256]
    default = isp.convert(models["mlp"], coding="rate", timesteps=8, calibration=cal)  # subtract, V(0) = theta/2
    for reader, reset in (("snntorch", "zero"), ("norse", "zero"), ("sinabs", "subtract"), ("rockpool", "subtract")):
        with pytest.raises(ValueError, match=rf"{reader} runs .*reset={reset!r}, v_init=0\.0"):
            isp.nir.export(default, reader=reader)
    zero = isp.convert(models["mlp"], coding="rate", timesteps=8, calibration=cal, reset="zero", v_init=0.0)
    with pytest.raises(ValueError, match="reset='subtract', v_init=0.0"):
        isp.nir.export(zero, reader="sinabs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NIR's own IF: the standard export has nothing to warn about
        isp.nir.export(zero)
    ttfs = isp.convert(models["mlp"], coding="ttfs", calibration=cal)
    with pytest.raises(ValueError, match="ttfs population"):
        isp.nir.export(ttfs, reader="norse")
    with pytest.raises(ValueError, match="reader must be None"):
        isp.nir.export(zero, reader="lava")


def test_a_projection_shortcut_is_refused_for_depth_first_readers(digits):
    """nirtorch.load (Norse, sinabs, rockpool) runs nodes depth first: with layers on both
    branches of a sum one branch would arrive a step late. snnTorch and nirtorch's own
    interpreter order them right."""
    torch.manual_seed(0)
    snn = isp.convert(ResCNN(shortcut=True).eval(), coding="rate", timesteps=4, calibration=digits.train.x[:64],
                      reset="zero", v_init=0.0)
    with pytest.raises(ValueError, match="depth first"):
        isp.nir.export(snn, reader="norse")
    graph = isp.nir.export(snn, reader="snntorch")
    assert sum(isinstance(n, nir.LIF) for n in graph.nodes.values()) == 4

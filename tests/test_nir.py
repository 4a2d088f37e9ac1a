import warnings

import numpy as np
import pytest
import torch
from torch import nn

import isospike as isp

nir = pytest.importorskip("nir")


@pytest.mark.parametrize("coding,kwargs", [("rate", dict(timesteps=6)), ("ttfs", {}), ("mttfs", dict(dead_zone=1)),
                                           ("sigma_delta", dict(levels=8))])
def test_export_load_round_trip(tmp_path, trained_digits_cnn, digits, coding, kwargs):
    x = digits.test.x[:100]
    snn = isp.convert(trained_digits_cnn, coding=coding, calibration=digits.train.x[:256], **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        isp.nir.export(snn, tmp_path / "m.nir")
    messages = [str(w.message) for w in caught]
    # rate: NIR has an IF neuron, but it resets to v_reset and starts at 0 -- a standard reader runs
    # our reset-by-subtraction populations differently, and export says so; the others have no NIR neuron
    assert any("reset" in m and "nirtorch" in m for m in messages) == (coding == "rate")
    assert any("no " in m and "neuron" in m for m in messages) == (coding != "rate")
    again = isp.nir.load(tmp_path / "m.nir")
    a, b = isp.simulate(snn, x), isp.simulate(again, x)
    assert torch.allclose(a.output, b.output, atol=1e-5)
    assert a.spikes == b.spikes and a.synaptic_ops == b.synaptic_ops


def test_rate_graph_is_standard_nir(trained_digits_cnn, digits):
    snn = isp.convert(trained_digits_cnn, coding="rate", timesteps=4, calibration=digits.train.x[:256])
    g = isp.nir.export(snn)
    kinds = [type(n).__name__ for n in g.nodes.values()]
    assert kinds[0] == "Input" and kinds[-1] == "Output" and kinds.count("IF") == 3 and "Conv2d" in kinds
    first_if = next(n for n in g.nodes.values() if isinstance(n, nir.IF))
    theta = next(iter(snn.info["thresholds"].values()))
    assert np.allclose(first_if.v_threshold, theta)
    # spikes carry 1 in NIR: the weights after a population are scaled by its theta
    names = list(g.nodes)
    second = g.nodes[names[3]]
    syn = snn.graph_module.get_submodule(names[3].replace("_", "."))
    assert np.allclose(second.weight, syn.layer.weight.detach().numpy() * theta, rtol=1e-6)


def test_another_nir_reader_parses_the_file(tmp_path, trained_digits_cnn, digits):
    pytest.importorskip("nirtorch")
    snntorch_nir = pytest.importorskip("snntorch.import_nir")
    snn = isp.convert(trained_digits_cnn, coding="rate", timesteps=4, calibration=digits.train.x[:256])
    g = isp.nir.export(snn, tmp_path / "m.nir")
    net = snntorch_nir.import_from_nir(nir.read(str(tmp_path / "m.nir")))
    layers = {n: m for n, m in net.named_children()}
    for key, node in g.nodes.items():
        if isinstance(node, (nir.Conv2d, nir.Affine)):
            assert np.allclose(layers[key].weight.detach().numpy(), node.weight)
        if isinstance(node, nir.IF):
            assert float(layers[key].threshold) == pytest.approx(float(np.unique(node.v_threshold)[0]))


def test_errors(tmp_path):
    with pytest.raises(TypeError, match="isospike.convert"):
        isp.nir.export(torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError):
        isp.nir.load(tmp_path / "none.nir")


@pytest.mark.parametrize("layer,in_shape,refused", [
    (torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), (1, 4, 4), "pads with 'reflect'"),
    (torch.nn.AvgPool2d(2, divisor_override=1), (1, 6, 6), "divisor_override"),
    (torch.nn.AvgPool2d(2, padding=1, ceil_mode=True, count_include_pad=False), (1, 6, 6), "ceil_mode"),
    (torch.nn.Conv2d(1, 2, 3, padding="same"), (1, 4, 4), None),  # resolved to explicit padding
])
def test_layer_options_nir_cannot_express_are_refused_not_dropped(tmp_path, layer, in_shape, refused):
    torch.manual_seed(0)
    x = torch.rand(8, *in_shape)
    body = torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU(), layer, torch.nn.ReLU(), torch.nn.Flatten())
    width = body(x).shape[1]
    snn = isp.convert(torch.nn.Sequential(*body, torch.nn.Linear(width, 2)).eval(), coding="rate", calibration=x)
    if refused is not None:
        with pytest.raises(TypeError, match=refused):
            isp.nir.export(snn, tmp_path / "m.nir")
        return
    graph = isp.nir.export(snn, tmp_path / "m.nir")
    conv = next(n for n in graph.nodes.values() if isinstance(n, nir.Conv2d))
    assert list(conv.padding) == [1, 1]  # 'same' written as the explicit padding it means
    # padding='same' and explicit padding run different convolution kernels: equal math, not
    # equal bits (about 1e-7 apart), so the round trip is compared to float tolerance
    assert torch.allclose(isp.nir.load(tmp_path / "m.nir")(x), snn(x), atol=1e-5)


def test_layers_over_tokens_get_a_named_error():
    x = torch.randn(6, 4, 5)
    snn = isp.convert(torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3)).eval(),
                      coding="rate", calibration=x)
    with pytest.raises(TypeError, match="tokens"):
        isp.nir.export(snn)


def test_a_loaded_network_exports_to_nir(tmp_path, trained_digits_cnn, digits):
    """Saved files keep the shapes recorded at calibration, so NIR export works after isp.load."""
    snn = isp.convert(trained_digits_cnn, coding="rate", timesteps=4, calibration=digits.train.x[:256])
    again = isp.load(isp.save(snn, tmp_path / "snn.safetensors"))
    graph = isp.nir.export(again, tmp_path / "m.nir")
    assert [type(n).__name__ for n in graph.nodes.values()] == \
        [type(n).__name__ for n in isp.nir.export(snn).nodes.values()]
    x = digits.test.x[:32]
    assert torch.allclose(isp.nir.load(tmp_path / "m.nir")(x), snn(x), atol=1e-5)


def _snntorch_net(recurrent: bool):
    snn = pytest.importorskip("snntorch")
    kw = dict(threshold=torch.ones(16), reset_mechanism="zero", reset_delay=False, init_hidden=True)
    lif = snn.RLeaky(beta=torch.full((16,), 0.9), linear_features=16, **kw) if recurrent \
        else snn.Leaky(beta=torch.full((16,), 0.9), **kw)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), lif, torch.nn.Linear(16, 4),
                              snn.Synaptic(alpha=torch.full((4,), 0.7), beta=torch.full((4,), 0.8), threshold=torch.ones(4),
                                           reset_mechanism="zero", reset_delay=False, init_hidden=True))
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)
    return net


@pytest.mark.parametrize("recurrent", [False, True], ids=["leaky-synaptic", "rleaky-synaptic"])
def test_snntorch_exports_load_and_match_snntorch_step_for_step(tmp_path, recurrent):
    """Networks built in snnTorch (Leaky -> nir.LIF, Synaptic -> nir.CubaLIF, RLeaky -> a recurrent
    subgraph) and exported with snnTorch's own exporter: isospike's spikes equal snnTorch's at
    every step, through a file."""
    import contextlib
    import io

    pytest.importorskip("nirtorch")
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    net = _snntorch_net(recurrent)
    with contextlib.redirect_stdout(io.StringIO()):
        graph = export_to_nir(net, torch.randn(1, 8), ignore_dims=[0])
    nir.write(str(tmp_path / "snntorch.nir"), graph)
    x = torch.rand(5, 8)
    snn_utils.reset(net)
    with torch.no_grad():
        want = torch.stack([net(x) for _ in range(40)])  # snnTorch's own simulation, step by step
    with pytest.raises(ValueError, match="not written by isospike.*convention='snntorch'"):
        isp.nir.load(tmp_path / "snntorch.nir")  # which reset? the file does not say
    loaded = isp.nir.load(tmp_path / "snntorch.nir", convention="snntorch", reset="zero", reset_delay=False)
    got = loaded.forward_steps(x, 40)
    assert want.sum() > 20 and torch.equal(got, want)
    res = isp.simulate(loaded, x, timesteps=40)  # the populations count their spikes like any other
    populations = [s for s in res.layers.values() if s.kind == "neuron"]
    assert len(populations) == 2 and populations[-1].spikes == int(got.sum())


def test_leaky_integrator_and_bad_cycles():
    """nir.LI integrates without spiking (forward Euler, dt given); a cycle that is not a neuron's
    recurrent weight is refused with the pattern that is supported."""
    dt, tau = 1e-3, 5e-3
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}),
             "fc": nir.Linear(np.eye(3, dtype=np.float32)),
             "li": nir.LI(tau=np.full(3, tau), r=np.ones(3), v_leak=np.zeros(3)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "li"), ("li", "output")])
    x = torch.tensor([[1.0, 2.0, -1.0]])
    steps = isp.nir.load(g, dt=dt, convention="standard").forward_steps(x, 5)[:, 0]
    v, want = torch.zeros(3), []
    for _ in range(5):
        v = (1 - dt / tau) * v + (dt / tau) * x[0]
        want.append(v)
    assert torch.allclose(steps, torch.stack(want), atol=1e-7)
    cyclic = nir.NIRGraph(nodes=dict(nodes, fc2=nir.Linear(np.eye(3, dtype=np.float32))),
                          edges=[("input", "fc"), ("fc", "fc2"), ("fc2", "fc"), ("fc", "li"), ("li", "output")],
                          type_check=False)
    with pytest.raises(ValueError, match="recurrent weight"):
        isp.nir.load(cyclic)


def test_an_input_node_holding_the_example_batch_gets_the_right_advice_and_input_shape_fixes_it():
    """Some exporters (Norse) write the example batch into nir.Input: [5, 12] for samples of 12
    features. Five samples then look like one sample without a batch; the error must not only
    say unsqueeze(0) (which would read the five samples as one), and input_shape= loads it right."""
    torch.manual_seed(0)
    w = np.random.default_rng(0).normal(size=(3, 12)).astype(np.float32)
    nodes = {"input": nir.Input(input_type={"input": np.array([5, 12])}),
             "fc": nir.Linear(w),
             "li": nir.LI(tau=np.full(3, 5e-3), r=np.ones(3), v_leak=np.zeros(3)),
             "output": nir.Output(output_type={"output": np.array([5, 3])})}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "li"), ("li", "output")], type_check=False)
    x = torch.randn(5, 12)
    with pytest.raises(ValueError, match=r"one sample, pass x.unsqueeze\(0\).*input_shape=\(12,\)"):
        isp.nir.load(g, dt=1e-3, convention="standard")(x)
    snn = isp.nir.load(g, dt=1e-3, input_shape=(12,), convention="standard")
    y = snn(x, timesteps=4)
    assert y.shape == (5, 3)
    assert torch.allclose(y[2:3], snn(x[2:3], timesteps=4))  # each row its own sample
    for bad in ((0, 12), (12.0,), (), "12", (True,)):
        with pytest.raises((ValueError, TypeError), match="input_shape"):
            isp.nir.load(g, input_shape=bad, convention="standard")
    with pytest.raises(ValueError, match="cannot run on samples of shape"):
        isp.nir.load(g, input_shape=(7,), convention="standard")


@pytest.mark.parametrize("cell", ["LIFBoxCell", "LIFCell", "IAFCell"])
def test_norse_exports_load_and_match_norse_step_for_step(cell):
    """Networks built in Norse and written by Norse's own exporter (LIFBoxCell -> nir.LIF, LIFCell
    -> nir.CubaLIF, IAFCell -> nir.IF, LIBoxCell -> nir.LI read-out): with convention="norse"
    isospike's outputs equal Norse's simulation at every step; the example batch Norse writes into
    Input is dropped. (Norse's graph holds torch tensors, which nir.write cannot store: the graph
    object is loaded as it comes.)"""
    nt = pytest.importorskip("norse.torch")
    torch.manual_seed(0)
    model = nt.SequentialState(torch.nn.Linear(4, 6), getattr(nt, cell)(), torch.nn.Linear(6, 5), getattr(nt, cell)(),
                               torch.nn.Linear(5, 3), nt.LIBoxCell())
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)
                m.bias.add_(1.0)
    graph = nt.to_nir(model, torch.rand(2, 4))
    x = torch.rand(5, 4)
    state, want = None, []
    with torch.no_grad():
        for _ in range(30):
            y, state = model(x, state)
            want.append(y)
    loaded = isp.nir.load(graph, convention="norse")
    got = loaded.forward_steps(x, 30)
    assert got.shape == (30, 5, 3)
    assert torch.allclose(got, torch.stack(want), atol=1e-5, rtol=1e-5), (got - torch.stack(want)).abs().max()
    spikes = sum(s.spikes for s in isp.simulate(loaded, x, timesteps=30).layers.values() if s.kind == "neuron")
    assert spikes > 20
    with pytest.raises(ValueError, match="convention must be one of"):
        isp.nir.load(graph, convention="lava")


def test_norse_runs_our_rate_export_as_the_nir_specification_alone_defines_it(tmp_path):
    """What a standard reader makes of an exported rate network: Norse reads our file (IF ->
    IAFCell: reset to zero, membrane from 0) and its outputs equal isospike's reading of the same
    file with convention="standard" (metadata ignored) at every step; isospike's own reading keeps
    reset by subtraction and the initial membrane, and differs (which export warns about)."""
    nt = pytest.importorskip("norse.torch")
    torch.manual_seed(0)
    ann = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    x = torch.rand(50, 8)
    snn = isp.convert(ann, coding="rate", timesteps=8, calibration=x)
    with pytest.warns(UserWarning, match="another NIR reader"):
        isp.nir.export(snn, tmp_path / "rate.nir")
    norse_net = nt.from_nir(nir.read(str(tmp_path / "rate.nir")))
    state, steps = None, []
    with torch.no_grad():
        for _ in range(8):
            y, state = norse_net(x, state)
            steps.append(y)
    norse_steps = torch.stack(steps)
    standard = isp.nir.load(tmp_path / "rate.nir", convention="standard")
    assert torch.allclose(standard.forward_steps(x, 8), norse_steps, atol=1e-5)
    ours = isp.nir.load(tmp_path / "rate.nir")
    assert torch.allclose(ours(x), snn(x), atol=1e-6)
    assert not torch.allclose(ours.forward_steps(x, 8), norse_steps, atol=1e-3)


def test_an_operation_without_a_nir_node_is_named_with_its_path():
    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(8, 2)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.b(torch.cat([h, h], 1))

    x = torch.randn(8, 4)
    snn = isp.convert(Concat(), coding="rate", calibration=x)
    with pytest.raises(TypeError, match=r"operation 'cat' at 'cat'.*isospike\.save"):
        isp.nir.export(snn)


class _Residual(nn.Module):
    """Spikes of a population fed straight into a sum: NIR gets a nir.Scale node (spikes carry 1
    there), read back as an ElementwiseScale module."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.c(h + torch.relu(self.b(h)))


def test_exporting_a_new_module_type_is_one_table_entry(monkeypatch):
    """The export walk looks each module up in exporters.MODULES (by class, subclasses included):
    a network read back from NIR holds ElementwiseScale, which has no entry, and exports once one
    is added."""
    from isospike.conversion.timefold import ElementwiseScale
    from isospike.nir import exporters

    torch.manual_seed(0)
    x = torch.rand(32, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = isp.nir.export(isp.convert(_Residual().eval(), coding="rate", timesteps=8, calibration=x))
        back = isp.nir.load(first)
        with pytest.raises(TypeError, match="no NIR node for ElementwiseScale"):
            isp.nir.export(back)

        def scale(ex, node):
            m = ex.module(node)
            ex.emit(node, node.target.replace(".", "_"), nir.Scale(scale=m.scale.numpy()))

        monkeypatch.setitem(exporters.MODULES, ElementwiseScale, scale)
        graph = isp.nir.export(back)
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    assert kinds.count("Scale") == 2 and sorted(kinds) == sorted(type(n).__name__ for n in first.nodes.values())
    assert torch.equal(isp.nir.load(graph)(x), back(x))
    assert exporters.by_class(exporters.MODULES, type("Sub", (ElementwiseScale,), {})) is scale


def test_reading_a_new_node_type_is_one_table_entry(monkeypatch):
    """The load walk looks each node type up in builders.BUILDERS: nir.Threshold is refused (the
    message names what is read, and the table reads exactly that), and read once an entry makes it
    a module."""
    from isospike.nir import builders

    class Step(nn.Module):
        def __init__(self, threshold):
            super().__init__()
            self.register_buffer("threshold", threshold)

        def forward(self, x):
            return (x > self.threshold).float()

    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                            "fc": nir.Linear(np.eye(3, dtype=np.float32)),
                            "step": nir.Threshold(threshold=np.array([0.5, 0.5, 2.0])),
                            "output": nir.Output(output_type={"output": np.array([3])})},
                     edges=[("input", "fc"), ("fc", "step"), ("step", "output")])
    with pytest.raises(TypeError, match=r"no isospike module for NIR node Threshold \('step'\)") as e:
        isp.nir.load(g)
    read = {t.__name__ for t in builders.BUILDERS} - {"Input", "Output"}
    named = e.value.args[0].split("isospike reads ")[1].replace("Conv1d/2d", "Conv1d, Conv2d").replace(" and sums", "")
    assert read == set(named.split(", "))  # a new entry is named in the refusal too

    monkeypatch.setitem(builders.BUILDERS, nir.Threshold, builders._layer(
        lambda b, key, node: Step(torch.as_tensor(node.threshold, dtype=torch.float32))))
    y = isp.nir.load(g)(torch.tensor([[1.0, 0.0, 1.0]]))
    assert torch.equal(y, torch.tensor([[1.0, 0.0, 0.0]]))


# ------------------------------------------------------------------ imports that match or refuse (issue 33, item 2)
def _snntorch_network(reset, reset_delay, recurrent):
    snn = pytest.importorskip("snntorch")
    kw = dict(reset_mechanism=reset, reset_delay=reset_delay, init_hidden=True)
    lif = snn.RLeaky(beta=torch.full((16,), 0.9), linear_features=16, threshold=torch.ones(16), **kw) if recurrent \
        else snn.Leaky(beta=torch.full((16,), 0.9), threshold=torch.ones(16), **kw)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), lif, torch.nn.Linear(16, 4),
                              snn.Synaptic(alpha=torch.full((4,), 0.7), beta=torch.full((4,), 0.8),
                                           threshold=torch.ones(4), **kw))
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)
    return net


@pytest.mark.parametrize("recurrent", [False, True], ids=["leaky", "rleaky"])
@pytest.mark.parametrize("reset,reset_delay", [("subtract", True), ("subtract", False), ("zero", True), ("zero", False)])
def test_snntorch_files_load_with_the_reset_snntorch_ran_or_are_refused(tmp_path, reset, reset_delay, recurrent):
    """snnTorch's exporter writes v_reset = 0 for every neuron, whatever its reset_mechanism and
    reset_delay (the tutorial's Leaky resets by subtraction, delayed): isospike refuses the file
    without a convention, and with convention="snntorch" and the reset named it runs what snnTorch
    ran, step for step, in all four modes (Leaky, Synaptic, RLeaky)."""
    import contextlib
    import io

    pytest.importorskip("nirtorch")
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    net = _snntorch_network(reset, reset_delay, recurrent)
    with contextlib.redirect_stdout(io.StringIO()):
        graph = export_to_nir(net, torch.randn(1, 8), ignore_dims=[0])
    path = tmp_path / "snntorch.nir"
    nir.write(str(path), graph)
    x = torch.rand(5, 8)
    snn_utils.reset(net)
    with torch.no_grad():
        want = torch.stack([net(x) for _ in range(40)])
    with pytest.raises(ValueError, match=r"v_reset.*not written by isospike|not written by isospike.*v_reset"):
        isp.nir.load(path)
    with pytest.raises(ValueError, match=r"v_reset = 0 for every Leaky.*reset='subtract' or reset='zero'"):
        isp.nir.load(path, convention="snntorch")
    got = isp.nir.load(path, convention="snntorch", reset=reset, reset_delay=reset_delay).forward_steps(x, 40)
    assert want.sum() > 20 and torch.equal(got, want)
    other = "zero" if reset == "subtract" else "subtract"  # the other reading is a different network
    assert not torch.equal(isp.nir.load(path, convention="snntorch", reset=other,
                                        reset_delay=reset_delay).forward_steps(x, 40), want)


@pytest.mark.parametrize("kind", ["IAF", "LIF", "IAF+ExpLeak"])
def test_sinabs_files_load_with_sinabs_dynamics_or_are_refused(kind):
    """sinabs writes IAF as nir.IF and LIF as nir.LIF like any IF / LIF, but runs them with several
    spikes per step and reset by subtraction (LIF: exp(-1/tau) leak, input scaled by 1 - alpha):
    refused without a convention, equal to sinabs' own simulation with convention="sinabs"."""
    pytest.importorskip("nirtorch")
    try:
        import sinabs
        import sinabs.layers as sl
        from sinabs.nir import to_nir
    except ImportError as exc:
        pytest.skip(f"sinabs does not import here ({exc})")
    torch.manual_seed(0)

    def neuron():
        return sl.IAF() if kind.startswith("IAF") else sl.LIF(tau_mem=4.0)

    last = sl.ExpLeak(tau_mem=3.0) if kind == "IAF+ExpLeak" else neuron()
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), neuron(), torch.nn.Linear(6, 3), last)
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)
                m.bias.add_(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        graph = to_nir(net, torch.rand(1, 1, 4))  # its Input holds [time, 4]: loaded with input_shape
    sinabs.reset_states(net)  # the export ran the network on its sample
    x = torch.rand(5, 4)
    with torch.no_grad():
        want = net(x.unsqueeze(1).expand(5, 30, 4)).transpose(0, 1)
    with pytest.raises(ValueError, match="not written by isospike.*'sinabs'"):
        isp.nir.load(graph, input_shape=(4,))
    loaded = isp.nir.load(graph, convention="sinabs", input_shape=(4,))
    got = loaded.forward_steps(x, 30)
    spikes = want if kind != "IAF+ExpLeak" else None
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    if spikes is not None:
        assert want.sum() >= 20 and (want.max() > 1) == (kind == "IAF")  # IAF: several spikes in a step
        assert isp.simulate(loaded, x, timesteps=30).layers[list(loaded.graph_module._modules)[-1]].spikes \
            == int(want.sum())


def test_rockpool_files_load_with_rockpool_dynamics_or_are_refused():
    """rockpool writes LIFTorch as nir.CubaLIF with r = tau exp(-dt/tau) / dt; it runs exponential
    decays, I <- beta (I + x), several spikes per step and reset by subtraction: equal to rockpool's
    own simulation with convention="rockpool" (its dt checked against r), refused otherwise."""
    pytest.importorskip("nirtorch")
    try:
        from rockpool.nn.combinators import Sequential
        from rockpool.nn.modules import LIFTorch, LinearTorch
        from rockpool.nn.modules.torch.nir import to_nir
    except ImportError as exc:
        pytest.skip(f"rockpool does not import here ({exc})")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = Sequential(LinearTorch((4, 6), has_bias=False), LIFTorch(6, tau_mem=0.02, tau_syn=0.01, dt=1e-3),
                         LinearTorch((6, 3), has_bias=False), LIFTorch(3, tau_mem=0.03, tau_syn=0.005, dt=1e-3))
        with torch.no_grad():
            net[0].weight.mul_(4)
            net[2].weight.mul_(2)
        graph = to_nir(net, torch.rand(1, 4))  # its Input holds [1, 4]
        net.reset_state()  # the export ran the network on its sample
        x = torch.rand(5, 4)
        with torch.no_grad():
            want = net(x.unsqueeze(1).expand(5, 30, 4))[0].transpose(0, 1)
    with pytest.raises(ValueError, match="not written by isospike"):
        isp.nir.load(graph, input_shape=(4,))
    got = isp.nir.load(graph, convention="rockpool", input_shape=(4,)).forward_steps(x, 30)
    assert want.sum() > 30 and want.max() > 1 and torch.equal(got, want)
    with pytest.raises(ValueError, match=r"r = .* dt = 0.01"):
        isp.nir.load(graph, convention="rockpool", input_shape=(4,), dt=1e-2)


def test_every_foreign_neuron_node_is_refused_without_a_convention():
    """IF, LIF, CubaLIF and LI nodes another tool wrote: the default reading names what it would
    have to assume and the conventions that say it; convention="standard" runs NIR's definition."""
    n = 3
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    neurons = {"IF": nir.IF(r=ones, v_threshold=ones, v_reset=zeros),
               "LIF": nir.LIF(tau=ones * 1e-2, r=ones, v_leak=zeros, v_threshold=ones, v_reset=zeros),
               "CubaLIF": nir.CubaLIF(tau_syn=ones * 1e-2, tau_mem=ones * 1e-2, r=ones, v_leak=zeros,
                                      v_threshold=ones, v_reset=zeros),
               "LI": nir.LI(tau=ones * 1e-2, r=ones, v_leak=zeros)}
    for name, neuron in neurons.items():
        g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n])}),
                                "fc": nir.Linear(np.eye(n, dtype=np.float32)), "neuron": neuron,
                                "output": nir.Output(output_type={"output": np.array([n])})},
                         edges=[("input", "fc"), ("fc", "neuron"), ("neuron", "output")])
        with pytest.raises(ValueError, match=rf"'neuron' \({name}\) was not written by isospike.*reset to v_reset"
                                             r".*convention='standard'"):
            isp.nir.load(g)
        assert isp.nir.load(g, convention="standard")(torch.ones(2, n)).shape == (2, n)
    with pytest.raises(ValueError, match="convention='snntorch'"):
        isp.nir.load(g, reset="subtract")

"""A loaded network is a pure function of its input and its stored tensors: it never writes into
the caller's tensor or its own (out=, in place, resizing), never draws random numbers, and the
Python arithmetic of its graph stays bounded. Crafted files that try are refused when read."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import isospike as isp
from isospike.errors import FileFormatError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(32, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x)).flatten(1)
        h = torch.relu(self.fc1(h))
        return self.fc2(h + h.mean(1, keepdim=True))


def _structure(path):
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["isospike"])


def _state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _assert_pure(net, x, calls=3):
    """Same input, same output, call after call; the input's bytes and the network's tensors
    are those it had before."""
    before_x, before_state = x.clone(), _state(net)
    outputs = [net(x) for _ in range(calls)]
    for y in outputs[1:]:
        assert torch.equal(y, outputs[0])
    assert torch.equal(x, before_x) and x.shape == before_x.shape
    after = _state(net)
    assert after.keys() == before_state.keys()
    for k, v in before_state.items():
        assert torch.equal(after[k], v), f"the network changed its tensor {k}"


@pytest.mark.parametrize("coding,kwargs", [("rate", {"timesteps": 3}), ("ttfs", {}), ("mttfs", {"dead_zone": 1}),
                                           ("sigma_delta", {"levels": 8, "timesteps": 4})])
def test_a_loaded_network_leaves_its_input_and_its_tensors_unchanged(tmp_path, coding, kwargs):
    torch.manual_seed(0)
    calibration = torch.rand(16, 1, 4, 4)
    snn = isp.convert(Net().eval(), coding=coding, calibration=calibration, **kwargs)
    loaded = isp.load(isp.save(snn, tmp_path / "snn.safetensors"))
    _assert_pure(loaded, torch.rand(3, 1, 4, 4))


def test_a_loaded_exact_network_is_pure(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(inplace=True), nn.Linear(3, 2)).eval()
    loaded = isp.load(isp.save(isp.exact.reference(model), tmp_path / "exact.safetensors"))
    _assert_pure(loaded, torch.randn(2, 4))


def test_in_place_activations_are_saved_out_of_place_and_refused_in_a_file(tmp_path):
    """nn.ReLU(inplace=True) applied to the input would overwrite the caller's tensor: saved as
    inplace=False (the same values), and a file saying True is refused naming the field."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(4, 2)).eval()
    path = isp.save(isp.exact.reference(model), tmp_path / "exact.safetensors")
    structure = _structure(path)
    assert structure["source"]["modules"]["0"]["args"] == {"inplace": False}
    x = torch.randn(2, 4)
    _assert_pure(isp.load(path), x)
    structure["source"]["modules"]["0"]["args"]["inplace"] = True
    save_file(load_file(str(path)), str(tmp_path / "evil.safetensors"), metadata={"isospike": json.dumps(structure)})
    with pytest.raises(FileFormatError, match=r"modules\['0'\]\.args\.inplace.*in place"):
        isp.load(tmp_path / "evil.safetensors")


# ------------------------------------------------------------------ crafted graphs
class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.view(x.shape[0], -1))))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    snn = isp.convert(Small().eval(), coding="rate", timesteps=2, calibration=torch.randn(8, 1, 4, 4))
    path = isp.save(snn, tmp_path_factory.mktemp("pure") / "good.safetensors")
    return _structure(path), load_file(str(path))


def _with(saved, tmp_path, *nodes, attrs=None):
    """The saved network with ``nodes`` inserted after the view node (the network's input,
    reshaped) and, with ``attrs``, extra stored tensors read by get_attr."""
    structure, tensors = json.loads(json.dumps(saved[0])), dict(saved[1])
    graph = structure["graph"]
    at = next(i for i, n in enumerate(graph) if n["name"] == "view") + 1
    graph[at:at] = list(nodes)
    for name, value in (attrs or {}).items():
        structure["attrs"].append(name)
        tensors[f"attr.{name}"] = value
        graph.insert(1, {"op": "get_attr", "name": name, "target": name, "args": {"seq": [], "tuple": True},
                         "kwargs": {"dict": {}}})
    path = tmp_path / "crafted.safetensors"
    save_file(tensors, str(path), metadata={"isospike": json.dumps(structure)})
    return path


def call(name, target, *args, op="call_function", **kwargs):
    def arg(a):
        return {"node": a[1:]} if isinstance(a, str) and a.startswith("@") else a
    return {"op": op, "name": name, "target": target, "args": {"seq": [arg(a) for a in args], "tuple": True},
            "kwargs": {"dict": {k: arg(v) for k, v in kwargs.items()}}}


@pytest.mark.parametrize("node,attrs,match", [
    (call("evil", "torch:add", "@view", 1.0, out="@c"), {"c": torch.zeros(8, 16)}, "out="),  # the 0.88, 1.88, 2.88 attack
    (call("evil", "torch:relu", "@x", out="@x"), None, "out="),  # overwrite (and resize) the caller's input
    (call("evil", "torch.nn.functional:relu", "@x", inplace=True), None, "inplace"),
    (call("evil", "torch.nn.functional:relu", "@x", True), None, "inplace=True"),  # positional
    (call("evil", "torch.nn.functional:leaky_relu", "@view", 0.1, True), None, "inplace=True"),
    (call("evil", "torch.nn.functional:dropout", "@view", 0.5), None, "training=True"),  # its default trains
    (call("evil", "torch.nn.functional:scaled_dot_product_attention", "@view", "@view", "@view", dropout_p=0.5), None,
     "dropout_p"),
    (call("evil", "torch.nn.functional:embedding", "@i", "@c", max_norm=1.0), {"c": torch.ones(4, 2), "i": torch.zeros(2).long()},
     "max_norm"),
    (call("evil", "torch.nn.functional:normalize", "@view", 2.0, 1, 1e-12, "@view"), None, "out="),
], ids=["out-stored", "out-input", "inplace-kw", "inplace-positional", "leaky-inplace", "dropout-trains",
        "attention-dropout", "embedding-max-norm", "normalize-out-positional"])
def test_calls_that_write_into_tensors_or_draw_random_numbers_are_refused(tmp_path, saved, node, attrs, match):
    path = _with(saved, tmp_path, node, attrs=attrs)
    with pytest.raises(FileFormatError, match=match) as e:
        isp.load(path)
    assert str(path) in str(e.value) and "pure" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("op,target", [("call_method", "add_"), ("call_method", "resize_"), ("call_method", "copy_"),
                                       ("call_method", "set_"), ("call_method", "fill_"), ("call_method", "__setitem__"),
                                       ("call_function", "operator:setitem"), ("call_function", "operator:iadd"),
                                       ("call_function", "torch:Tensor.add_")])
def test_in_place_and_resizing_operations_are_outside_the_closed_sets(tmp_path, saved, op, target):
    path = _with(saved, tmp_path, call("evil", target, "@x", "@view", op=op))
    with pytest.raises(FileFormatError, match="refusing"):
        isp.load(path)


def test_python_arithmetic_on_shapes_is_bounded(tmp_path, saved):
    """x.shape[0] ** 64 ** 64 ... (a 1024-bit int at the second step) and a shape repeated 2**60
    times are refused when read, before any of it is computed."""
    powers = [call("p0", "operator:pow", "@getitem", 64)] + [call(f"p{i}", "operator:pow", f"@p{i - 1}", 64)
                                                             for i in range(1, 40)]
    with pytest.raises(FileFormatError, match="1024 bits"):
        isp.load(_with(saved, tmp_path, *powers))
    repeat = [call("big", "operator:mul", "@getitem", 2**60), call("rep", "operator:mul", "@getattr_1", "@big")]
    with pytest.raises(FileFormatError, match="sequences hold at most"):
        isp.load(_with(saved, tmp_path, *repeat))
    doubling = [call("s0", "operator:add", "@getattr_1", "@getattr_1")] + \
        [call(f"s{i}", "operator:add", f"@s{i - 1}", f"@s{i - 1}") for i in range(1, 40)]
    with pytest.raises(FileFormatError, match="sequences hold at most"):
        isp.load(_with(saved, tmp_path, *doubling))


def test_bounded_arithmetic_still_reads_what_traced_models_compute(tmp_path, saved):
    """Products of sizes, a shape slice plus a tuple and [1] * (x.dim() - 2) load and run."""
    nodes = [call("d", "dim", "@x", op="call_method"), call("d2", "operator:sub", "@d", 2),
             call("ones", "operator:mul", {"seq": [1], "tuple": False}, "@d2"), call("n", "operator:mul", "@getitem", 16),
             call("head", "operator:getitem", "@getattr_1", {"slice": [None, 1, None]}),
             call("shape2", "operator:add", "@head", {"seq": [16], "tuple": True})]
    net = isp.load(_with(saved, tmp_path, *nodes))
    _assert_pure(net, torch.randn(2, 1, 4, 4))

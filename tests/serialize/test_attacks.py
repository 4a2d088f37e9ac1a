"""Crafted files against isp.load, isp.nir.load and `isospike verify`: nothing a file holds may run
code, write files, change global state or allocate more than its tensors. Each attack carries a
payload that would create a canary file; the tests assert a clear ValueError and no canary."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import isospike as isp
from isospike.cli import main
from isospike.errors import FileFormatError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.view(x.shape[0], -1))))  # getattr and a method in the graph


@pytest.fixture()
def saved(tmp_path):
    """(path, structure, tensors) of a small saved rate network."""
    torch.manual_seed(0)
    snn = isp.convert(Net().eval(), coding="rate", timesteps=2, calibration=torch.randn(8, 1, 4, 4))
    path = isp.save(snn, tmp_path / "good.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    return path, json.loads(meta["isospike"]), load_file(str(path))


def write(tmp_path, structure, tensors, name="evil.safetensors", raw=None):
    path = tmp_path / name
    save_file(tensors, str(path), metadata={"isospike": raw if raw is not None else json.dumps(structure)})
    return path


def payload(canary):
    return f"__import__('os').system('touch {canary}')"


def refused(path, canary, match=None):
    with pytest.raises(ValueError, match=match) as e:
        isp.load(path)
    assert not canary.exists(), "the file ran code"
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    return e.value


def node(structure, op=None, target=None):
    return next(n for n in structure["graph"] if (op is None or n["op"] == op) and (target is None or n["target"] == target))


# ------------------------------------------------------------------ code in names
def test_placeholder_code_is_refused_and_never_runs(tmp_path, saved, capsys):
    _, structure, tensors = saved
    canary = tmp_path / "canary"
    node(structure, "placeholder")["target"] = f"x={payload(canary)}"
    refused(write(tmp_path, structure, tensors), canary, "identifier")
    # the CLI's verify command reads the same file: one line, exit status 1, no traceback
    assert main(["verify", str(tmp_path / "evil.safetensors"), "--out", str(tmp_path / "v")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("isospike: error:") and "Traceback" not in err[0]
    assert not canary.exists()


def test_module_key_code_is_refused_and_never_runs(tmp_path, saved):
    _, structure, tensors = saved
    canary = tmp_path / "canary"
    evil = f'fc1")(x); getattr(__import__("os"), "system")("touch {canary}"); ("'
    structure["modules"][evil] = structure["modules"].pop("fc1")
    node(structure, "call_module", "fc1")["target"] = evil
    tensors = {k.replace("graph_module.fc1.", f"graph_module.{evil}."): v for k, v in tensors.items()}
    refused(write(tmp_path, structure, tensors), canary, "module path")


@pytest.mark.parametrize("field", ["name", "kwarg"])
def test_node_names_and_keywords_with_code_are_refused(tmp_path, saved, field):
    _, structure, tensors = saved
    canary = tmp_path / "canary"
    n = node(structure, "call_method")
    if field == "name":
        n["name"] = f"v = {payload(canary)}; w"
    else:
        n["kwargs"] = {"dict": {f"a={payload(canary)}, b": 1}}
    refused(write(tmp_path, structure, tensors), canary)


# ------------------------------------------------------------------ walks out of the allowlist
@pytest.mark.parametrize("op,target,attr", [
    ("call_function", "torch:get_device_module", None),
    ("call_function", "builtins:getattr", "torch"),
    ("call_function", "builtins:getattr", "os"),
    ("call_function", "builtins:getattr", "__class__"),
    ("call_function", "builtins:eval", None),
    ("call_function", "builtins:__import__", None),
    ("call_function", "os:system", None),
    ("call_function", "subprocess:run", None),
    ("call_function", "sys:exit", None),
    ("call_function", "importlib:import_module", None),
    ("call_function", "operator:attrgetter", None),
    ("call_function", "torch:load", None),
    ("call_function", "torch:tensor", None),
    ("call_method", "system", None),
    ("call_method", "numpy", None),
    ("call_method", "tofile", None),
    ("call_method", "__reduce_ex__", None),
])
def test_getattr_chains_and_unlisted_calls_are_refused(tmp_path, saved, op, target, attr):
    _, structure, tensors = saved
    canary = tmp_path / "canary"
    n = node(structure, "call_function", "builtins:getattr")
    n["op"], n["target"] = op, target
    if attr is not None:
        n["args"]["seq"][1] = attr
    refused(write(tmp_path, structure, tensors), canary, "refusing")


def test_a_file_write_through_numpy_is_refused(tmp_path, saved):
    """torch.tensor(..) -> .numpy() -> .tofile(path), the chain that wrote files before."""
    _, structure, tensors = saved
    target = tmp_path / "written"
    graph = structure["graph"]
    out = graph.pop()
    graph += [
        {"op": "call_function", "name": "t", "target": "torch:tensor", "args": {"seq": [[1.0]], "tuple": True},
         "kwargs": {"dict": {}}},
        {"op": "call_method", "name": "a", "target": "numpy", "args": {"seq": [{"node": "t"}], "tuple": True},
         "kwargs": {"dict": {}}},
        {"op": "call_method", "name": "w", "target": "tofile", "args": {"seq": [{"node": "a"}, str(target)],
                                                                         "tuple": True}, "kwargs": {"dict": {}}},
        out,
    ]
    refused(write(tmp_path, structure, tensors), target, "refusing")


@pytest.mark.parametrize("setter", ["torch:set_flush_denormal", "torch:set_default_dtype", "torch:manual_seed",
                                    "torch:set_num_threads", "torch:use_deterministic_algorithms"])
def test_global_setters_are_refused_and_state_is_unchanged(tmp_path, saved, setter):
    _, structure, tensors = saved
    before = (torch.get_default_dtype(), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    graph = structure["graph"]
    out = graph.pop()
    graph += [{"op": "call_function", "name": "g", "target": setter, "args": {"seq": [True], "tuple": True},
               "kwargs": {"dict": {}}}, out]
    refused(write(tmp_path, structure, tensors), tmp_path / "canary", "refusing")
    assert (torch.get_default_dtype(), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


# ------------------------------------------------------------------ resources
@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="reads the peak memory from /proc")
def test_an_oversized_declared_layer_allocates_nothing(tmp_path, saved):
    """Linear(40000, 40000) declared in a few KB: refused from its stored shapes, in a child
    process whose peak memory stays far below the 6.4 GB the declaration asks for."""
    _, structure, tensors = saved
    structure["modules"]["fc1"]["layer"]["args"].update(in_features=40000, out_features=40000)
    path = write(tmp_path, structure, tensors)
    # VmHWM: this process's own peak (ru_maxrss carries over the forked pytest worker's)
    code = ("import sys, isospike as isp\n"
            "try:\n    isp.load(sys.argv[1])\nexcept ValueError as e:\n    print('refused:', e)\n"
            "print('peak_kb', next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "shape" in out.stdout
    peak_kb = int(out.stdout.rsplit("peak_kb", 1)[1])
    assert peak_kb < 1_000_000, f"loading allocated {peak_kb / 1e6:.1f} GB"


@pytest.mark.parametrize("extra", [{"device": "meta"}, {"dtype": "float64"}, {"__class__": 1}])
def test_constructor_arguments_outside_the_schema_are_refused(tmp_path, saved, extra):
    _, structure, tensors = saved
    structure["modules"]["fc1"]["layer"]["args"].update(extra)
    refused(write(tmp_path, structure, tensors), tmp_path / "canary", "unknown entries")


@pytest.mark.parametrize("value", [-1, 2**40, "8", 8.5, True, None])
def test_sizes_of_the_wrong_type_or_range_are_refused(tmp_path, saved, value):
    _, structure, tensors = saved
    structure["modules"]["fc1"]["layer"]["args"]["out_features"] = value
    refused(write(tmp_path, structure, tensors), tmp_path / "canary", "out_features")


def test_tensors_that_do_not_match_the_structure_are_refused(tmp_path, saved):
    _, structure, tensors = saved
    extra = dict(tensors, **{"graph_module.fc1.layer.extra": torch.zeros(3)})
    refused(write(tmp_path, structure, extra, "extra.safetensors"), tmp_path / "c", "unexpected")
    fewer = {k: v for k, v in tensors.items() if not k.endswith("fc2.layer.bias")}
    refused(write(tmp_path, structure, fewer, "fewer.safetensors"), tmp_path / "c", "missing")
    nan = dict(tensors)
    nan["graph_module.fc2.layer.weight"] = torch.full_like(tensors["graph_module.fc2.layer.weight"], float("nan"))
    refused(write(tmp_path, structure, nan, "nan.safetensors"), tmp_path / "c", "NaN")


# ------------------------------------------------------------------ malformed structure
@pytest.mark.parametrize("case", ["no-graph", "modules-list", "deep", "unknown-ref", "not-json", "not-object",
                                  "two-outputs", "overlap", "bad-threshold", "format"])
def test_malformed_metadata_is_one_value_error_naming_the_field(tmp_path, saved, case):
    _, structure, tensors = saved
    raw = None
    if case == "no-graph":
        del structure["graph"]
    elif case == "modules-list":
        structure["modules"] = list(structure["modules"].values())
    elif case == "deep":
        raw = "[" * 100_000 + "]" * 100_000
    elif case == "unknown-ref":
        node(structure, "output")["args"] = {"seq": [{"node": "nowhere"}], "tuple": True}
    elif case == "not-json":
        raw = "{'format': 1"
    elif case == "not-object":
        raw = "[1, 2, 3]"
    elif case == "two-outputs":
        structure["graph"].append(dict(node(structure, "output"), name="output2"))
    elif case == "overlap":
        structure["modules"]["fc1.layer"] = structure["modules"]["fc2"]["layer"]
    elif case == "bad-threshold":
        tensors = dict(tensors)
        key = next(k for k in tensors if k.endswith("neuron.threshold"))
        tensors[key] = -tensors[key]
    elif case == "format":
        structure["format"] = "isospike.snn/99"
    err = refused(write(tmp_path, structure, tensors, raw=raw), tmp_path / "canary")
    assert isinstance(err, FileFormatError)


# ------------------------------------------------------------------ NIR
def test_nir_node_keys_with_code_are_refused(tmp_path, monkeypatch):
    nir = pytest.importorskip("nir")
    import numpy as np

    monkeypatch.chdir(tmp_path)  # HDF5 keys cannot hold '/': the payload touches a relative path
    canary = tmp_path / "canary"
    evil = "a\");__import__('os').system('touch canary');(\""
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                                evil: nir.Affine(np.ones((2, 3), np.float32), np.zeros(2, np.float32)),
                                "output": nir.Output(output_type={"output": np.array([2])})},
                         edges=[("input", evil), (evil, "output")])
    nir.write(str(tmp_path / "evil.nir"), graph)
    with pytest.raises(ValueError, match="not a plain name") as e:
        isp.nir.load(tmp_path / "evil.nir")
    assert not canary.exists() and str(tmp_path / "evil.nir") in str(e.value)
    with pytest.raises(ValueError, match="not a plain name"):
        isp.nir.load(graph)  # an in-memory graph is checked the same way
    assert not canary.exists()


def test_nir_files_that_read_elsewhere_or_inflate_are_refused(tmp_path):
    h5py = pytest.importorskip("h5py")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 64)
    with h5py.File(tmp_path / "external.nir", "w") as f:
        f.create_dataset("w", shape=(16,), dtype="f4", external=[(str(secret), 0, 64)])
    with pytest.raises(ValueError, match="stored in other files"):
        isp.nir.load(tmp_path / "external.nir")
    with h5py.File(tmp_path / "link.nir", "w") as f:
        f["w"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
    with pytest.raises(ValueError, match="ExternalLink"):
        isp.nir.load(tmp_path / "link.nir")
    with h5py.File(tmp_path / "bomb.nir", "w") as f:
        f.create_dataset("w", shape=(2**30,), dtype="f4", chunks=(2**20,), compression="gzip", fillvalue=0.0)
    with pytest.raises(ValueError, match="refusing to inflate"):
        isp.nir.load(tmp_path / "bomb.nir")
    (tmp_path / "garbage.nir").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="not a readable NIR") as e:
        isp.nir.load(tmp_path / "garbage.nir")
    assert "\n" not in str(e.value)


def test_nir_metadata_and_edges_are_checked(tmp_path):
    nir = pytest.importorskip("nir")
    import numpy as np

    nodes = {"input": nir.Input(input_type={"input": np.array([3])}),
             "fc": nir.Affine(np.ones((2, 3), np.float32), np.zeros(2, np.float32)),
             "output": nir.Output(output_type={"output": np.array([2])})}
    deep = nir.NIRGraph(nodes=dict(nodes), edges=[("input", "fc"), ("fc", "output")],
                        metadata={"isospike": "[" * 50_000 + "]" * 50_000})
    with pytest.raises(ValueError, match="nests deeper"):
        isp.nir.load(deep)
    dangling = nir.NIRGraph(nodes=dict(nodes), edges=[("input", "fc"), ("fc", "nowhere")], type_check=False)
    with pytest.raises(ValueError, match="does not join two nodes"):
        isp.nir.load(dangling)
    huge = dict(nodes, input=nir.Input(input_type={"input": np.array([100_000, 100_000])}))
    with pytest.raises(ValueError, match="values per sample"):
        isp.nir.load(nir.NIRGraph(nodes=huge, edges=[("input", "fc"), ("fc", "output")], type_check=False))

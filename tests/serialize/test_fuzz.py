"""Random mutations of real saved files: isp.load gives a clean ValueError or a network that runs
(whose own input errors are ValueError/TypeError), never another exception type."""

import json
import math
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import isospike as isp


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(32, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x)).flatten(1)
        h = torch.relu(self.fc1(h))
        return self.fc2(h + h.mean(1, keepdim=True))


def _saved(coding: str, **kwargs):
    torch.manual_seed(0)
    x = torch.rand(16, 1, 4, 4)
    snn = isp.convert(Residual().eval(), coding=coding, calibration=x, **kwargs)
    folder = Path(tempfile.mkdtemp(prefix="isospike-fuzz-"))
    path = isp.save(snn, folder / "snn.safetensors")
    with safe_open(str(path), framework="pt") as f:
        structure = json.loads(f.metadata()["isospike"])
    return folder, structure, load_file(str(path)), x[:4]


_CASES = {"rate": _saved("rate", timesteps=3), "mttfs": _saved("mttfs", timesteps=7, dead_zone=1),
          "sigma_delta": _saved("sigma_delta", levels=8, timesteps=4)}


def _paths(tree, prefix=()):
    """Every (container path) position in a JSON tree."""
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, prefix + (i,))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["x", "fc1", "output", "operator:add", "reshape", "Linear", "shape",
                                             "__class__", "torch:load", "1e999", "round", "zero"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _mutate(structure, data):
    tree = json.loads(json.dumps(structure))
    paths = list(_paths(tree))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        if not path:
            continue
        parent = tree
        try:
            for key in path[:-1]:
                parent = parent[key]
            old = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed it
        action = data.draw(st.sampled_from(["replace", "delete", "tweak"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "tweak" and isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[path[-1]] = data.draw(st.sampled_from([0, -1, 1, old * 2, old + 1, -old, 10**9]))
        elif action == "tweak" and isinstance(old, str):
            parent[path[-1]] = old + data.draw(st.sampled_from(["_", ".x", "1", "()", "\n", " "]))
        else:
            parent[path[-1]] = data.draw(_json_values)
    return tree


@pytest.mark.parametrize("coding", list(_CASES))
@settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", 120)), deadline=None, derandomize=not __import__("os").environ.get("FUZZ_RANDOM"), suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_files_load_cleanly_or_fail_with_a_value_error(coding, data):
    folder, structure, tensors, x = _CASES[coding]
    tree = _mutate(structure, data)
    path = folder / f"mutant-{coding}.safetensors"
    text = json.dumps(tree, allow_nan=True)
    save_file(tensors, str(path), metadata={"isospike": text})
    try:
        snn = isp.load(path)
    except ValueError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    try:
        y = snn(x)
    except (ValueError, TypeError):
        return  # the network's own input checks
    assert isinstance(y, torch.Tensor) and y.shape[0] == x.shape[0]

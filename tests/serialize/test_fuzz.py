"""A fuzz target per loader (hypothesis; derandomized by the "ci" profile in tests/conftest.py,
HYPOTHESIS_PROFILE=explore searches afresh): crafted saved networks, NIR graphs and Hugging Face
folders give a clean ValueError/TypeError naming the source, or a network that runs on an input
of its declared shape and leaves that input unchanged, with the process's peak memory under the
load's cap. Exact files have theirs in test_exact_files.py."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import isospike as isp

from .mutations import memory_under_cap, mutate

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 100))
_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(32, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x)).flatten(1)
        h = torch.relu(self.fc1(h))
        return self.fc2(h + h.mean(1, keepdim=True))


class Exportable(nn.Module):
    """What NIR describes: a convolution, flattening, linear layers and a sum."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(32, 8), nn.Linear(32, 8)

    def forward(self, x):
        h = torch.relu(self.conv(x)).flatten(1)
        return torch.relu(self.fc1(h)) + self.fc2(h)


def _converted(coding: str, model: type[nn.Module] = Residual, **kwargs):
    torch.manual_seed(0)
    x = torch.rand(16, 1, 4, 4)
    return isp.convert(model().eval(), coding=coding, calibration=x, **kwargs), x[:4]


def _saved(coding: str, **kwargs):
    snn, x = _converted(coding, **kwargs)
    folder = Path(tempfile.mkdtemp(prefix="isospike-fuzz-"))
    path = isp.save(snn, folder / "snn.safetensors")
    with safe_open(str(path), framework="pt") as f:
        structure = json.loads(f.metadata()["isospike"])
    return folder, structure, load_file(str(path)), x


_CASES = {"rate": _saved("rate", timesteps=3), "mttfs": _saved("mttfs", timesteps=7, dead_zone=1),
          "sigma_delta": _saved("sigma_delta", levels=8, timesteps=4)}


def _runs_purely(net, x, source):
    """The network runs on ``x`` (or refuses it with its own ValueError/TypeError: input checks,
    the simulation memory guard) and leaves it unchanged."""
    before = x.clone()
    try:
        y = net(x)
    except (ValueError, TypeError):
        pass
    else:
        leaves = torch.utils._pytree.tree_leaves(y)
        assert leaves and any(isinstance(t, torch.Tensor) for t in leaves), f"{source} returned {y!r}"
    assert torch.equal(x, before), f"{source} changed its input"


def _mutated_tensors(tensors, data):
    """Now and then one stored tensor replaced: another shape, dtype or non-finite values."""
    if not data.draw(st.booleans()):
        return tensors
    tensors = dict(tensors)
    key = data.draw(st.sampled_from(sorted(tensors)))
    t = tensors[key]
    change = data.draw(st.sampled_from(["shape", "dtype", "nan", "drop", "float8"]))
    if change == "shape":
        tensors[key] = torch.zeros(tuple(s + 1 for s in t.shape) or (2,), dtype=t.dtype)
    elif change == "dtype":
        tensors[key] = t.to(torch.float64 if t.dtype != torch.float64 else torch.int32)
    elif change == "nan" and t.is_floating_point() and t.numel():
        tensors[key] = torch.full_like(t, float("nan"))
    elif change == "drop":
        del tensors[key]
    elif change == "float8" and t.is_floating_point():
        tensors[key] = t.to(torch.float8_e4m3fn)
    return tensors


@pytest.mark.parametrize("coding", list(_CASES))
@settings(max_examples=EXAMPLES, **_SETTINGS)
@given(data=st.data())
def test_mutated_saved_networks_load_cleanly_or_run_purely(coding, data):
    folder, structure, tensors, x = _CASES[coding]
    path = folder / f"mutant-{coding}.safetensors"
    save_file(_mutated_tensors(tensors, data), str(path),
              metadata={"isospike": json.dumps(mutate(structure, data), allow_nan=True)})
    with memory_under_cap(path.stat().st_size):
        try:
            snn = isp.load(path)
        except ValueError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            return
    _runs_purely(snn, x.clone(), path)


# ------------------------------------------------------------------ NIR
nir = pytest.importorskip("nir")

_NIR = {coding: isp.nir.export(_converted(coding, Exportable, **kw)[0]) for coding, kw in
        (("rate", {"timesteps": 3}), ("sigma_delta", {"levels": 8, "timesteps": 4}))}

_ARRAYS = st.one_of(
    st.builds(lambda shape, v: np.full(shape, v), st.lists(st.integers(0, 4), max_size=4),
              st.sampled_from([0.0, 1.0, -3.5, np.nan, np.inf, 1e300, 2**40])),
    st.builds(lambda shape: np.full(shape, 1 + 5j), st.lists(st.integers(1, 3), max_size=2)),
    st.builds(lambda shape: np.full(shape, "a"), st.lists(st.integers(1, 3), max_size=2)),
    st.integers(-2**40, 2**40), st.none())


def _mutated_nir(graph, data):
    """A shallow copy of a NIR graph with node fields replaced by odd arrays, edges dropped or
    added, or its metadata JSON mutated."""
    import copy

    graph = copy.deepcopy(graph)
    for _ in range(data.draw(st.integers(1, 3))):
        what = data.draw(st.sampled_from(["field", "field", "edge-drop", "edge-add", "metadata"]))
        if what == "field":
            key = data.draw(st.sampled_from(sorted(graph.nodes)))
            node = graph.nodes[key]
            fields = sorted(k for k, v in vars(node).items() if k != "metadata")
            if fields:
                setattr(node, data.draw(st.sampled_from(fields)), data.draw(_ARRAYS))
        elif what == "edge-drop" and graph.edges:
            graph.edges.pop(data.draw(st.integers(0, len(graph.edges) - 1)))
        elif what == "edge-add":
            keys = sorted(graph.nodes)
            graph.edges.append((data.draw(st.sampled_from(keys)), data.draw(st.sampled_from(keys))))
        elif what == "metadata" and "isospike" in (graph.metadata or {}):
            graph.metadata["isospike"] = json.dumps(mutate(json.loads(graph.metadata["isospike"]), data))
    return graph


@pytest.mark.parametrize("coding", list(_NIR))
@settings(max_examples=EXAMPLES // 2, **_SETTINGS)
@given(data=st.data())
def test_mutated_nir_graphs_load_cleanly_or_run_purely(coding, data):
    graph = _mutated_nir(_NIR[coding], data)
    with memory_under_cap(2**16):
        try:
            net = isp.nir.load(graph)
        except (ValueError, TypeError) as exc:
            assert "the NIR graph" in str(exc) and "\n" not in str(exc), str(exc)
            return
    _runs_purely(net, torch.rand(2, 1, 4, 4), "the NIR graph")


# ------------------------------------------------------------------ Hugging Face folders
@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    from isospike.models.minilm import load_minilm

    tok, _ = load_minilm()
    folder = tmp_path_factory.mktemp("hf-fuzz") / "llama"
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=32)).save_pretrained(folder)
    tok.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    return folder, config, load_file(str(folder / "model.safetensors")), tok(["Spikes add up."], return_tensors="pt")


def test_mutated_hugging_face_folders_load_cleanly_or_run_purely(hf_folder):
    from isospike.serialize.hf import load_folder

    folder, config, tensors, encoded = hf_folder

    @settings(max_examples=max(EXAMPLES // 4, 10), **_SETTINGS)
    @given(data=st.data())
    def check(data):
        (folder / "config.json").write_text(json.dumps(mutate(config, data), allow_nan=True))
        save_file(_mutated_tensors(tensors, data), str(folder / "model.safetensors"), metadata={"format": "pt"})
        size = sum(p.stat().st_size for p in folder.iterdir())
        with memory_under_cap(size):
            try:
                loaded = load_folder(folder)
            except ValueError as exc:
                assert str(folder) in str(exc) and "\n" not in str(exc), str(exc)
                return
            ids = encoded["input_ids"].clone()
            try:
                with torch.no_grad():
                    loaded.model(input_ids=ids)
            except (ValueError, TypeError, IndexError, RuntimeError):
                pass  # a config that changes what the model accepts (vocab_size, positions): the model's own errors
            assert torch.equal(ids, encoded["input_ids"])

    check()

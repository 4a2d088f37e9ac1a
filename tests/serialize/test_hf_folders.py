"""Hugging Face folders (`isospike convert --hf FOLDER`) are read through the same closed sets as
exact files, and a folder whose safetensors do not supply every weight its config implies is
refused naming the tensors: nothing is random-initialized behind a "bit-exact: yes". Tiny
random models are saved with save_pretrained; nothing reaches the network."""

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from isospike.cli import main
from isospike.errors import FileFormatError

transformers = pytest.importorskip("transformers")

from isospike.serialize.hf import load_folder  # noqa: E402 - after the importorskip


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(llama folder, bert folder, their models): a decoder and an encoder with a real tokenizer."""
    from isospike.models.minilm import load_minilm

    tok, _ = load_minilm()
    base = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64)).eval()
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64)).eval()
    out = {}
    for name, model in (("llama", llama), ("bert", bert)):
        folder = base / name
        tok.save_pretrained(folder)
        model.save_pretrained(folder)
        out[name] = (folder, model)
    return out


def _copy(folders, name, tmp_path):
    folder = tmp_path / name
    shutil.copytree(folders[name][0], folder)
    return folder


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_weights(folder, edit):
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("name", ["llama", "bert"])
def test_a_folder_loads_as_its_own_model(folders, name):
    folder, model = folders[name]
    loaded = load_folder(folder)
    assert loaded.decoder == (name == "llama") and type(loaded.model) is type(model)
    ids = loaded.tokenizer(["Spikes add up."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b = model(input_ids=ids), loaded.model(input_ids=ids)
    key = "logits" if name == "llama" else "last_hidden_state"
    assert torch.equal(a[key], b[key])


@pytest.mark.parametrize("edit,match", [
    (lambda t: t.pop("model.layers.1.mlp.down_proj.weight"), r"missing \['model.layers.1.mlp.down_proj.weight'\]"),
    (lambda t: t.update({"model.layers.2.mlp.down_proj.weight": torch.zeros(16, 32)}),
     r"unexpected \['model.layers.2.mlp.down_proj.weight'\]"),
    (lambda t: t.update({"model.norm.weight": torch.zeros(17)}), r"'model.norm.weight' is stored as .*\(17,\)"),
    (lambda t: t.clear() or t.update({"x": torch.zeros(1)}), r"declares 2 layers but only 1 tensors \(\['x'\]\)"),
    (lambda t: t.update({"model.norm.weight": torch.zeros(16, dtype=torch.int32)}), "I32"),
], ids=["missing", "extra-layer", "wrong-shape", "no-weights", "integer-weight"])
def test_weights_the_config_does_not_imply_are_refused_naming_them(folders, tmp_path, edit, match):
    folder = _copy(folders, "llama", tmp_path)
    _edit_weights(folder, edit)
    with pytest.raises(ValueError, match=match) as e:
        load_folder(folder)
    assert str(folder) in str(e.value) and "\n" not in str(e.value)


def test_an_empty_tensor_is_refused(folders, tmp_path):
    folder = _copy(folders, "llama", tmp_path)
    _edit_config(folder, intermediate_size=0)
    _edit_weights(folder, lambda t: t.update({f"model.layers.{i}.mlp.{p}.weight": torch.zeros(*s) for i in (0, 1)
                                              for p, s in (("gate_proj", (0, 16)), ("up_proj", (0, 16)),
                                                           ("down_proj", (16, 0)))}))
    with pytest.raises(FileFormatError, match="empty"):
        load_folder(folder)


@pytest.mark.parametrize("name,changes,match", [
    ("bert", {"is_decoder": True, "architectures": None}, r"missing \['cls\.predictions"),  # BertLMHeadModel's head
    ("llama", {"model_type": "mistral"}, "architectures"),  # a swapped family
    ("llama", {"num_hidden_layers": 3}, "missing"),
    ("llama", {"quantization_config": {"quant_method": "bitsandbytes"}}, "'quantization_config'"),
    ("llama", {"attn_implementation": "flash_attention_2"}, "flash_attention_2"),
    ("llama", {"attn_implementation": "kernels-community/flash-attn"}, "kernels-community"),
    ("llama", {"hidden_act": "evil"}, "'hidden_act'"),
    ("llama", {"trust_remote_code": True}, "'trust_remote_code'"),
    ("llama", {"auto_map": {"AutoModel": "evil.Model"}}, "'auto_map'"),
    ("llama", {"num_labels": 10**8}, "'num_labels'"),
    ("llama", {"model_type": "custom_code"}, "model_type"),
    ("llama", {"architectures": ["AutoModel"]}, "architectures"),
    ("llama", {"torch_dtype": "float8_e4m3fn"}, "torch_dtype"),
    ("llama", {"to_dict": 1}, "method"),
], ids=["is-decoder", "swapped-type", "more-layers", "quantizer", "flash-attention", "hub-kernel", "hidden-act",
        "remote-code", "auto-map", "num-labels", "unknown-type", "auto-class", "dtype", "method-key"])
def test_config_keys_outside_the_closed_sets_are_refused_naming_the_key(folders, tmp_path, name, changes, match):
    folder = _copy(folders, name, tmp_path)
    _edit_config(folder, **changes)
    with pytest.raises(ValueError, match=match) as e:
        load_folder(folder)
    assert str(folder) in str(e.value) and "\n" not in str(e.value)


def test_a_bad_tokenizer_is_one_clean_error(folders, tmp_path):
    folder = _copy(folders, "bert", tmp_path)
    (folder / "tokenizer.json").write_text('{"model": {"type": "WordPiece"}}')
    with pytest.raises(ValueError, match="tokenizer") as e:
        load_folder(folder)
    assert str(folder) in str(e.value) and "\n" not in str(e.value)
    _edit_config(folder)  # (unchanged config)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(config, auto_map={"AutoTokenizer": ["evil.T", None]})))
    with pytest.raises(FileFormatError, match="auto_map"):
        load_folder(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(config, tokenizer_file="/etc/passwd")))
    with pytest.raises(FileFormatError, match="tokenizer_file.*plain file name inside the folder"):
        load_folder(folder)  # a tokenizer file elsewhere on the machine is never read


def test_a_fifo_in_the_folder_is_refused_without_blocking(folders, tmp_path):
    folder = _copy(folders, "bert", tmp_path)
    (folder / "tokenizer.json").unlink()
    os.mkfifo(folder / "tokenizer.json")
    with pytest.raises(ValueError, match="FIFO"):
        load_folder(folder)


def test_the_command_line_refuses_a_folder_with_a_missing_weight_in_one_line(folders, tmp_path, capsys):
    """The run used to exit 0 with "bit-exact: yes" on a random-initialized weight."""
    folder = _copy(folders, "llama", tmp_path)
    _edit_weights(folder, lambda t: t.pop("model.layers.0.self_attn.q_proj.weight"))
    assert main(["convert", "--hf", str(folder), "--samples", "1", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.layers.0.self_attn.q_proj.weight" in err[0] and err[0].startswith("isospike: error")
    assert not (tmp_path / "o").exists()


def test_folder_loads_leave_the_process_as_it_was(folders, monkeypatch):
    """No HF_*_OFFLINE left set, the global RNG untouched, transformers' log level unchanged
    (its warnings are never silenced)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    level = transformers.logging.get_verbosity()
    rng = torch.get_rng_state()
    load_folder(folders["llama"][0])
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TRANSFORMERS_OFFLINE"] == "0"
    assert torch.equal(torch.get_rng_state(), rng)
    assert transformers.logging.get_verbosity() == level


def test_half_precision_weights_are_read_as_float32(folders, tmp_path):
    folder = _copy(folders, "llama", tmp_path)
    model = folders["llama"][1]
    half = {k: v.to(torch.bfloat16) for k, v in load_file(str(folder / "model.safetensors")).items()}
    save_file(half, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _edit_config(folder, torch_dtype="bfloat16")
    loaded = load_folder(folder).model
    weight = loaded.get_parameter("model.layers.0.mlp.up_proj.weight")
    assert weight.dtype == torch.float32
    assert torch.equal(weight, model.get_parameter("model.layers.0.mlp.up_proj.weight").to(torch.bfloat16).float())

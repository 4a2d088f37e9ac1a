import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from isospike.cli import build_parser, main

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
COMMANDS = ("demo", "train", "energy", "convert", "verify", "sweep", "deploy")


def assert_reports(out: Path, argv: list[str]) -> None:
    """Every command's output: report.md and a self-contained report.html from one document,
    both recording the command line and the versions; no temporary files left behind."""
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    command = "isospike " + shlex.join(argv)
    assert md.startswith("# isospike ") and "## Provenance" in md and f"command: `{command}`" in md
    assert page.startswith("<!DOCTYPE html>") and "<h2>Provenance</h2>" in page and "torch " in page
    assert "isospike " in md.split("## Provenance")[1] and "Python " in md.split("## Provenance")[1]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_demo_writes_report_plot_and_json(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--epochs", "3", "--timesteps", "1,4", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "SNN acc (%)" in printed and "spikes / sample" in printed
    report = (out / "report.md").read_text()
    assert "| T | ANN acc (%) | SNN acc (%)" in report and "accuracy_vs_timesteps.png" in report
    assert (out / "accuracy_vs_timesteps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in (out / "report.html").read_text()
    results = json.loads((out / "results.json").read_text())
    assert [r["timesteps"] for r in results["rows"]] == [1, 4]
    assert 0.5 < results["ann_accuracy"] <= 1.0
    codings = {r["coding"]: r for r in results["codings"]}
    assert {"rate", "ttfs", "mttfs", "mttfs (dead zone 2)", "sigma_delta", "exact", "ANN (no spikes)"} == set(codings)
    for name in ("ttfs", "mttfs", "sigma_delta", "exact"):
        assert codings[name]["certificate_holds"], name
    assert codings["exact"]["accuracy"] == pytest.approx(codings["ANN (no spikes)"]["accuracy"], abs=0.01)
    assert all(r["energy_nj"]["horowitz45"] > 0 for r in codings.values())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert_reports(out, argv)
    assert results["provenance"]["command"] == "isospike " + shlex.join(argv)
    # the trained ANN and every converted network are saved, and the other commands reuse them
    assert {p.name for p in (out / "model").iterdir()} == {"model.json", "weights.safetensors"}
    saved = {p.name for p in (out / "snn").iterdir()}
    assert saved == {"rate.safetensors", "ttfs.safetensors", "mttfs.safetensors", "mttfs-dead-zone-2.safetensors",
                     "sigma_delta.safetensors", "exact.safetensors"}
    assert "## Saved networks" in (out / "report.md").read_text()
    _reuse_demo_outputs(out, tmp_path, capsys, results)


def _reuse_demo_outputs(out: Path, tmp_path: Path, capsys, results: dict) -> None:
    """`convert`, `energy` and `verify` take what `demo` saved with --model: no training again."""
    import isospike as isp

    capsys.readouterr()
    conv = tmp_path / "conv"
    assert main(["convert", "--model", str(out / "model"), "--coding", "ttfs", "--samples", "450",
                 "--out", str(conv)]) == 0
    printed = capsys.readouterr().out
    assert "training" not in printed
    converted = json.loads((conv / "results.json").read_text())
    assert converted["ann_accuracy"] == pytest.approx(results["ann_accuracy"])  # the same ANN, not a new one
    codings = {r["coding"]: r for r in results["codings"]}
    assert converted["snn_accuracy"] == pytest.approx(codings["ttfs"]["accuracy"])
    # a saved spiking network is used as it is: its coding is the default, another one is refused
    energy_out = tmp_path / "energy"
    assert main(["energy", "--model", str(out / "snn" / "mttfs.safetensors"), "--samples", "8",
                 "--hardware", "loihi", "--out", str(energy_out)]) == 0
    assert json.loads((energy_out / "energy.json").read_text())["coding"] == "mttfs"
    assert main(["convert", "--model", str(out / "snn" / "rate.safetensors"), "--coding", "ttfs",
                 "--out", str(tmp_path / "no")]) == 1
    assert "already converted with the rate coding" in capsys.readouterr().err
    assert main(["verify", "--model", str(out / "snn" / "ttfs.safetensors"), "--samples", "16",
                 "--out", str(tmp_path / "v")]) == 0
    snn = isp.load(out / "snn" / "sigma_delta.safetensors")
    assert snn.coding == "sigma_delta"


def test_commands_without_model_reuse_the_ann_demo_saved(tmp_path, capsys, monkeypatch):
    """No --model: runs/demo/model (written by `isospike demo`) is used when it is there."""
    import torch

    from isospike.models import SmallCNN
    from isospike.train.nq import save_trained

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    save_trained(tmp_path / "runs" / "demo" / "model", SmallCNN(input_size=8).eval(),
                 {"model": "small-cnn", "kwargs": {"in_channels": 1, "num_classes": 10, "input_size": 8},
                  "dataset": "digits"})
    assert main(["energy", "--samples", "4", "--timesteps", "2", "--hardware", "horowitz45", "--out", "e"]) == 0
    printed = capsys.readouterr().out
    assert "using the ANN `isospike demo` saved in runs/demo/model" in printed and "training" not in printed
    assert json.loads((tmp_path / "e" / "energy.json").read_text())["model"] == "small-cnn from runs/demo/model"


def test_verify_takes_one_network(tmp_path, capsys):
    for argv in (["verify"], ["verify", "a.safetensors", "--model", "b.safetensors"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and "verify takes one saved network" in capsys.readouterr().err


USAGE_ERRORS = [
    (["demo", "--timesteps", "0,4"], "--timesteps"), (["demo", "--timesteps", "a"], "--timesteps"),
    (["demo", "--epochs", "0"], "--epochs"), (["nosuch"], "invalid choice"),
    (["convert", "--coding", "bogus"], "unknown coding 'bogus'"), (["convert", "--timesteps", "0"], "integer >= 1"),
    (["convert", "--dead-zone", "-1"], "integer >= 0"), (["convert", "--samples", "x"], "--samples"),
    (["energy", "--coding", "bogus"], "unknown coding"), (["energy", "--samples", "0"], "--samples"),
    (["train", "--theta", "0"], "number > 0"), (["train", "--ann-epochs", "-1"], "--ann-epochs"),
    (["train", "--levels", "0"], "--levels"), (["verify", "x.safetensors", "--samples", "0"], "--samples"),
    (["sweep", "--param", "bogus"], "invalid choice"), (["sweep"], "required"),
    (["convert", "--nosuch"], "unrecognized"),
]


@pytest.mark.parametrize("args,message", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_with_the_usage_line_before_any_work(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default output folders would land here
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: isospike") and "error: " in err and message in err
    assert list(tmp_path.iterdir()) == []  # rejected before anything was written


def test_exit_status_convention_is_the_same_in_every_help_text_and_the_docs():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert set(sub) == set(COMMANDS)
    texts = {"isospike": build_parser().format_help()} | {c: sub[c].format_help() for c in COMMANDS}
    for name, text in texts.items():
        flat = " ".join(text.split())
        assert "1 error found while running" in flat and "2 usage error" in flat and "130 interrupted" in flat, name
        assert ("3 some fail" in flat) == (name == "verify"), name
    docs = " ".join(DOCS.read_text().split())
    assert "| 1 |" in docs and "| 2 |" in docs and "| 3 |" in docs and "| 130 |" in docs
    assert "status 1 for errors" not in docs.lower()


def test_help_says_what_demo_does():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    for text in (build_parser().format_help(), sub["demo"].format_help()):
        flat = " ".join(text.split())
        assert "rate-coded SNN" not in flat and "Markdown report" not in flat
        assert "every coding" in flat and "exact gate circuits" in flat
    flat = " ".join(sub["demo"].format_help().split())
    assert "verify" in flat and "energy" in flat and "report.html + report.md" in flat


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_console_script_version():
    out = subprocess.run([sys.executable, "-m", "isospike.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("isospike ")


def test_train_writes_model_report_and_resumes(tmp_path, capsys):
    import torch

    from isospike.train import load_trained

    out = tmp_path / "nq"
    args = ["train", "--dataset", "digits", "--ann-epochs", "2", "--epochs", "1", "--timesteps", "1,4",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "SNN acc (%)" in printed and "ReLU ANN test accuracy" in printed
    for name in ("report.md", "report.html", "results.json", "weights.safetensors", "model.json", "ann.safetensors",
                 "checkpoints/checkpoint.safetensors"):
        assert (out / name).is_file(), name
    assert_reports(out, args)
    assert "| T | SNN acc (%) | spikes / sample |" in (out / "report.md").read_text()
    assert "<td>4</td>" in (out / "report.html").read_text()  # the SNN table, in both renderings
    assert json.loads((out / "results.json").read_text())["provenance"]["command"] == "isospike " + shlex.join(args)
    model = load_trained(out)
    x = torch.rand(3, 1, 8, 8)
    before = model(x)
    assert main(args) == 0  # rerun: reuses the ANN and the finished checkpoint
    assert "reusing the ReLU ANN" in capsys.readouterr().out
    assert torch.equal(load_trained(out)(x), before)


def test_train_reports_missing_data_and_bad_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ISOSPIKE_CIFAR", str(tmp_path))
    assert main(["train", "--dataset", "cifar10", "--out", str(tmp_path / "x"), "--no-progress"]) == 1
    assert "CIFAR-10 not found" in capsys.readouterr().err
    assert main(["train", "--model", "transformer-xl", "--out", str(tmp_path / "y"), "--no-progress"]) == 1
    assert "unknown model" in capsys.readouterr().err


def test_energy_command_writes_reports(tmp_path, capsys):
    out = tmp_path / "e"
    argv = ["energy", "--samples", "16", "--timesteps", "4", "--hardware", "horowitz45,loihi", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "horowitz45" in printed and "data movement" in printed and "ANN / SNN" in printed
    data = json.loads((out / "energy.json").read_text())
    assert set(data["results"]) == {"horowitz45", "loihi"}
    assert data["results"]["loihi"]["full"]["total_j"] > 0
    assert data["provenance"]["command"] == "isospike " + shlex.join(argv)
    assert (out / "energy_loihi.png").read_bytes()[:4] == b"\x89PNG"
    assert_reports(out, argv)
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "| horowitz45 |" in md and "| loihi |" in md and "energy_loihi.png" in md
    assert page.count("data:image/png;base64,") == 2
    assert main(["energy", "--hardware", "quantum", "--out", str(out)]) == 1
    assert "unknown hardware" in capsys.readouterr().err


def test_energy_takes_the_same_model_sources_as_convert(tmp_path, capsys):
    """A .pt / .safetensors state dict with --arch, like convert and sweep (not only train folders)."""
    import torch

    from isospike.models import SmallCNN

    torch.manual_seed(0)
    pt = tmp_path / "sd.pt"
    torch.save(SmallCNN(input_size=8).state_dict(), str(pt))
    assert main(["energy", "--model", str(pt), "--samples", "4"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--arch" in err[0] and "model.json" not in err[0]
    out = tmp_path / "e"
    assert main(["energy", "--model", str(pt), "--arch", "small-cnn", "--samples", "8", "--timesteps", "2",
                 "--hardware", "horowitz45", "--out", str(out)]) == 0
    data = json.loads((out / "energy.json").read_text())
    assert data["model"] == f"small-cnn from {pt}" and data["results"]["horowitz45"]["full"]["total_j"] > 0
    assert main(["energy", "--model", str(pt), "--arch", "vgg11", "--samples", "4", "--out", str(out)]) == 1
    assert "does not fit --arch vgg11" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "nq"
    assert main(["train", "--dataset", "digits", "--ann-epochs", "3", "--epochs", "1", "--timesteps", "2",
                 "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("coding,extra", [("rate", ["--timesteps", "4"]), ("ttfs", ["--device", "in2o3"]),
                                          ("mttfs", ["--dead-zone", "1"]), ("sigma_delta", ["--levels", "8"])])
def test_convert_every_coding_writes_a_certified_report_and_a_loadable_network(tmp_path, trained_folder, capsys,
                                                                                coding, extra):
    import isospike as isp

    out = tmp_path / coding
    assert main(["convert", "--model", str(trained_folder), "--coding", coding, "--samples", "64", "--out", str(out),
                 *extra]) == 0
    printed = capsys.readouterr().out
    assert "guarantee" in printed and "report:" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["coding"] == coding and 0 <= results["snn_accuracy"] <= 1
    html = (out / "report.html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html and "Equivalence certificate" in html
    assert "isospike convert" in (out / "report.md").read_text()
    snn = isp.load(out / "snn.safetensors")
    assert snn.coding == coding
    verify = ["verify", str(out / "snn.safetensors"), "--samples", "32", "--out", str(tmp_path / "v")]
    code = main(verify)
    assert code in (0, 3)  # rate layers fed by spikes may exceed their residual bound
    assert_reports(tmp_path / "v", verify)
    cert = json.loads((tmp_path / "v" / "certificate.json").read_text())
    assert (code == 0) == cert["holds"]
    if coding != "rate":
        assert cert["holds"]


def test_convert_state_dict_with_arch_and_exact(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    from isospike.models import SmallCNN

    torch.manual_seed(0)
    path = tmp_path / "w.safetensors"
    save_file(SmallCNN(input_size=8).state_dict(), str(path))
    assert main(["convert", "--model", str(path), "--arch", "small-cnn", "--coding", "exact", "--samples", "8",
                 "--out", str(tmp_path / "ex")]) == 0
    assert "bit-exact" in (tmp_path / "ex" / "report.md").read_text()
    pt = tmp_path / "w.pt"
    torch.save(SmallCNN(input_size=8).state_dict(), str(pt))
    assert main(["convert", "--model", str(pt), "--arch", "small-cnn", "--samples", "8", "--out", str(tmp_path / "pt")]) == 0


@pytest.mark.parametrize("args,message", [
    (["convert", "--model", "/nonexistent/model"], "not found"),
    (["convert", "--model", "{w}"], "--arch"),
    (["convert", "--model", "{w}", "--arch", "vgg11"], "does not fit"),
    (["verify", "/nonexistent.safetensors"], "no saved network"),
    (["verify", "{w}"], "not an isospike network"),
    (["sweep", "--param", "leak", "--values", "0,2"], "leak values"),
    (["sweep", "--param", "timesteps", "--values", "x"], "comma-separated"),
])
def test_bad_input_exits_1_with_a_one_line_reason(tmp_path, capsys, args, message):
    import torch
    from safetensors.torch import save_file

    from isospike.models import SmallCNN

    w = tmp_path / "w.safetensors"
    save_file(SmallCNN(input_size=8).state_dict(), str(w))
    assert main([a.replace("{w}", str(w)) for a in args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("isospike: error:") and message in err[0]
    del torch


class _Evil:
    """Unpickling this would run a command: the loaders must refuse it without unpickling."""

    def __init__(self, flag: Path):
        self.flag = flag

    def __reduce__(self):
        return (Path.touch, (self.flag,))


@pytest.fixture
def unreadable_models(tmp_path):
    """A pickled whole model, a pickle that runs code, and garbage in both formats."""
    import torch

    from isospike.models import SmallCNN

    torch.save(SmallCNN(input_size=8), str(tmp_path / "full.pt"))
    torch.save({"w": _Evil(tmp_path / "PWNED")}, str(tmp_path / "evil.pt"))
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file at all")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00\x01garbage")
    return tmp_path


@pytest.mark.parametrize("args,message", [
    (["convert", "--model", "{d}/full.pt", "--arch", "small-cnn"], "full.pt holds pickled Python objects"),
    (["convert", "--model", "{d}/evil.pt", "--arch", "small-cnn"], "evil.pt holds pickled Python objects"),
    (["convert", "--model", "{d}/garbage.pt", "--arch", "small-cnn"], "garbage.pt is not a state dict torch.load"),
    (["convert", "--model", "{d}/garbage.safetensors", "--arch", "small-cnn"],
     "garbage.safetensors is not a valid safetensors file"),
    (["energy", "--model", "{d}/full.pt", "--arch", "small-cnn"], "full.pt holds pickled Python objects"),
    (["sweep", "--param", "timesteps", "--model", "{d}/garbage.safetensors", "--arch", "small-cnn"],
     "not a valid safetensors file"),
    (["verify", "{d}/full.pt"], "full.pt is not a readable safetensors file"),
    (["verify", "{d}/garbage.safetensors"], "garbage.safetensors is not a readable safetensors file"),
    (["train", "--init", "{d}/full.pt", "--ann-epochs", "0", "--epochs", "1"], "full.pt holds pickled Python objects"),
    (["train", "--init", "{d}/garbage.safetensors", "--ann-epochs", "0", "--epochs", "1"], "not a valid safetensors"),
    (["train", "--init", "{d}/missing.safetensors", "--ann-epochs", "0", "--epochs", "1"],
     "missing.safetensors not found"),
], ids=lambda v: " ".join(v[:3]) if isinstance(v, list) else None)
def test_unloadable_model_files_give_one_line_naming_the_file_and_the_fix(unreadable_models, capsys, args, message):
    d = unreadable_models
    argv = [a.replace("{d}", str(d)) for a in args] + ["--out", str(d / "out")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("isospike: error: ") and message in err[0]
    assert "Traceback" not in err[0] and "weights_only` set to `False`" not in err[0]
    if args[0] != "verify" and "missing" not in message:
        assert "model.state_dict()" in err[0]  # the fix: save the weights only
    assert not (d / "PWNED").exists()


def test_exact_refusal_of_a_trained_folder_points_at_its_relu_ann(trained_folder, tmp_path, capsys):
    """A folder from `isospike train` holds the quantized (NoisyQCFS) network, which the gate
    circuits refuse; the message names the folder's plain ReLU ANN and its --arch."""
    assert main(["energy", "--model", str(trained_folder), "--coding", "exact", "--samples", "2",
                 "--out", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noise-aware quantized network" in err[0]
    assert f"--model {trained_folder / 'ann.safetensors'} --arch small-cnn" in err[0]


@pytest.mark.parametrize("param,values", [("timesteps", "1,4"), ("dead-zone", "0,2"), ("leak", "0.3,1.0"),
                                          ("noise", "0,0.3")])
def test_sweep_writes_table_plot_and_report(tmp_path, trained_folder, capsys, param, values):
    out = tmp_path / param
    assert main(["sweep", "--param", param, "--values", values, "--model", str(trained_folder), "--samples", "64",
                 "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["rows"]) == 2 and (out / "sweep.png").is_file() and (out / "report.html").is_file()
    assert (out / "report.md").is_file() and data["provenance"]["torch"]
    if param == "leak":  # single-step gates ignore the leak: always bit-exact
        assert all(r["bit_identical"] == 1.0 for r in data["rows"])
    if param == "noise":
        assert data["rows"][0]["bit_identical"] == 1.0 > data["rows"][1]["bit_identical"]


def test_train_spiking_gamma_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "sg"
    argv = ["train", "--method", "spiking-gamma", "--dataset", "digits", "--train-samples", "300", "--epochs", "2",
            "--hidden", "16", "--frame-ms", "2", "--dt", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert_reports(out, argv)
    results = json.loads((out / "results.json").read_text())
    assert [r["dt_ms"] for r in results["by_dt"]] == [0.25, 0.5, 1.0, 2.0]
    assert (out / "weights.safetensors").is_file() and "spikes / s" in capsys.readouterr().out


def test_convert_a_hugging_face_bert_folder_to_exact_circuits(tmp_path, capsys):
    from transformers import BertConfig, BertModel

    from isospike.models.minilm import load_minilm

    tok, _ = load_minilm()
    folder = tmp_path / "tiny-bert"
    tok.save_pretrained(folder)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    out = tmp_path / "bert"
    assert main(["convert", "--model", str(folder), "--coding", "exact", "--text", "Spikes add up.", "--samples", "1",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["sentences"][0]["bit_identical_to_reference"] is True
    assert main(["convert", "--model", str(folder), "--coding", "rate"]) == 1
    assert "--coding exact" in capsys.readouterr().err


def test_a_hugging_face_folder_with_pickled_weights_is_one_line(tmp_path, capsys):
    """pytorch_model.bin is a pickle: refused before transformers reads it, in one line."""
    import torch
    from transformers import BertConfig, BertModel

    from isospike.models.minilm import load_minilm

    tok, _ = load_minilm()
    folder = tmp_path / "pickled-bert"
    tok.save_pretrained(folder)
    model = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32))
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), str(folder / "pytorch_model.bin"))  # the legacy pickled format
    assert main(["convert", "--model", str(folder), "--coding", "exact", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pytorch_model.bin" in err[0] and "only safetensors weights" in err[0]


def test_an_output_folder_that_cannot_be_written_is_a_usage_error_before_the_run(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    for argv in (["demo", "--out", str(taken)], ["convert", "--out", str(taken / "sub")]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "--out" in err and str(taken) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_convert_a_hugging_face_decoder_folder_generates_through_the_gates(tmp_path, capsys):
    """`isospike convert --hf FOLDER` takes decoder LLMs too: a tiny Llama saved with a real
    tokenizer; logits bit-exact against the reference and tokens generated through the gates."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from isospike.models.minilm import load_minilm

    tok, _ = load_minilm()
    folder = tmp_path / "tiny-llama"
    tok.save_pretrained(folder)
    torch_mod = __import__("torch")
    torch_mod.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(folder)
    out = tmp_path / "llama"
    assert main(["convert", "--hf", str(folder), "--text", "Spikes add up.", "--samples", "1", "--max-new-tokens", "2",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["decoder"] is True and results["architecture"] == "LlamaForCausalLM"
    sentence = results["sentences"][0]
    assert sentence["bit_identical_to_reference"] is True and sentence["generated_equals_reference"] is True
    assert "generated through gates" in capsys.readouterr().out


def test_the_convert_report_reads_right(tmp_path):
    """Ratios state their direction, layers name their type, every NO explains itself, each
    section says on how many samples it was measured, the ANN baseline's pricing is stated, one
    number format, one energy plot per hardware preset."""
    out = tmp_path / "rate"
    assert main(["convert", "--coding", "rate", "--samples", "60", "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "SNN / ANN = " in md and ("the SNN costs more" in md or "less" in md)
    assert "(IF neurons)" in md and "(Conv2d synapses)" in md
    for line in md.splitlines():
        assert "| NO |" not in line  # rate layers outside their bound are a bounded-error certificate, said so
        if "| bounded: " in line:
            assert "statistical certificate, expected for rate coding" in line and "docs/verification.md" in line
            assert "| bounded-error |" in line
    assert "Simulated on 60 test samples" in md and "`isospike.verify` on " in md and "estimate` on " in md
    assert "ANN baseline on loihi: every MAC at" in md
    assert "e+0" not in md  # no scientific notation for numbers in the normal range
    assert (out / "energy_horowitz45.png").is_file() and (out / "energy_loihi.png").is_file()


def test_deploy_checks_the_vendor_simulator_and_refuses_what_does_not_fit(tmp_path, capsys):
    """speck: sinabs' simulation equals isospike's integer simulation; xylo: the digits CNN is
    refused naming the layer and the constraint (exit 1, one line)."""
    import importlib.util

    import torch
    from safetensors.torch import save_file

    from isospike.models import SmallCNN

    torch.manual_seed(0)
    w = tmp_path / "w.safetensors"
    save_file(SmallCNN(input_size=8).state_dict(), str(w))
    assert main(["deploy", "--target", "xylo", "--model", str(w), "--arch", "small-cnn", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Xylo: layer '0' (Conv2d) cannot be placed" in err[0]
    if importlib.util.find_spec("sinabs") is None:
        pytest.skip("sinabs is not installed")
    out = tmp_path / "speck"
    argv = ["deploy", "--target", "speck", "--model", str(w), "--arch", "small-cnn", "--samples", "6",
            "--timesteps", "6", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "deploy.json").read_text())
    assert result["agreement"]["decisions_equal"] == 1.0 and result["agreement"]["outputs_identical"]
    assert [layer["where"] for layer in result["layers"]][0].startswith("core ")
    assert_reports(out, argv)

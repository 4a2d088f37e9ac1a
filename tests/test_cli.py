import json
import subprocess
import sys

import pytest

from isospike.cli import main


def test_demo_writes_report_plot_and_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "3", "--timesteps", "1,4", "--no-progress"]) == 0
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


@pytest.mark.parametrize("args", [["demo", "--timesteps", "0,4"], ["demo", "--timesteps", "a"], ["nosuch"]])
def test_bad_arguments_exit_2_with_a_message(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


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
    for name in ("report.md", "results.json", "weights.safetensors", "model.json", "ann.safetensors",
                 "checkpoints/checkpoint.safetensors"):
        assert (out / name).is_file(), name
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
    assert main(["energy", "--samples", "16", "--timesteps", "4", "--hardware", "horowitz45,loihi", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "horowitz45" in printed and "data movement" in printed and "ANN / SNN" in printed
    data = json.loads((out / "energy.json").read_text())
    assert set(data["results"]) == {"horowitz45", "loihi"}
    assert data["results"]["loihi"]["full"]["total_j"] > 0
    assert (out / "energy_loihi.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["energy", "--hardware", "quantum", "--out", str(out)]) == 1
    assert "unknown hardware" in capsys.readouterr().err


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
    code = main(["verify", str(out / "snn.safetensors"), "--samples", "32", "--out", str(tmp_path / "v")])
    assert code in (0, 3)  # rate layers fed by spikes may exceed their residual bound
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


def test_convert_rejects_an_unknown_coding(capsys):
    with pytest.raises(SystemExit) as e:
        main(["convert", "--coding", "nosuch"])
    assert e.value.code == 2 and "unknown --coding" in capsys.readouterr().err


@pytest.mark.parametrize("param,values", [("timesteps", "1,4"), ("dead-zone", "0,2"), ("leak", "0.3,1.0"),
                                          ("noise", "0,0.3")])
def test_sweep_writes_table_plot_and_report(tmp_path, trained_folder, capsys, param, values):
    out = tmp_path / param
    assert main(["sweep", "--param", param, "--values", values, "--model", str(trained_folder), "--samples", "64",
                 "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["rows"]) == 2 and (out / "sweep.png").is_file() and (out / "report.html").is_file()
    if param == "leak":  # single-step gates ignore the leak: always bit-exact
        assert all(r["bit_identical"] == 1.0 for r in data["rows"])
    if param == "noise":
        assert data["rows"][0]["bit_identical"] == 1.0 > data["rows"][1]["bit_identical"]


def test_train_spiking_gamma_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "sg"
    assert main(["train", "--method", "spiking-gamma", "--dataset", "digits", "--train-samples", "300", "--epochs", "2",
                 "--hidden", "16", "--frame-ms", "2", "--dt", "1", "--out", str(out), "--no-progress"]) == 0
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

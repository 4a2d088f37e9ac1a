"""The device checks in one prepared run (for a session lent a GPU): the CUDA tests, the gate engine
on the device against the device's own bitwise-AND throughput, and the Open Neuromorphic neuron
benchmark (linear + LIF, batch 16, T = 500, 4k and 16k neurons).

    python benchmarks/gpu_suite.py [--device cuda] [--out DIR] [--quick]

Gates: float32 add and mul of 2^22 values with ``backend="torch"`` (packed int64 words, plain
torch ops on the device), lane-gates per second, and ``&`` over 2^22 int64 words on the same
device. Neurons: isospike's IF/LIF population (torch path on non-CPU devices, numba on CPU),
forward only (spikes carry no surrogate gradient here), and snnTorch's Leaky forward + backward
when snnTorch is installed, on the same device. Every figure carries the device's name.
Writes gpu_suite.json into ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import RESULTS, print_table, write_results


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int = 5) -> float:
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def gates(device: torch.device, log2n: int) -> list[dict]:
    from isospike.exact import cost, ops

    n = 1 << log2n
    a, b = torch.randn(n, device=device), torch.randn(n, device=device)
    words = torch.randint(-2**62, 2**62, (n,), device=device)
    t_and = _timed(lambda: words & words.roll(1), device)
    rows = []
    for op in ("add", "mul"):
        seconds = _timed(lambda op=op: getattr(ops, op)(a, b, backend="torch"), device, repeats=3)
        neurons = cost(op).neurons
        rows.append({"op": op, "values": n, "seconds": seconds, "ops_per_s": n / seconds,
                     "lane_gates_per_s": n * neurons / seconds, "bitwise_and_lane_ops_per_s": 64 * n / t_and,
                     "ratio_to_bitwise_and": (n * neurons / seconds) / (64 * n / t_and)})
    return rows


def neurons(device: torch.device, T: int, sizes: list[int]) -> list[dict]:
    from isospike.neurons import IFNeuron

    rows = []
    for width in sizes:
        x = torch.rand(T, 16, width, device=device)
        lin = torch.nn.Linear(width, width).to(device)
        lif = IFNeuron(threshold=1.0, leak=0.9, reset="zero", step_mode="multi").to(device)

        def isospike_forward() -> None:
            with torch.no_grad():
                lif.reset()
                lif.multi_step(lin(x))

        row = {"neurons": width, "batch": 16, "timesteps": T,
               "isospike_forward_ms": 1e3 * _timed(isospike_forward, device, repeats=3)}
        try:
            import snntorch as snn

            leaky = snn.Leaky(beta=0.9, reset_mechanism="zero").to(device)

            def snntorch_forward_backward() -> None:
                mem = leaky.init_leaky()
                out = []
                cur = lin(x)
                for t in range(T):
                    spk, mem = leaky(cur[t], mem)
                    out.append(spk)
                torch.stack(out).sum().backward()

            row["snntorch_forward_backward_ms"] = 1e3 * _timed(snntorch_forward_backward, device, repeats=2)
        except ImportError:
            row["snntorch_forward_backward_ms"] = None
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--quick", action="store_true", help="small sizes (a check that the script runs)")
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    tests = None
    if device.type == "cuda":
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "tests/exact/test_torch_backend.py"], capture_output=True, text=True)
        print(tests.stdout[-2000:])
    gate_rows = gates(device, 12 if args.quick else 22)
    neuron_rows = neurons(device, 20 if args.quick else 500, [256] if args.quick else [4096, 16384])
    print_table(["op", "device", "ops/s", "lane-gates/s", "x bitwise AND"],
                [[r["op"], name, f"{r['ops_per_s']:.3g}", f"{r['lane_gates_per_s']:.3g}", f"{r['ratio_to_bitwise_and']:.3f}"]
                 for r in gate_rows])
    print_table(["neurons", "device", "isospike forward (ms)", "snnTorch forward+backward (ms)"],
                [[r["neurons"], name, f"{r['isospike_forward_ms']:.1f}",
                  "-" if r["snntorch_forward_backward_ms"] is None else f"{r['snntorch_forward_backward_ms']:.1f}"]
                 for r in neuron_rows])
    data = {"device": name, "quick": args.quick, "gates": gate_rows, "neurons": neuron_rows,
            "cuda_tests": None if tests is None else {"returncode": tests.returncode, "tail": tests.stdout[-2000:]}}
    out = Path(args.out)
    if out.resolve() == RESULTS.resolve():
        print(f"written: {write_results('gpu_suite', data)}")
    else:
        import json

        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_suite.json").write_text(json.dumps(data, indent=2))
        print(f"written: {out / 'gpu_suite.json'}")


if __name__ == "__main__":
    main()

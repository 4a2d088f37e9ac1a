"""The device checks in one prepared run (for a session lent a GPU): the CUDA tests, the gate
engines on the device against the device's own bitwise-AND throughput, an exact network on the
device, and the Open Neuromorphic neuron benchmark (linear + LIF, batch 16, T = 500, 4k and 16k).

    python benchmarks/gpu_suite.py [--device cuda] [--out DIR] [--quick]

Sections (each one's failure is recorded and the run goes on; the JSON is rewritten after each):
1. ``pytest`` on the CUDA tests (tests/test_cuda.py, tests/exact/test_triton_backend.py,
   tests/exact/test_torch_backend.py).
2. Gates: the fused Triton kernel on packed float32 add/mul/fma/div/sqrt circuits (a sweep of
   lane block and warps on add and mul picks the setting), the plain-torch level engine, the end to
   end ``isospike.exact`` call on device tensors, and ``&`` over int64 words on the same device;
   the numba kernel on this machine's CPU cores for reference.
3. An exact transformer block on the device against the CPU: bit-identical outputs, time.
4. Neurons: isospike's LIF population vs snnTorch's Leaky on the device.
Every figure carries the device's name. Writes gpu_suite.json into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from _common import RESULTS, machine, print_table
from _gpu import (
    FLOAT_OPS,
    best_time,
    bitwise_and_lane_ops_per_s,
    device_name,
    end_to_end_rate,
    open_neuromorphic_lif,
    torch_levels_rate,
    triton_kernel_rate,
)

CUDA_TESTS = ["tests/test_cuda.py", "tests/exact/test_triton_backend.py", "tests/exact/test_torch_backend.py"]


def cuda_tests(timeout: int) -> dict:
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS],
                              capture_output=True, text=True, timeout=timeout)
        out = {"returncode": done.returncode, "tail": (done.stdout + done.stderr)[-3000:]}
    except subprocess.TimeoutExpired as e:
        out = {"returncode": None, "tail": f"timed out after {timeout} s: {str(e.stdout)[-2000:]}"}
    out["seconds"] = time.perf_counter() - t0
    print(out["tail"][-1500:], flush=True)
    return out


def gates(device: torch.device, log2n: int, quick: bool) -> dict:
    from isospike.exact.backends import triton_bitsliced

    result: dict = {"values": 1 << log2n}
    result["bitwise_and_lane_ops_per_s"] = {
        "2^26 words (memory)": bitwise_and_lane_ops_per_s(device, 1 << (16 if quick else 26)),
        "2^16 words (cache)": bitwise_and_lane_ops_per_s(device, 1 << 16),
    }
    anchor = max(result["bitwise_and_lane_ops_per_s"].values())
    result["best_bitwise_and_lane_ops_per_s"] = anchor
    if triton_bitsliced.available(device):
        sweep = []
        for block in ((4, 8) if quick else (16, 32, 64, 128)):
            for warps in ((1,) if quick else (1, 2)):
                for op in ("add", "mul"):
                    try:
                        sweep.append(triton_kernel_rate(op, log2n, device, block, warps, repeats=3))
                    except Exception as e:  # a setting that does not compile is reported, not fatal
                        sweep.append({"op": op, "block": block, "num_warps": warps, "error": repr(e)[:300]})
        result["triton_sweep"] = sweep
        score: dict[tuple[int, int], float] = {}
        for r in sweep:
            if "error" not in r:
                score[(r["block"], r["num_warps"])] = score.get((r["block"], r["num_warps"]), 0.0) + r["seconds"]
        defaults = (triton_bitsliced.DEFAULT_BLOCK, triton_bitsliced.DEFAULT_WARPS)
        block, warps = min(score, key=lambda k: score[k]) if score else defaults
        result["triton_best"] = {"block": block, "num_warps": warps}
        print(f"best Triton setting: block {block}, {warps} warps", flush=True)
        triton_bitsliced.DEFAULT_BLOCK, triton_bitsliced.DEFAULT_WARPS = block, warps
        result["triton_kernel"] = [triton_kernel_rate(op, log2n, device, block, warps) for op in FLOAT_OPS]
        result["triton_kernel"] += [triton_kernel_rate(op, log2n + 2, device, block, warps) for op in ("add", "mul")]
        for r in result["triton_kernel"]:
            r["ratio_to_bitwise_and"] = r["lane_gates_per_s"] / anchor
    result["torch_levels"] = [torch_levels_rate(op, log2n - 2, device) for op in ("add", "mul")]
    result["end_to_end"] = [end_to_end_rate(op, log2n, device) for op in FLOAT_OPS]
    result["end_to_end"] += [end_to_end_rate(op, log2n + 2, device) for op in ("add", "mul")]
    # the numba kernel on this machine's own CPU cores, same circuits (reference, not the 2-core figure)
    result["numba_cpu"] = [end_to_end_rate(op, 18 if quick else 20, torch.device("cpu")) for op in ("add", "mul")]
    result["cpu_cores"] = os.cpu_count()
    return result


def exact_blocks(device: torch.device, quick: bool) -> list[dict]:
    """Transformer encoder layers through the gates on the device and on the CPU (numba):
    bit-identical outputs and wall times, a small and a larger one."""
    sizes = [(16, 8)] if quick else [(128, 16), (256, 64)]
    return [exact_block(device, d, tokens) for d, tokens in sizes]


def exact_block(device: torch.device, d: int, tokens: int) -> dict:
    import isospike as isp

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d, 4, dim_feedforward=2 * d, dropout=0.0, batch_first=True).eval()
    x = torch.randn(1, tokens, d)
    cpu_net = isp.exact.convert(layer)
    want = cpu_net(x)  # compiles the numba kernels
    t_cpu = best_time(lambda: cpu_net(x), torch.device("cpu"), repeats=1, warmup=0)
    gpu_net = isp.exact.convert(layer.to(device))
    xd = x.to(device)
    gpu_net(xd)  # compiles the kernels
    t_dev = best_time(lambda: gpu_net(xd), device, repeats=2, warmup=0)
    y = gpu_net(xd)
    return {"model": f"nn.TransformerEncoderLayer(d={d}, heads=4, ff={2 * d}), {x.shape[1]} tokens",
            "bit_identical": bool(torch.equal(y.cpu().view(torch.int32), want.view(torch.int32))),
            "device_seconds": t_dev, "cpu_seconds": t_cpu, "cpu_cores": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--quick", action="store_true", help="small sizes (a check that the script runs)")
    ap.add_argument("--test-timeout", type=int, default=240)
    args = ap.parse_args()
    device = torch.device(args.device)
    name = device_name(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data: dict = {"benchmark": "gpu_suite", "device": name, "quick": args.quick, "machine": machine(),
                  "date": time.strftime("%Y-%m-%d")}
    try:
        import triton

        data["triton"] = triton.__version__
    except ImportError:
        data["triton"] = None

    def save() -> None:
        tmp = out / "gpu_suite.json.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, out / "gpu_suite.json")

    sections = [
        ("cuda_tests", lambda: cuda_tests(args.test_timeout) if device.type == "cuda" else None),
        ("gates", lambda: gates(device, 16 if args.quick else 22, args.quick)),
        ("exact_blocks", lambda: exact_blocks(device, args.quick)),
        ("neurons", lambda: [open_neuromorphic_lif(device, w, T=20 if args.quick else 500)
                             for w in ([256] if args.quick else [4096, 16384])]),
    ]
    for key, run in sections:
        t0 = time.perf_counter()
        print(f"== {key}", flush=True)
        try:
            data[key] = run()
        except Exception:
            data[key] = {"error": traceback.format_exc()[-3000:]}
            print(data[key]["error"], flush=True)
        print(f"   {key}: {time.perf_counter() - t0:.1f} s", flush=True)
        save()

    g = data.get("gates", {})
    if "triton_kernel" in g:
        print_table(["op (float32)", "device", "gates", "kernel G lane-gates/s", "x bitwise AND"],
                    [[r["op"], name, r["gates"], f"{r['lane_gates_per_s'] / 1e9:,.0f}", f"{r['ratio_to_bitwise_and']:.3f}"]
                     for r in g["triton_kernel"]])
    if "end_to_end" in g:
        print_table(["op (float32)", "device", "end-to-end M ops/s", "G lane-gates/s"],
                    [[r["op"], name, f"{r['ops_per_s'] / 1e6:.1f}", f"{r['lane_gates_per_s'] / 1e9:,.0f}"]
                     for r in g["end_to_end"]])
    if isinstance(data.get("neurons"), list):
        print_table(["neurons", "device", "isospike forward (ms)", "snnTorch forward (ms)", "snnTorch fwd+bwd (ms)"],
                    [[r["neurons"], name, f"{r['isospike_forward_ms']:.1f}",
                      "-" if r.get("snntorch_forward_ms") is None else f"{r['snntorch_forward_ms']:.1f}",
                      "-" if r.get("snntorch_forward_backward_ms") is None else f"{r['snntorch_forward_backward_ms']:.1f}"]
                     for r in data["neurons"]])
    print(f"written: {out / 'gpu_suite.json'}")


if __name__ == "__main__":
    main()

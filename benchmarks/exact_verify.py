"""Verification of the gate-circuit IEEE-754 operations against independent references.

    python benchmarks/exact_verify.py [--n 1000000]

float32: >= 1,000,000 TestFloat-style vectors per operation (random bit patterns, a quarter
forced to exponent boundaries: zero/subnormal, smallest normals, largest normals, inf/NaN;
plus pairs with nearby exponents for cancellation). float16/bfloat16: every one of the
65,536 inputs for unary operations and conversions, >= 1,000,000 random pairs for binary
operations. References: numpy float32/float16 (correctly rounded + - * / sqrt), ml_dtypes
bfloat16, torch conversions, Berkeley SoftFloat (softfloatpy) for fused multiply-add, MPFR
(gmpy2) for bfloat16 fma. Prints and writes the mismatch count per operation
(benchmarks/results/exact_verify.json); every count must be 0.
"""

from __future__ import annotations

import argparse
import time

import gmpy2
import ml_dtypes
import numpy as np
import softfloatpy as sf
import torch
from _common import print_table, write_results
from tqdm import tqdm

import isospike.exact as ex

NAN_CHECK = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


def mismatches(y: torch.Tensor, ref: torch.Tensor) -> int:
    if y.dtype == torch.bool or y.dtype == torch.int32:
        return int((y != ref).sum())
    it = NAN_CHECK[y.dtype]
    ok = (y.view(it) == ref.view(it)) | (torch.isnan(y) & torch.isnan(ref))
    return int((~ok).sum())


def testfloat_bits(n: int, width: int, rng: np.random.Generator) -> np.ndarray:
    e_shift, e_max = (23, 0xFF) if width == 32 else (10, 0x1F)
    man = (1 << e_shift) - 1
    x = rng.integers(0, 1 << width, n, dtype=np.uint64)
    k = n // 4
    exps = rng.choice([0, 1, 2, e_max - 2, e_max - 1, e_max], k).astype(np.uint64)
    x[:k] = (x[:k] & np.uint64(1 << (width - 1))) | (exps << np.uint64(e_shift)) | (x[:k] & np.uint64(man))
    return x


def to_t(bits: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    np_u, np_i = (np.uint32, np.int32) if dtype == torch.float32 else (np.uint16, np.int16)
    return torch.from_numpy(bits.astype(np_u).view(np_i).copy()).view(dtype)


def np_view(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def from_np(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bfloat16:
        return torch.from_numpy(a.astype(ml_dtypes.bfloat16).view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a))


REF = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "eq": np.equal, "lt": np.less, "le": np.less_equal,
}


def reference(op: str, dtype: torch.dtype, *xs: torch.Tensor) -> torch.Tensor:
    arrs = [np_view(x) for x in xs]
    with np.errstate(all="ignore"):
        if op in ("eq", "lt", "le"):
            return torch.from_numpy(REF[op](*arrs))
        if op == "sqrt":
            return from_np(np.sqrt(arrs[0]), dtype)
        if op in ("minimum", "maximum"):
            return getattr(torch, op)(*xs)  # zeros of opposite sign are compared separately
        return from_np(REF[op](*arrs), dtype)


def fma_reference(dtype: torch.dtype, a, b, c) -> torch.Tensor:
    if dtype == torch.bfloat16:
        ctx = gmpy2.context(precision=8, emin=-132, emax=128, subnormalize=True)
        vals = [x.float().numpy() for x in (a, b, c)]
        out = np.empty(len(vals[0]), dtype=np.float32)
        with gmpy2.context(ctx):
            for i, (x, y, z) in enumerate(zip(*vals)):
                out[i] = float(gmpy2.fma(gmpy2.mpfr(float(x)), gmpy2.mpfr(float(y)), gmpy2.mpfr(float(z))))
        return torch.from_numpy(out).bfloat16()
    width = 4 if dtype == torch.float32 else 2
    cls, fn = (sf.Float32, sf.f32_mul_add) if dtype == torch.float32 else (sf.Float16, sf.f16_mul_add)
    it = NAN_CHECK[dtype]
    raw = [x.view(it).numpy().astype(np.int64) & ((1 << (8 * width)) - 1) for x in (a, b, c)]
    out = np.empty(len(raw[0]), dtype=np.uint32 if width == 4 else np.uint16)
    for i, (x, y, z) in enumerate(zip(*raw)):
        r = fn(cls.from_bytes(int(x).to_bytes(width, "big")), cls.from_bytes(int(y).to_bytes(width, "big")),
               cls.from_bytes(int(z).to_bytes(width, "big")))
        out[i] = int.from_bytes(r.to_bytes(), "big")
    return to_t(out, dtype)


def bfloat16_of_ints(ints: np.ndarray) -> torch.Tensor:
    """Correctly rounded int -> bfloat16 with MPFR (the result is exact in float32)."""
    ctx = gmpy2.context(precision=8, emin=-132, emax=128, subnormalize=True)
    with gmpy2.context(ctx):
        vals = np.array([float(gmpy2.mpfr(int(v))) for v in ints], dtype=np.float32)
    return torch.from_numpy(vals).bfloat16()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors per float32 operation (default 1e6)")
    ap.add_argument("--n-fma", type=int, default=1_000_000, help="float32 fma vectors (SoftFloat reference)")
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    rows, results = [], []

    def record(op, dtype, n, bad, seconds, reference_name):
        results.append({"op": op, "dtype": str(dtype).replace("torch.", ""), "vectors": n, "mismatches": bad,
                        "seconds": seconds, "reference": reference_name})
        rows.append([op, str(dtype).replace("torch.", ""), n, bad, f"{seconds:.1f}", reference_name])

    binary = ["add", "sub", "mul", "div", "minimum", "maximum", "eq", "lt", "le"]
    for dtype, width in ((torch.float32, 32), (torch.float16, 16), (torch.bfloat16, 16)):
        n = args.n
        a_bits, b_bits = testfloat_bits(n, width, rng), testfloat_bits(n, width, rng)
        near = n // 4  # operand pairs with nearby exponents: cancellation, ties, alignment
        b_bits[n // 4: n // 4 + near] = a_bits[n // 4: n // 4 + near] ^ rng.integers(0, 1 << (width - 6), near).astype(np.uint64)
        a, b = to_t(a_bits, dtype), to_t(b_bits, dtype)
        for op in tqdm(binary, desc=f"{dtype} binary ops", leave=False):
            t0 = time.perf_counter()
            y = getattr(ex, op)(a, b)
            ref = reference(op, dtype, a, b)
            if op in ("minimum", "maximum"):
                zero_pair = (a == 0) & (b == 0)
                bad = mismatches(y[~zero_pair], ref[~zero_pair])
                neg = torch.where(a.signbit(), a, b) if op == "minimum" else torch.where(a.signbit(), b, a)
                bad += mismatches(y[zero_pair], neg[zero_pair])  # IEEE 754-2019: -0 < +0
                name = "torch (+-0: IEEE 754-2019)"
            else:
                bad = mismatches(y, ref)
                name = "ml_dtypes" if dtype == torch.bfloat16 else "numpy"
            record(op, dtype, n, bad, time.perf_counter() - t0, name)
        # unary: sqrt and conversions, exhaustive for 16-bit formats
        if width == 16:
            x = to_t(np.arange(1 << 16, dtype=np.uint64), dtype)
        else:
            x = to_t(testfloat_bits(n, 32, rng), dtype)
        t0 = time.perf_counter()
        record("sqrt", dtype, x.numel(), mismatches(ex.sqrt(x), reference("sqrt", dtype, x)), time.perf_counter() - t0,
               "ml_dtypes" if dtype == torch.bfloat16 else "numpy")
        for fn, target in ((ex.to_float32, torch.float32), (ex.to_float16, torch.float16), (ex.to_bfloat16, torch.bfloat16)):
            if target == dtype:
                continue
            t0 = time.perf_counter()
            ref = x.float().to(target) if dtype != torch.float32 else x.to(target)  # widening to float32 is exact
            record(fn.__name__, dtype, x.numel(), mismatches(fn(x), ref), time.perf_counter() - t0, "torch")
        t0 = time.perf_counter()
        with np.errstate(invalid="ignore"):
            ref_int = torch.from_numpy(x.float().numpy().astype(np.int32))
        record("to_int", dtype, x.numel(), mismatches(ex.to_int(x), ref_int), time.perf_counter() - t0, "numpy (x86 truncation)")
        # fused multiply-add
        m = args.n_fma if dtype == torch.float32 else min(args.n_fma, 200_000)
        fa, fb, fc = (to_t(testfloat_bits(m, width, rng), dtype) for _ in range(3))
        t0 = time.perf_counter()
        y = ex.fma(fa, fb, fc)
        ref = fma_reference(dtype, fa, fb, fc)
        record("fma", dtype, m, mismatches(y, ref), time.perf_counter() - t0,
               "MPFR (gmpy2)" if dtype == torch.bfloat16 else "SoftFloat")
    ints = torch.from_numpy(rng.integers(-2**31, 2**31, args.n).astype(np.int32))
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        t0 = time.perf_counter()
        with np.errstate(over="ignore"):
            if dtype == torch.bfloat16:
                # ml_dtypes and torch round int -> float64 -> bfloat16 through float32 (double
                # rounding: e.g. 610271223 -> 612368384 instead of 608174080); MPFR does not
                ref = bfloat16_of_ints(ints.numpy())
            else:
                ref = torch.from_numpy(ints.numpy().astype({torch.float32: np.float32, torch.float16: np.float16}[dtype]))
        record("from_int", dtype, args.n, mismatches(ex.from_int(ints, dtype), ref), time.perf_counter() - t0,
               "MPFR (gmpy2)" if dtype == torch.bfloat16 else "numpy")
    print_table(["op", "dtype", "vectors", "mismatches", "seconds", "reference"], rows)
    total = sum(r["mismatches"] for r in results)
    print(f"\ntotal mismatches: {total}")
    path = write_results("exact_verify", {"results": results, "total_mismatches": total})
    print(f"written: {path}")
    if total:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

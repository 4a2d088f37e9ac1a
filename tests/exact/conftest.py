import numpy as np
import pytest
import torch

F32_SPECIAL_BITS = [
    0x00000000, 0x80000000,  # +-0
    0x7F800000, 0xFF800000,  # +-inf
    0x7FC00000, 0xFFC00001, 0x7F800001,  # quiet NaNs, signaling NaN
    0x00000001, 0x80000001, 0x00000002, 0x007FFFFF, 0x807FFFFF, 0x00400000,  # subnormals
    0x00800000, 0x80800000, 0x00800001, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7FFFFE,  # normal extremes
    0x3F800000, 0xBF800000, 0x3F800001, 0x3F7FFFFF, 0x40000000, 0x3FC00000,  # around 1
    0x33800000, 0x33C00000, 0x34000000, 0x33000000, 0x33400000,  # 2^-24, 1.5*2^-24, 2^-23, ...
    0x4B000000, 0x4B000001, 0x4B7FFFFF, 0x5F000000, 0xCF000000, 0x4F000000,  # integer boundaries
    0x3EAAAAAB, 0x3DCCCCCD, 0x40490FDB, 0xC0490FDB,  # 1/3, 0.1, pi, -pi
    0x0C000000, 0x73000000, 0x1F800000, 0x5F800000,  # products that underflow / overflow
]


def f32_from_bits(bits):
    return torch.from_numpy(np.array(bits, dtype=np.uint32).view(np.float32).copy())


@pytest.fixture(scope="session")
def f32_specials():
    return f32_from_bits(F32_SPECIAL_BITS)


def random_bits(n, width, seed):
    """Random bit patterns weighted towards exponent boundaries, subnormals and specials."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 1 << width, n, dtype=np.uint64)
    if width == 32:
        e_shift, e_max, man = 23, 0xFF, (1 << 23) - 1
    else:  # float16
        e_shift, e_max, man = 10, 0x1F, (1 << 10) - 1
    k = n // 4
    sign = x[:k] & np.uint64(1 << (width - 1))
    exps = rng.choice([0, 1, 2, e_max - 1, e_max], k).astype(np.uint64)
    x[:k] = sign | (exps << np.uint64(e_shift)) | (x[:k] & np.uint64(man))
    return x


def same_bits_or_both_nan(y: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Elementwise: identical encodings, or both NaN (NaN payloads are not compared)."""
    int_dtype = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}[y.dtype]
    return (y.view(int_dtype) == ref.view(int_dtype)) | (torch.isnan(y) & torch.isnan(ref))

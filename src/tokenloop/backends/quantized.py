"""Weight formats for the fast path: how a linear layer's matrix is stored and multiplied.

Decoding one token reads every weight once, so on a CPU the time of a step is the bytes of the
weights divided by the memory bandwidth. Fewer bytes per weight is the whole game:

    float32   4 bytes a weight   F.linear
    bfloat16  2 bytes            F.linear on bfloat16
    int8      1 byte + a scale per output row (gpt-fast's weight-only int8):
              w ≈ scale[row] * q,  q in -127..127,  PyTorch's `_weight_int8pack_mm` kernel
    int4      ½ byte + a scale and a zero per group of 32 weights of a row:
              w ≈ scale * (q - 8) + zero,  q in 0..15,  PyTorch's `_weight_int4pack_mm_for_cpu`.
              The embedded GGUF stores its layers as Q4_1 (blocks of 32 weights, each with a
              scale and a minimum), so int4 in groups of 32 holds those same numbers again.

The quantized kernels are fast only with bfloat16 activations, so those formats take bfloat16
inputs (the model keeps its running sum in float32 and casts right before each matmul).
Dense and int8 matrices can also hand back whole rows (`rows`): the output head and the embedding
are the same matrix in SmolLM2, so one stored copy serves both (the head is never int4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import DTYPES  # declared in backends/__init__, where the CLI reads them without torch
from . import WEIGHTS_VERSION as VERSION  # noqa: F401 (fast.py keys its cached int8/int4 weights by it)

INT4_GROUP = 32  # weights that share one scale and zero (the size of a GGUF Q4_1 block)


@dataclass
class Dense:
    """A plain matrix, (out, in), in float32 or bfloat16."""

    weight: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids].float()

    @property
    def nbytes(self) -> int:
        return self.weight.numel() * self.weight.element_size()


@dataclass
class Int8:
    """Symmetric int8 per output row: w[r] ≈ scales[r] * q[r]."""

    q: torch.Tensor  # (out, in) int8
    scales: torch.Tensor  # (out,) bfloat16

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int8pack_mm(x, self.q, self.scales)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        return self.q[ids].float() * self.scales[ids, None].float()

    @property
    def nbytes(self) -> int:
        return self.q.numel() + self.scales.numel() * self.scales.element_size()


@dataclass
class Int4:
    """Asymmetric int4 in groups of 32 along each row, packed two to a byte."""

    packed: torch.Tensor  # what `_convert_weight_to_int4pack_for_cpu` made of the (out, in) codes
    scales_zeros: torch.Tensor  # (in / 32, out, 2) bfloat16: each group's scale and zero
    out_features: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, self.packed, INT4_GROUP, self.scales_zeros)

    @property
    def nbytes(self) -> int:
        return self.packed.numel() + self.scales_zeros.numel() * self.scales_zeros.element_size()


Linear = Dense | Int8 | Int4


# --- from a float matrix to a stored form (plain tensors, safe to write to disk) ---------------
def int8_tensors(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    w = weight.float()
    low, high = torch.aminmax(w, dim=1)
    scales = (torch.maximum(-low, high) / 127).clamp(min=1e-12)  # the largest weight of a row maps to ±127
    scales = scales.to(torch.bfloat16)  # the kernel's scales are bfloat16: round them first, then fit q to them
    q = (w / scales.float()[:, None]).round_().clamp_(-127, 127).to(torch.int8)
    return {"q": q.contiguous(), "scales": scales}


def int4_tensors(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    out_features, in_features = weight.shape
    if in_features % INT4_GROUP:
        raise ValueError(f"int4 needs rows in whole groups of {INT4_GROUP}, not {in_features}")
    groups = weight.float().reshape(-1, INT4_GROUP)
    low, high = torch.aminmax(groups, dim=1, keepdim=True)
    scales = ((high - low) / 15).clamp(min=1e-12)  # 16 levels from the group's minimum to its maximum
    q = (groups - low).div_(scales).round_().clamp_(0, 15).to(torch.uint8).reshape(out_features, in_features)
    zeros = low + 8 * scales  # the kernel computes scale * (q - 8) + zero
    scales_zeros = torch.stack([scales.reshape(out_features, -1), zeros.reshape(out_features, -1)], dim=2)
    codes = q[:, 0::2] | (q[:, 1::2] << 4)  # two codes a byte, in plain order
    return {"codes": codes.contiguous(), "scales_zeros": scales_zeros.transpose(0, 1).contiguous().to(torch.bfloat16)}


def tensors(weight: torch.Tensor, dtype: str) -> dict[str, torch.Tensor]:
    """A (out, in) float matrix stored in the format `dtype` names."""
    if dtype == "float32":
        return {"weight": weight.float().contiguous()}
    if dtype == "bfloat16":
        return {"weight": weight.to(torch.bfloat16).contiguous()}
    if dtype == "int8":
        return int8_tensors(weight)
    if dtype == "int4":
        return int4_tensors(weight)
    raise ValueError(f"unknown weight format {dtype!r}; one of {', '.join(DTYPES)}")


# --- from a stored form to a matrix ready to multiply ---------------------------------------
def linear(stored: dict[str, torch.Tensor], dtype: str) -> Linear:
    if dtype in ("float32", "bfloat16"):
        return Dense(stored["weight"])
    if dtype == "int8":
        return Int8(stored["q"], stored["scales"])
    codes = stored["codes"]
    q = torch.stack([codes & 15, codes >> 4], dim=2).reshape(codes.shape[0], -1).to(torch.int32)
    # The kernel's own layout depends on the CPU's vector width, so it is made here, not stored.
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
    return Int4(packed, stored["scales_zeros"], codes.shape[0])


def pack(weight: torch.Tensor, dtype: str) -> Linear:
    """A (out, in) float matrix in the format `dtype` names, ready to multiply."""
    return linear(tensors(weight, dtype), dtype)


def activation_dtype(dtype: str) -> torch.dtype:
    """What the matmuls of a format take as input."""
    return torch.float32 if dtype == "float32" else torch.bfloat16

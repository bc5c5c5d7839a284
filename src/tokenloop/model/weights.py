"""A model folder's tensors, read from its safetensors files (one reader for every forward written out here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError

if TYPE_CHECKING:
    import torch


class Weights(dict):
    """Tensors by name, as the checkpoint names them. Asking for one it lacks is a one-line ModelError."""

    def __init__(self, folder: Path, who: str):
        super().__init__()
        self.folder, self.who = folder, who

    def __missing__(self, name: str) -> torch.Tensor:
        raise ModelError(f"{self.folder}: the weights have no {name}; {self.who} expects a Llama checkpoint")


def read_safetensors(folder: Path, who: str) -> Weights:
    """Every tensor of every *.safetensors file in `folder`, for `who` (named in the errors)."""
    from safetensors.torch import load_file

    weights = Weights(folder, who)
    for file in sorted(folder.glob("*.safetensors")):
        weights.update(load_file(file))
    if not weights:
        raise ModelError(f"{folder}: {who} reads .safetensors weights and found none")
    return weights

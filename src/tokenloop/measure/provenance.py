"""Where a measurement came from, for the line under every chart: engine, version, model, hardware.

`cpu` is True when the numbers were made on a CPU (the embedded model here), None when the backend
does not say (an OpenAI-compatible server reports no device), False on a GPU. The page prints a
reveal's honesty sentence unless `cpu` is False (docs/course.md §4).
"""

from __future__ import annotations


def embedded(backend) -> dict:
    import torch

    device = next(backend.lm.parameters()).device.type if hasattr(backend, "lm") else "cpu"
    return {
        "engine": f"tokenloop embedded ({backend.engine})",
        "version": f"torch {torch.__version__}",
        "model": backend.model,
        "hardware": f"{device} ({torch.get_num_threads()} threads)" if device == "cpu" else device,
        "cpu": device == "cpu",
        "where": "in this process",
    }


def server(backend) -> dict:
    caps = backend.caps
    return {
        "engine": caps.kind,
        "version": caps.version or "version not reported",
        "model": backend.model,
        "hardware": "not reported by the server",
        "cpu": None,
        "where": backend.root,
    }


def of(backend) -> dict:
    return embedded(backend) if backend.in_process else server(backend)

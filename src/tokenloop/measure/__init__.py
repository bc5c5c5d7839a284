"""The tools every measurement shares.

- `fits`: time against length as a line (or a line plus n² where the data justify it), pure.
- `filler`: the filler text and a prompt of exactly n of its tokens.
- `streamed`: one streamed request's raw timestamps (the `--save`/`--load` records).
- `bench_stats`: vllm bench serve's statistics: percentiles, TPOT, goodput.
- `load`: a bounded plan of concurrent streamed requests, and its runner.
- `provenance`: engine, version, model, hardware: the line under every chart.

May import: the foundations, `model`, `backends`. Not the loop, and no measurement of its own
(those live in `cost`, `latency` and `training`).
"""

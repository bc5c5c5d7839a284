"""tokenloop latency against GuideLLM, on one vLLM server: same prompt and output lengths, same
number of requests, same concurrency.

GuideLLM (PyPI `guidellm`) runs in its own venv: its synthetic data (prompts of a given token count
by the model's own tokenizer, outputs forced to a given length), one request at a time
(`synchronous`) or C at a time (`concurrent`). tokenloop's concurrent runner
(`concurrency.plans` + `concurrency.measure`) then sends the same number of requests of the same
lengths at the same concurrency. Each tool runs `--rounds` times per level, taking turns to go
first, and the median round counts (the load on a shared machine drifts).

The rows compare like with like: GuideLLM's medians as it reports them, beside tokenloop's medians
of its own records computed under GuideLLM's definitions (`latency/definitions.py`: TTFT to the
first chunk with text; TPOT as the whole request over its output tokens, TTFT included; ITL as the
decode time over the tokens after the first), and, for reference, tokenloop's vLLM-bench TPOT.

    .venv/bin/python bench/guidellm_compare.py [--url http://127.0.0.1:8000] [--levels 1,4] \
        [--requests 8] [--input-len 16] [--output-len 32] [--rounds 2] [--guidellm .venv-guidellm]

GuideLLM's venv, when absent: `python3 -m venv .venv-guidellm && .venv-guidellm/bin/pip install
guidellm==0.8.1` (the version this script reads). Without --url it starts vLLM's CPU build as
`vllm_bench_compare.py` does, and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from vllm_bench_compare import ROOT, prompt_of, started_vllm, tokenloop_run  # a sibling script

from tokenloop.backends.server import Client
from tokenloop.latency import concurrency, definitions
from tokenloop.latency.budget import model_name

ROWS = (  # (what, GuideLLM's metric, tokenloop's summary key under GuideLLM's definitions)
    ("TTFT median (ms)", "time_to_first_token_ms", ("ttft", "median_ttft_ms")),
    ("ITL median (ms)", "inter_token_latency_ms", ("itl", "median_itl_ms")),
    ("TPOT median (ms)", "time_per_output_token_ms", ("tpot", "median_tpot_ms")),
)


def guidellm(venv: Path, root: str, tokenizer: str, level: int, requests: int, input_len: int, output_len: int):
    profile = "kind=synchronous" if level == 1 else f"kind=concurrent,streams={level}"
    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / "run.json"
        command = [
            str(venv / "bin" / "guidellm"), "run",
            "--backend", f"kind=openai_http,target={root},request_format=/v1/completions",
            "--profile", profile,
            "--constraint", f"kind=max_requests,count={requests}",
            "--data", f"kind=synthetic_text,prompt_tokens={input_len},output_tokens={output_len}",
            "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
            "--output", f"kind=json,path={path}",
            "--disable-console",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if done.returncode or not path.exists():
            sys.exit(f"guidellm failed:\n{(done.stdout + done.stderr)[-3000:]}")
        metrics = json.loads(path.read_text())["benchmarks"][0]["metrics"]
    return {name: metrics[name]["successful"]["median"] for _, name, _ in ROWS} | {
        "tokens": metrics["output_token_count"]["successful"]["mean"]
    }


def tokenloop_level(root: str, model: str, prompt: str, level: int, requests: int, output_len: int) -> dict:
    out = tokenloop_run(root, model, prompt, level, requests, output_len)
    both = definitions.side_by_side(out["records"])
    row = {key: both["guidellm"][metric][key] for _, _, (metric, key) in ROWS}
    return row | {
        "vllm_tpot": both["vllm"]["tpot"]["median_tpot_ms"],
        "tokens": statistics.mean(s.tokens for s in out["records"]),
    }


def compare(venv: Path, root: str, levels, requests: int, input_len: int, output_len: int, rounds: int) -> None:
    from tokenloop.model.files import resolve

    client = Client(root, timeout=120)
    model = model_name(client)
    prompt = prompt_of(client, model, input_len - 1)  # tokenloop's prompts begin with a number: "1.3. "
    client.close()
    print(
        f"server {root}, model {model}; {requests} requests per level, prompt ~{input_len} tokens, output {output_len}"
    )
    print(f"each level {rounds} rounds, the two tools taking turns to go first (the machine's load drifts)")
    rows = []
    for level in levels:
        runs: dict[str, list[dict]] = {"guidellm": [], "tokenloop": []}
        for r in range(rounds):
            for tool in ("tokenloop", "guidellm") if r % 2 == 0 else ("guidellm", "tokenloop"):
                if tool == "guidellm":
                    got = guidellm(venv, root, str(resolve()), level, requests, input_len, output_len)
                else:
                    got = tokenloop_level(root, model, prompt, level, requests, output_len)
                runs[tool].append(got)
                print(f"  {tool} at {level}: " + ", ".join(f"{k} {v:.1f}" for k, v in got.items()), flush=True)
        rows.append((level, runs))
    print()
    print(f"{'at once':>7}  {'metric (GuideLLM defs)':<22} {'GuideLLM':>9} {'tokenloop':>10} {'ratio':>6}")
    for level, runs in rows:
        for what, theirs_key, (_, mine_key) in ROWS:
            theirs = statistics.median(run[theirs_key] for run in runs["guidellm"])
            mine = statistics.median(run[mine_key] for run in runs["tokenloop"])
            print(f"{level:>7}  {what:<22} {theirs:>9.1f} {mine:>10.1f} {mine / theirs:>6.3f}")
        vllm_tpot = statistics.median(run["vllm_tpot"] for run in runs["tokenloop"])
        print(f"{level:>7}  {'(tokenloop TPOT, vLLM bench def)':<33} {vllm_tpot:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running vLLM (default: start one on 127.0.0.1)")
    parser.add_argument("--levels", default="1,4", help="concurrency levels (default 1,4)")
    parser.add_argument("--requests", type=int, default=8, help="requests per level (default 8)")
    parser.add_argument("--input-len", type=int, default=16, help="prompt tokens (default 16)")
    parser.add_argument("--output-len", type=int, default=32, help="output tokens (default 32)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tool per level (default 2)")
    parser.add_argument("--guidellm", type=Path, default=ROOT / ".venv-guidellm", help="GuideLLM's venv")
    args = parser.parse_args()
    if not (args.guidellm / "bin" / "guidellm").exists():
        sys.exit(f"no GuideLLM in {args.guidellm}: python3 -m venv {args.guidellm} && "
                 f"{args.guidellm}/bin/pip install guidellm==0.8.1")  # fmt: skip
    levels = concurrency.parse_levels(args.levels)
    shape = (levels, args.requests, args.input_len, args.output_len, args.rounds)
    if args.url:
        compare(args.guidellm, args.url.removesuffix("/v1").rstrip("/"), *shape)
    else:
        with started_vllm() as root:
            compare(args.guidellm, root, *shape)


if __name__ == "__main__":
    main()

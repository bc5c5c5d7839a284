"""The fast path on ONNX Runtime (`--engine onnxruntime`): the real embedded model as an ONNX graph,
built once by onnxruntime-genai's builder. float32 must give the float32 model's logits; int4 must
hold the GGUF's own blocks and stay within the quality guard; the KV cache must change nothing;
and a greedy run must never import torch (the demo's quick first distribution rests on it).

Modules (src/tokenloop/): backends/ort.py, backends/ort_int4.py, backends/engines.py, sampling.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from support.cli_runner import one_line_error

from tokenloop.backends import ORT_DTYPES, agreement, ort, ort_int4
from tokenloop.backends.engines import choose
from tokenloop.backends.fast import FastBackend
from tokenloop.backends.ort import OrtBackend
from tokenloop.errors import ModelError, UsageError
from tokenloop.loop import generate, prompt_ids
from tokenloop.records import Done, Step
from tokenloop.sampling import Sampler

PROMPTS = ("Kubernetes pods are scheduled by the", "def add(a, b):\n    return")


@pytest.fixture(scope="module")
def graphs(smol):
    """The real model's graph in each format (built on first use into the tests' cache), and the
    torch float32 forward they are measured against."""
    return {"torch float32": FastBackend(dtype="float32"), **{d: OrtBackend(dtype=d) for d in ORT_DTYPES}}


def greedy(backend, prompt, n, cache=True):
    return [
        r.chosen.id
        for r in generate(backend, prompt_ids(backend, prompt), max_new=n, cache=cache)
        if isinstance(r, Step)
    ]


@pytest.mark.model
def test_float32_graph_gives_the_float32_models_logits(graphs):
    reference, graph = graphs["torch float32"], graphs["float32"]
    for prompt in PROMPTS:
        ids = prompt_ids(reference, prompt)
        expected, got = reference.all_logits(ids), graph.all_logits(ids)
        assert got.shape == expected.shape
        # float32 sums in another order (ORT's kernels, torch's, each split over threads as the
        # load allows): up to 1.2e-4 of the largest logit seen beside the compiler (2.6e-3 of 21)
        assert (got - expected).abs().max() < 3e-4 * expected.abs().max(), prompt
        assert torch.equal(got.argmax(-1), expected.argmax(-1)), prompt
        assert greedy(graph, prompt, 12) == greedy(reference, prompt, 12), prompt
    assert graph.engine == "onnxruntime float32" and graph.weight_bytes > 4 * 130e6  # 4 bytes a weight


@pytest.mark.model
@pytest.mark.parametrize("dtype", ORT_DTYPES)
def test_cache_reuses_the_shared_prefix(graphs, dtype):
    """Cached logits equal a fresh pass over the whole sequence, also after the sequence changes."""
    graph = graphs[dtype]
    ids = prompt_ids(graph, PROMPTS[0])
    cache = graph.new_cache()
    assert graph.forward(ids, cache).tokens_in == len(ids)
    step = graph.forward(ids + [5], cache)  # one more token: only it goes through the graph
    assert step.tokens_in == 1
    branch = graph.forward(ids[:3] + [7, 8], cache)  # another continuation: the shared 3 are kept
    assert branch.tokens_in == 2
    again = graph.forward(ids[:3] + [7, 8, 9], cache)
    assert again.tokens_in == 1
    # int4 quantizes each pass's activations to int8: one row and many rows round a little apart
    share = 2e-3 if dtype == "float32" else 0.05
    for scores, sequence in ((step, ids + [5]), (branch, ids[:3] + [7, 8]), (again, ids[:3] + [7, 8, 9])):
        fresh = graph.forward(sequence).values
        assert isinstance(scores.values, np.ndarray) and scores.values.shape == (graph.vocab_size,)
        assert np.abs(scores.values - fresh).max() < share * float(np.abs(fresh).max())
    for prompt in PROMPTS:
        cached, uncached = greedy(graph, prompt, 8), greedy(graph, prompt, 8, cache=False)
        if dtype == "float32":
            assert cached == uncached, prompt
            continue
        # int4: the texts may part only where two tokens were tied within that rounding
        part = next((i for i, (a, b) in enumerate(zip(cached, uncached)) if a != b), None)
        if part is not None:
            fresh = graph.forward(prompt_ids(graph, prompt) + cached[:part]).values
            gap = abs(float(fresh[cached[part]] - fresh[uncached[part]]))
            assert gap < share * float(np.abs(fresh).max()), (prompt, part, gap)


@pytest.mark.model
def test_int4_graph_is_within_the_quality_guard_and_smaller(graphs):
    result = agreement.measure(graphs["torch float32"], graphs["int4"])
    assert result.engine == "onnxruntime int4" and result.positions > 300
    assert result.top1 >= agreement.TOP1_TARGET and result.kl < agreement.KL_TARGET, result.line()
    assert graphs["int4"].weight_bytes < graphs["float32"].weight_bytes / 4


@pytest.mark.model
def test_int4_blocks_hold_the_ggufs_weights_exactly(graphs):
    """The embedded model's weights came from Q4_1 blocks: codes, scales and offsets give them back."""
    from safetensors.numpy import load_file

    weights = load_file(str(next(graphs["int4"].folder.glob("*.safetensors"))))
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.29.mlp.down_proj.weight"):
        w = weights[name]
        codes, scale, offset = ort_int4.blocks(w)
        back = (scale[..., None] * (codes.astype(np.float32) - 8) + offset[..., None]).reshape(w.shape)
        assert codes.max() <= 15 and np.abs(back - w).max() <= 1e-6 * np.abs(w).max(), name


def test_int4_blocks_of_other_weights_round_to_half_a_step():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 64)).astype(np.float32)
    w[3, :32] = 0.25  # a block of one value: all of it in the offset
    codes, scale, offset = ort_int4.blocks(w)
    back = (scale[..., None] * (codes.astype(np.float32) - 8) + offset[..., None]).reshape(w.shape)
    step = np.repeat(scale, ort_int4.BLOCK, axis=1)
    assert np.all(np.abs(back - w) <= step / 2 + 1e-6)
    assert np.all(back[3, :32] == 0.25)
    packed = ort_int4.pack(codes)
    assert packed.shape == (8, 2, 16) and np.all(packed[..., 0] & 15 == codes[..., 0])
    assert np.all(packed[..., 0] >> 4 == codes[..., 1])


@pytest.mark.model
def test_a_greedy_run_never_imports_torch(graphs):
    """The demo's path: open the float32 graph (its agreement read from the cache), run, print."""
    agreement.checked(graphs["float32"])  # measured once (that needs torch); then read back
    program = (
        "import sys; from tokenloop.cli import main; "
        "code = main(['run', 'Kubernetes pods are scheduled by the', '--max-new', '3', "
        "'--engine', 'onnxruntime', '--dtype', 'float32', '--json']); "
        "print('TORCH' if 'torch' in sys.modules else 'NO TORCH'); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "NO TORCH"
    records = [json.loads(line) for line in lines[:-1]]
    assert [r["chosen"]["id"] for r in records if "chosen" in r] == greedy(graphs["float32"], PROMPTS[0], 3)


@pytest.mark.model
def test_sampled_runs_on_numpy_scores_are_seeded(graphs):
    graph = graphs["int4"]
    ids = prompt_ids(graph, PROMPTS[0])

    def run(seed):
        records = list(generate(graph, ids, max_new=6, sampler=Sampler(1.0, top_p=0.9), seed=seed))
        assert isinstance(records[-1], Done)
        return [r for r in records if isinstance(r, Step)]

    first, again = run(7), run(7)
    assert [s.chosen.id for s in first] == [s.chosen.id for s in again]
    assert all(s.sampler == "T=1 top_p=0.9" and s.processed for s in first)
    # top_p renormalises what it keeps: a kept token is at least as likely as in the raw distribution
    for s in first:
        raw = {c.id: c.prob for c in s.top}
        assert all(c.prob >= raw[c.id] - 1e-6 for c in s.processed if c.id in raw)


@pytest.mark.model
def test_a_failed_build_is_one_line_and_keeps_nothing(graphs, monkeypatch, tmp_path):
    monkeypatch.setenv("TOKENLOOP_CACHE", str(tmp_path))
    monkeypatch.setitem(ort.BUILD, "float32", ["-p", "fp99"])  # a precision the builder doesn't know
    with pytest.raises(ModelError, match="building the ONNX graph") as refused:
        ort.build(graphs["float32"].folder, "float32")
    assert "\n" not in str(refused.value)
    assert not any((tmp_path / "onnx").glob(f"*/{ort.DONE}"))


def test_choose_the_onnxruntime_engine():
    assert choose("onnxruntime", None) == ("onnxruntime", "int4")
    assert choose("onnxruntime", "float32") == ("onnxruntime", "float32")
    for dtype in ("int8", "bfloat16"):
        with pytest.raises(UsageError, match="onnxruntime"):
            choose("onnxruntime", dtype)


def test_cli_refuses_a_format_the_graph_has_not(capsys):
    err = one_line_error(capsys, ["next", "The model", "--engine", "onnxruntime", "--dtype", "int8"], 2)
    assert "float32 or int4" in err


@pytest.mark.model
def test_the_lesson_app_scores_steps_branches_and_draws_on_the_graph(graphs):
    from fastapi.testclient import TestClient

    from tokenloop.loop import next_token
    from tokenloop.web import create_app

    graph = graphs["int4"]
    client = TestClient(create_app(graph, demo={"steps": 1, "max_len": 16, "points": 2, "repeats": 1}))
    tokens = client.post("/api/score", json={"text": PROMPTS[0]}).json()["tokens"]
    ids = prompt_ids(graph, PROMPTS[0])
    assert [t["id"] for t in tokens] == ids
    probs = {c.id: c.prob for c in next_token(graph, ids[:4], 300).top}  # position 4 of the one pass
    assert tokens[4]["prob"] == pytest.approx(probs[ids[4]], rel=0.05)  # int8 rounding: one row vs many
    state = client.post("/api/lab/start", json={"prompt": PROMPTS[0]}).json()
    first = client.post("/api/lab/step", json={"show": 4}).json()
    assert first["chosen"]["id"] == greedy(graph, PROMPTS[0], 1)[0] and first["tokens_in"] == len(ids)
    second = client.post("/api/lab/step", json={"show": 4}).json()
    assert second["tokens_in"] == 1
    runner_up = first["top"][1]["id"]
    branched = client.post("/api/lab/branch", json={"step": 1, "token_id": runner_up}).json()
    assert branched["steps"][0]["chosen"]["id"] == runner_up and len(state["prompt_tokens"]) == len(ids)
    after = client.post("/api/lab/step", json={}).json()
    assert after["tokens_in"] == 1 and after["chosen"]["id"] == next_token(graph, ids + [runner_up], 1).top[0].id
    seeded = {"temperature": 1.0, "seed": 5}
    draws = []
    for _ in range(2):
        client.post("/api/lab/start", json={"prompt": PROMPTS[0]})
        draws.append([client.post("/api/lab/step", json={"sampler": seeded}).json()["chosen"]["id"] for _ in range(3)])
    assert draws[0] == draws[1]
    result = client.post("/api/staircase", json={"max_len": 16, "points": 2, "repeats": 1}).json()["result"]
    assert result["path"] == "onnxruntime int4"
    assert all(p["uncached_tokens_in"] == p["length"] and p["cached_tokens_in"] == 1 for p in result["series"])
    same = client.post("/api/live/sampling_same_forward", json={}).json()  # Lesson 6, step 1
    assert [r["max_abs_diff"] for r in same["runs"]] == [0.0, 0.0]  # the temperature never reaches the graph
    assert same["runs"][0]["top"][0]["id"] == first["chosen"]["id"]

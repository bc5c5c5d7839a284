"""The fast engines of the embedded model: the compact torch forward (float32, bfloat16, int8,
int4) and llama.cpp. Each must give the lesson the same records as the default, agree with
itself with and without a KV cache, and stay close enough to float32 (the quality guard).

The llama.cpp tests need llama-cpp-python: skipped where it is not installed, failed instead
when TOKENLOOP_REQUIRE_SERVERS=1 (`make test`).

Modules (src/tokenloop/): backends/fast.py, backends/quantized.py, backends/engines.py,
backends/agreement.py, backends/llamacpp.py."""

from __future__ import annotations

import json

import pytest
import torch
from support.cli_runner import cli
from support.real_servers import need_llamacpp

from tokenloop.backends import agreement, llamacpp
from tokenloop.backends.engines import choose
from tokenloop.backends.fast import FastBackend
from tokenloop.cli import main
from tokenloop.errors import ModelError, UsageError
from tokenloop.loop import generate, prompt_ids
from tokenloop.records import Step

pytestmark = pytest.mark.llamacpp  # runs after the vLLM servers start (tests/support/servers.py)

TORCH_DTYPES = ("bfloat16", "int8", "int4")
PROMPTS = ("Kubernetes pods are scheduled by the", "def add(a, b):\n    return")


@pytest.fixture(autouse=True)
def packed_in_tmp(tmp_path_factory, monkeypatch):
    """The tiny models' int8/int4 weights are cached in a temporary folder, not the user's cache."""
    from tokenloop.backends import fast
    from tokenloop.model import files as model_files

    original, tmp = fast.packed_file, tmp_path_factory.getbasetemp() / "packed"

    def packed_file(folder, dtype):
        path = original(folder, dtype)
        return path if model_files.cache_root() in folder.resolve().parents else tmp / path.name

    monkeypatch.setattr(fast, "packed_file", packed_file)


@pytest.fixture(scope="module")
def engines(smol):
    """Every engine running the real embedded model, by `backend.engine`; the default first."""
    out = {"transformers float32": smol, "torch float32": FastBackend(dtype="float32")}
    out.update({f"torch {d}": FastBackend(dtype=d) for d in TORCH_DTYPES})
    if llamacpp.available():
        out["llama.cpp"] = llamacpp.LlamaCppBackend()
    return out


def steps(backend, prompt, n, cache=True):
    return [r for r in generate(backend, prompt_ids(backend, prompt), max_new=n, cache=cache) if isinstance(r, Step)]


def shape(value):
    """The JSON shape of a record: keys and value types, not the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


# --- the compact forward on the tiny model: exact against transformers ---------------------------
def test_float32_forward_equals_transformers(tiny, tiny_model_dir):
    fast = FastBackend(str(tiny_model_dir), dtype="float32")
    ids = prompt_ids(tiny, "The model predicts the next token")
    with torch.inference_mode():
        expected = tiny.lm(torch.tensor([ids]), use_cache=False).logits[0]
    assert torch.allclose(fast.all_logits(ids), expected, atol=1e-5)
    assert [s.chosen.id for s in steps(fast, "The model", 10)] == [s.chosen.id for s in steps(tiny, "The model", 10)]


@pytest.mark.parametrize("dtype", ["float32", *TORCH_DTYPES])
def test_cache_reuses_the_shared_prefix(tiny_model_dir, dtype):
    """Cached logits equal a fresh forward of the whole sequence, also after the sequence changes."""
    fast = FastBackend(str(tiny_model_dir), dtype=dtype)
    ids = prompt_ids(fast, "The scheduler places pods on nodes")
    cache = fast.new_cache()
    first = fast.forward(ids, cache)
    assert first.tokens_in == len(ids)
    step = fast.forward(ids + [5], cache)  # one more token: only it goes through the model
    assert step.tokens_in == 1
    branch = fast.forward(ids[:3] + [7, 8], cache)  # a different continuation: the shared 3 are kept
    assert branch.tokens_in == 2
    tolerance = 1e-4 if dtype == "float32" else 0.05 * float(first.values.abs().max())
    for scores, sequence in ((step, ids + [5]), (branch, ids[:3] + [7, 8])):
        assert (scores.values - fast.forward(sequence).values).abs().max() < tolerance


def test_cache_grows_past_its_first_allocation(tiny_model_dir):
    fast = FastBackend(str(tiny_model_dir), dtype="float32")
    cache = fast.new_cache()
    cache.k, cache.v = (
        [k[:, :, :4].clone() for k in cache.k],
        [v[:, :, :4].clone() for v in cache.v],
    )  # a tiny first allocation
    ids = prompt_ids(fast, "The model predicts the next token, appends it, and repeats")
    assert len(ids) > 8
    cached = [fast.forward(ids[:n], cache).values for n in range(2, len(ids) + 1)]
    assert cache.capacity >= len(ids)
    for n, logits in zip(range(2, len(ids) + 1), cached):
        assert torch.allclose(logits, fast.forward(ids[:n]).values, atol=1e-4)


@pytest.mark.parametrize("dtype", ["int8", "int4"])
def test_quantized_weights_are_cached_once(tiny_model_dir, dtype):
    from tokenloop.backends import fast

    file = fast.packed_file(tiny_model_dir, dtype)
    file.unlink(missing_ok=True)
    first = FastBackend(str(tiny_model_dir), dtype=dtype)  # quantizes, and keeps the result
    assert file.is_file()
    again = FastBackend(str(tiny_model_dir), dtype=dtype)  # reads it back
    ids = prompt_ids(first, "The scheduler places pods on nodes")
    assert torch.equal(first.all_logits(ids), again.all_logits(ids))
    assert first.weight_bytes == again.weight_bytes


# --- the real model on every path ----------------------------------------------------------------
@pytest.mark.model
def test_every_engine_yields_the_same_record_shapes(engines):
    default = [shape(s.to_json()) for s in steps(engines["transformers float32"], PROMPTS[0], 3)]
    for name, backend in engines.items():
        records = steps(backend, PROMPTS[0], 3)
        assert [shape(s.to_json()) for s in records] == default, name
        assert [s.tokens_in for s in records][1:] == [1, 1], name
        assert all(len(s.top) == 8 and abs(sum(c.prob for c in s.top) + s.other - 1) < 1e-4 for s in records), name


@pytest.mark.model
def test_torch_float32_equals_transformers(engines):
    ids = prompt_ids(engines["transformers float32"], PROMPTS[0])
    expected = engines["transformers float32"].forward(ids).values
    assert torch.allclose(engines["torch float32"].forward(ids).values, expected, atol=1e-4)
    for prompt in PROMPTS:
        assert [s.chosen.id for s in steps(engines["torch float32"], prompt, 8)] == [
            s.chosen.id for s in steps(engines["transformers float32"], prompt, 8)
        ]


@pytest.mark.model
@pytest.mark.parametrize("name", [f"torch {d}" for d in TORCH_DTYPES] + ["llama.cpp"])
def test_cached_and_uncached_agree(engines, name):
    if name == "llama.cpp":
        need_llamacpp()
    backend = engines[name]
    for prompt in PROMPTS:
        assert [s.chosen.id for s in steps(backend, prompt, 8)] == [
            s.chosen.id for s in steps(backend, prompt, 8, cache=False)
        ], prompt


@pytest.mark.model
@pytest.mark.parametrize("name", [f"torch {d}" for d in TORCH_DTYPES] + ["llama.cpp"])
def test_quality_guard(engines, name):
    """Each fast path stays within the targets against float32: top-1 >= 95%, mean KL < 0.01 nats."""
    if name == "llama.cpp":
        need_llamacpp()
    result = agreement.measure(engines["torch float32"], engines[name])
    assert result.positions > 300 and result.engine.startswith(name)
    assert result.top1 >= agreement.TOP1_TARGET, result.line()
    assert result.kl < agreement.KL_TARGET, result.line()
    assert result.ok


def test_agreement_measures_what_differs():
    logits = torch.randn(6, 50)
    assert agreement.compare(logits, logits)[:2] == (6, pytest.approx(0.0, abs=1e-6))
    moved = logits.clone()
    moved[0] = moved[0].flip(0)  # one position with another favourite
    same, kl, n = agreement.compare(logits, moved)
    assert n == 6 and same == 5 and kl > 0.01


@pytest.mark.model
def test_llamacpp_reads_the_gguf_with_the_same_tokens(engines):
    need_llamacpp()
    lcpp, default = engines["llama.cpp"], engines["transformers float32"]
    assert lcpp.encode(PROMPTS[0]) == default.encode(PROMPTS[0])
    assert lcpp.encode("What is a token?", chat=True) == default.encode("What is a token?", chat=True)
    assert lcpp.eos_ids == default.eos_ids and lcpp.vocab_size == default.vocab_size
    assert lcpp.weight_bytes < default.lm.get_input_embeddings().weight.nbytes  # far fewer bytes than float32


# --- choosing a path on the command line ---------------------------------------------------------
def test_choose_engine_and_dtype():
    assert choose(None, None) == ("transformers", None)
    assert choose(None, "float32") == ("transformers", "float32")
    assert choose(None, "int8") == ("torch", "int8")
    assert choose("torch", None) == ("torch", "int4")
    assert choose("llama.cpp", None) == ("llama.cpp", None)
    for engine, dtype in (("transformers", "int8"), ("llama.cpp", "int4"), ("llama.cpp", "float32")):
        with pytest.raises(UsageError):
            choose(engine, dtype)


def test_cli_fast_path_prints_its_agreement_once(capsys, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(agreement, "cache_file", lambda backend: tmp_path / f"{backend.engine}.json")
    argv = ["next", "The model", "--model", str(tiny_model_dir), "--dtype", "int8", "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["backend"] == "embedded"
    assert "measuring torch int8 against float32" in err and "top-1 agreement with float32" in err
    assert main(argv) == 0  # the second time it is read from the cache
    err = capsys.readouterr().err
    assert "measuring" not in err and "top-1 agreement with float32" in err
    assert (tmp_path / "torch int8.json").is_file()


@pytest.mark.parametrize(
    "options",
    [
        ["--engine", "transformers", "--dtype", "int8"],
        ["--engine", "llama.cpp", "--dtype", "int4"],
        ["--dtype", "int9"],
        ["--engine", "vllm"],
        ["--url", "http://127.0.0.1:9/v1", "--dtype", "int8"],
    ],
)
def test_cli_refuses_bad_paths(capsys, options):
    try:
        code = main(["next", "The model", *options])
    except SystemExit as e:  # argparse's own refusals (an unknown choice) exit from the parser
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tokenloop: ") and len(err.strip().splitlines()) == 1


def test_llamacpp_needs_a_gguf_file(capsys, tiny_model_dir):
    need_llamacpp()
    code = main(["next", "The model", "--engine", "llama.cpp", "--model", str(tiny_model_dir)])
    err = capsys.readouterr().err
    assert code == 2 and ".gguf" in err


def test_fast_path_refuses_other_architectures(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    from safetensors.torch import save_file

    save_file(
        {"wte.weight": torch.zeros(2, 2)}, tmp_path / "model.safetensors"
    )  # whole weights: the architecture is what's wrong
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match="plain Llama"):
        FastBackend(str(tmp_path), dtype="int8")


# --- the lesson's in-process demos on the fast path -----------------------------------------------
def test_score_staircase_and_training_run_on_the_fast_path(tiny_model_dir):
    from fastapi.testclient import TestClient

    from tokenloop.loop import next_token
    from tokenloop.web import create_app

    fast = FastBackend(str(tiny_model_dir), dtype="int8")
    client = TestClient(
        create_app(fast, demo={"steps": 1, "max_len": 16, "points": 2, "repeats": 1, "teacher_max_new": 4})
    )
    assert client.get("/api/info").json()["can_score"] is True
    text = "Kubernetes pods are scheduled by the"
    tokens = client.post("/api/score", json={"text": text}).json()["tokens"]
    ids = fast.encode(text)
    assert [t["id"] for t in tokens] == ids
    for i in range(1, len(ids)):  # position i of the one pass is step i of the loop, on int8 weights too
        probs = {c.id: c.prob for c in next_token(fast, ids[:i], 300).top}
        assert tokens[i]["prob"] == pytest.approx(probs[ids[i]], abs=1e-4)
    result = client.post("/api/staircase", json={"max_len": 16, "points": 2, "repeats": 1}).json()["result"]
    assert result["path"] == "torch int8"
    assert all(p["uncached_tokens_in"] == p["length"] and p["cached_tokens_in"] == 1 for p in result["series"])
    trained = client.post("/api/training", json={"steps": 1})  # on the same weights, in the transformers model
    assert trained.status_code == 200, trained.text
    result = trained.json()["result"]
    assert len(result["losses"]) == 1 and result["cost"]["ratio"] > 0


def test_cli_staircase_on_the_fast_path(capsys, tiny_model_dir):
    code, out, err = cli(
        capsys,
        "staircase",
        "--model",
        str(tiny_model_dir),
        "--engine",
        "torch",
        "--dtype",
        "float32",
        "--max-len",
        "24",
        "--points",
        "2",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["path"] == "torch float32" and data["estimate"]["dtype"] == "float32"
    assert [p["uncached_tokens_in"] for p in data["series"]] == [12, 24]
    code, out, err = cli(
        capsys, "staircase", "--model", str(tiny_model_dir), "--engine", "transformers", "--dtype", "int4"
    )
    assert code == 2 and "--engine torch" in err and len(err.strip().splitlines()) == 1

"""The staircase (tokenloop/cost/staircase.py): the model's numbers against hand computation, and the
measurement checked on work (tokens run per step, exact) rather than on wall time. Its fits are
tests/measure/test_fits.py's.

Modules (src/tokenloop/): commands/staircase.py, charts.py, measure/filler.py."""

import json

import pytest
from support.cli_runner import cli

from tokenloop import charts
from tokenloop.cost import staircase
from tokenloop.errors import UsageError
from tokenloop.model import estimates as model_numbers

# SmolLM2-135M's config.json, the fields the estimates read.
SMOL = {
    "num_hidden_layers": 30,
    "hidden_size": 576,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "intermediate_size": 1536,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
}

# By hand, for SmolLM2-135M:
#   attention  q 576×576 + k 576×192 + v 576×192 + o 576×576          =   884,736
#   MLP        3 × 576×1536                                             = 2,654,208
#   matrices a token passes through per layer                           = 3,538,944
#   + 2 norms of 576                                                    = 3,540,096 per layer
#   embeddings 49152×576 = 28,311,552; 30 layers = 106,202,880; final norm 576; output head tied
PARAMETERS = 28_311_552 + 106_202_880 + 576  # = 134,515,008
LINEAR = 2 * 30 * 3_538_944  # FLOPs per token through the layers' matrices = 212,336,640
PAIR = 4 * 30 * 9 * 64  # FLOPs per (query, key) pair over all layers = 69,120
LOGITS = 2 * 576 * 49152  # the last position's logits = 56,623,104


def test_smollm2_numbers_by_hand():
    s = model_numbers.Shape.from_config(SMOL)
    assert model_numbers.parameters(s) == PARAMETERS == 134_515_008
    assert model_numbers.kv_bytes_per_token(s, "float32") == 2 * 30 * 3 * 64 * 4 == 46_080
    assert model_numbers.kv_bytes_per_token(s, "torch.float16") == 23_040
    # one token, nothing cached
    assert model_numbers.flops_per_step(s, 1, 0) == LINEAR + PAIR + LOGITS == 269_028_864
    # the uncached step at n = 256 runs 256 tokens and 256·257/2 = 32,896 causal pairs
    assert model_numbers.flops_per_step(s, 256, 0) == 256 * LINEAR + 32_896 * PAIR + LOGITS == 56_688_574_464
    # the cached step at n = 256 runs one token against 255 cached: 256 pairs
    assert model_numbers.flops_per_step(s, 1, 255) == LINEAR + 256 * PAIR + LOGITS == 286_654_464
    # a 4-token generation: steps see 1, 2, 3, 4 tokens
    uncached = (1 + 2 + 3 + 4) * LINEAR + (1 + 3 + 6 + 10) * PAIR + 4 * LOGITS
    cached = 4 * LINEAR + (1 + 2 + 3 + 4) * PAIR + 4 * LOGITS
    assert model_numbers.generation_flops(s, 4, cached=False) == uncached
    assert model_numbers.generation_flops(s, 4, cached=True) == cached
    est = model_numbers.estimate(s, 256)
    assert est["kv_bytes_at_max"] == 256 * 46_080
    assert est["flops_per_step_cached"] == 286_654_464


def test_untied_head_and_missing_head_dim():
    s = model_numbers.Shape.from_config({**SMOL, "tie_word_embeddings": False, "head_dim": None})
    assert s.head_dim == 576 // 9
    assert model_numbers.parameters(s) == PARAMETERS + 49152 * 576


def test_work_grows_quadratically_without_cache_and_linearly_with_it():
    s = model_numbers.Shape.from_config(SMOL)
    u1, u2 = (model_numbers.generation_flops(s, n, cached=False) for n in (500, 1000))
    c1, c2 = (model_numbers.generation_flops(s, n, cached=True) for n in (500, 1000))
    assert 3.5 < u2 / u1 < 4.5  # twice the length, about four times the work
    assert 1.9 < c2 / c1 < 2.3  # twice the length, about twice the work


def test_parameters_match_the_loaded_model(tiny):
    s = model_numbers.Shape.from_config(tiny.config)
    assert model_numbers.parameters(s) == sum(p.numel() for p in tiny.lm.parameters())


@pytest.mark.model
def test_parameters_match_smollm2(smol):
    assert model_numbers.Shape.from_config(smol.config) == model_numbers.Shape.from_config(SMOL)
    assert model_numbers.parameters(model_numbers.Shape.from_config(smol.config)) == sum(
        p.numel() for p in smol.lm.parameters()
    )


# --- the plan ----------------------------------------------------------------------------------
def test_lengths_and_interleaved_schedule():
    plan = staircase.lengths(256, 6)
    assert plan == sorted(plan) and len(plan) == 6 and plan[-1] == 256
    order = staircase.schedule(plan, 3, seed=1)
    assert len(order) == 6 * 3 * 2
    for n in plan:
        assert sum(1 for m, _ in order if m == n) == 6  # 3 repeats × 2 kinds
    rounds = [order[i * 12 : (i + 1) * 12] for i in range(3)]
    assert all(sorted({n for n, _ in r}) == plan for r in rounds)  # every round visits every length
    assert any([n for n, _ in r][::2] != plan for r in rounds)  # not one long ascending run
    assert rounds[0][0][1] != rounds[1][0][1]  # the kind that goes first alternates


@pytest.mark.parametrize("max_len, points, message", [(32, 1, "--points"), (100, 3, "context"), (2, 3, "shorter")])
def test_bad_plans_are_refused(max_len, points, message):
    with pytest.raises(UsageError, match=message):
        staircase.check(max_len, points, 1, context_length=64)


# --- measuring (tiny model: fast; checks on work, not time) ------------------------------------
def test_measure_counts_the_work(tiny):
    progress = []
    result = staircase.measure(
        tiny, max_len=48, points=4, repeats=2, threads=1, on_progress=lambda done, total: progress.append((done, total))
    )
    data = json.loads(json.dumps(result.to_json()))
    assert progress == [(i, 16) for i in range(1, 17)]
    assert {"model", "max_len", "points", "repeats", "series", "fits", "estimate"} <= set(data)
    assert data["max_len"] == 48 and data["points"] == 4 and data["repeats"] == 2
    lengths = [p["length"] for p in data["series"]]
    assert lengths == [12, 24, 36, 48]
    for p in data["series"]:
        assert p["uncached_tokens_in"] == p["length"]  # no cache: the whole sequence every step
        assert p["cached_tokens_in"] == 1  # cache: only the newest token after the prefill
        assert len(p["uncached_samples_ms"]) == len(p["cached_samples_ms"]) == 2
        assert p["uncached_ms"] == min(p["uncached_samples_ms"]) > 0
        assert p["cached_spread_ms"] == max(p["cached_samples_ms"]) - min(p["cached_samples_ms"])
    for kind in ("uncached", "cached"):
        assert {"a_ms", "b_ms_per_token", "c_ms_per_token2", "r2", "formula"} <= set(data["fits"][kind])
    est = data["estimate"]
    assert {
        "parameters",
        "flops_per_step_uncached_at_max",
        "flops_per_step_cached",
        "kv_bytes_per_token",
        "kv_bytes_at_max",
        "total_flops_uncached",
        "total_flops_cached",
    } <= set(est)
    assert est["flops_per_step_uncached_at_max"] > est["flops_per_step_cached"]
    assert est["total_flops_uncached"] > est["total_flops_cached"]
    assert data["threads"] == 1


@pytest.mark.model
def test_smollm2_staircase_small(smol, tmp_path):
    result = staircase.measure(smol, max_len=64, points=3, repeats=1, threads=1)
    data = result.to_json()
    assert [p["uncached_tokens_in"] for p in data["series"]] == [21, 43, 64]
    assert all(p["cached_tokens_in"] == 1 for p in data["series"])
    assert data["estimate"]["parameters"] == PARAMETERS
    assert data["estimate"]["kv_bytes_at_max"] == 64 * 46_080
    path = charts.staircase_chart(data, tmp_path / "smol.svg")
    assert "<svg" in path.read_text()[:500]


# --- charts and the CLI ------------------------------------------------------------------------


def test_cli_json_and_charts(capsys, tiny_model_dir, tmp_path):
    png = tmp_path / "stairs.png"
    code, out, err = cli(
        capsys,
        "staircase",
        "--model",
        str(tiny_model_dir),
        "--max-len",
        "32",
        "--points",
        "3",
        "--repeats",
        "2",
        "--threads",
        "1",
        "--json",
        "--plot",
        str(png),
    )
    assert code == 0, err
    data = json.loads(out)
    assert [p["length"] for p in data["series"]] == [11, 21, 32]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    svg = charts.staircase_chart(data, tmp_path / "stairs.svg")
    assert "<svg" in svg.read_text()[:500] and svg.stat().st_size > 10_000
    lines = charts.staircase_bars(data)
    assert len(lines) == 6
    values = [p[kind] for p in data["series"] for kind in ("uncached_ms", "cached_ms")]
    slowest = values.index(max(values))
    assert max(lines[slowest].count("█"), lines[slowest].count("▒")) == 40  # the slowest step gets the full bar
    assert all(line.count("█") + line.count("▒") <= 40 for line in lines)


def test_cli_text_output(capsys, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a server set up elsewhere must not be picked
    code, out, err = cli(
        capsys,
        "staircase",
        "--model",
        str(tiny_model_dir),
        "--max-len",
        "24",
        "--points",
        "2",
        "--repeats",
        "1",
        "--threads",
        "1",
    )
    assert code == 0, err
    assert "no cache" in out and "KV cache" in out and "R²" in out and "parameters" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--points", "1"], "--points must be at least 2"),
        (["--max-len", "100"], "over the model's context of 64"),
        (["--plot", "chart.pdf"], ".png or .svg"),
        (["--max-len", "0"], "--max-len must be at least 1"),
    ],
)
def test_cli_bad_values_get_one_line(capsys, tiny_model_dir, args, message):
    code, out, err = cli(capsys, "staircase", "--model", str(tiny_model_dir), *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err

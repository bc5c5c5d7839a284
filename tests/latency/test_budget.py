"""Latency: the budget arithmetic, the TTFT + (n - 1) × ITL fit, and the measurement against a real
llama.cpp server on 127.0.0.1 (the shared `llama_url` fixture from tests/support/servers.py), compared with
the server's own `timings`.

Modules (src/tokenloop/): latency/budget.py, commands/latency/budget.py (the budget with no server)."""

import json

import pytest
from support.cli_runner import cli
from support.launcher import free_port

from tokenloop.backends.server import Client
from tokenloop.errors import UsageError
from tokenloop.latency import budget as latency


# --- the budget (no server) --------------------------------------------------------------------
def test_budget_arithmetic():
    b = latency.budget(200, 20, 500)
    assert b["total_ms"] == 200 + 499 * 20 == 10_180
    assert b["tokens_per_s_seen"] == pytest.approx(500 / 10.18)
    assert b["stream_tokens_per_s"] == pytest.approx(50)
    assert b["ttft_share"] == pytest.approx(200 / 10_180)
    rows = {row["tokens"]: row for row in b["table"]}
    assert rows[1]["total_ms"] == 200 and rows[1]["ttft_share"] == 1.0
    shares = [row["ttft_share"] for row in b["table"]]
    assert shares == sorted(shares, reverse=True)  # the longer the answer, the less TTFT matters


def test_fit_total_recovers_ttft_and_itl():
    runs = [[150 + (k - 1) * 12.5 for k in range(1, n + 1)] for n in (1, 16, 32)]
    fit = latency.fit_total(runs)
    assert (
        fit["ttft_ms"] == pytest.approx(150) and fit["itl_ms"] == pytest.approx(12.5) and fit["r2"] == pytest.approx(1)
    )


def test_fit_total_is_not_tilted_by_one_slow_start():
    # the same decode speed in every run; one run waited 400 ms longer for its first token
    runs = [
        [100 + (k - 1) * 10 for k in range(1, 9)],
        [500 + (k - 1) * 10 for k in range(1, 17)],
        [100 + (k - 1) * 10 for k in range(1, 5)],
    ]
    fit = latency.fit_total(runs)
    assert fit["itl_ms"] == pytest.approx(10) and fit["ttft_ms"] == 100 and fit["r2"] < 1


def test_curve_is_the_median_arrival_of_each_token():
    runs = [[100, 110, 120], [90, 130], [95]]
    assert latency.curve(runs) == [
        {"tokens": 1, "total_ms": 95},
        {"tokens": 2, "total_ms": 120},
        {"tokens": 3, "total_ms": 120},
    ]


def test_output_lengths_start_at_one():
    assert latency.output_lengths(64, 5) == [1, 16, 32, 48, 64]
    assert latency.output_lengths(3, 3) == [1, 2, 3]


@pytest.mark.parametrize("args, message", [((-1, 10, 5), "--ttft"), ((10, 0, 5), "--itl"), ((10, 10, 0), "--tokens")])
def test_budget_refuses_bad_values(args, message):
    with pytest.raises(UsageError, match=message):
        latency.budget(*args)


def test_cli_budget(capsys):
    code, out, err = cli(capsys, "latency", "--ttft", "300", "--itl", "25", "--tokens", "500", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["total_ms"] == 300 + 499 * 25
    code, out, err = cli(capsys, "latency", "--ttft", "300", "--itl", "25")
    assert code == 0 and "500-token answer" in out


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give --url URL"),
        (["--ttft", "100"], "both --ttft MS and --itl MS"),
        (["--url", "http://127.0.0.1:9", "--ttft", "1", "--itl", "1"], "not both"),
        (["--ttft", "100", "--itl", "0"], "--itl must be more than 0"),
        (["--url", "127.0.0.1:8080"], "give an http(s) URL"),
        (["--url", "http://127.0.0.1:9", "--points", "1"], "--points must be at least 2"),
        (["--url", "http://127.0.0.1:9", "--plot", "x.jpg"], ".png or .svg"),
        (["--itl", "fast"], "--itl takes a number"),
    ],
)
def test_cli_bad_values_get_one_line(capsys, args, message):
    code, out, err = cli(capsys, "latency", *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_text_output_defines_each_metric_beside_its_numbers(capsys, llama_url):
    code, out, err = cli(capsys, "latency", "--url", llama_url, "--max-tokens", "4", "--points", "2", "--repeats", "1")
    assert code == 0, err
    assert "vllm bench serve" in out and "p99" in out
    starts = {"TTFT": "time to", "TPOT": "time per", "ITL": "inter-token", "E2EL": "end-to-end"}
    for name, words in starts.items():  # each metric's row begins its definition (rich may wrap the rest)
        assert any(row.split()[:1] == [name] and words in row for row in out.splitlines() if row.strip()), name


def test_bad_goodput_is_refused_before_any_request(capsys):
    code, out, err = cli(capsys, "latency", "--url", f"http://127.0.0.1:{free_port()}", "--goodput", "speed:9")
    assert code == 2 and "not one of ttft, tpot, e2el" in err and "\n" not in err.strip()


def test_unreachable_server_is_one_line(capsys):
    code, out, err = cli(
        capsys, "latency", "--url", f"http://127.0.0.1:{free_port()}", "--max-tokens", "4", "--points", "2"
    )
    assert code == 1
    assert "can't reach" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --- a real llama.cpp server -------------------------------------------------------------------
def test_one_stream_matches_the_servers_timings(llama_url):
    client = Client(latency.check(llama_url, 16, 2, 1), timeout=120)
    model = latency.model_name(client)
    latency.stream_once(client, model, "Warm-up. " + latency.PROMPT, 2)
    s = latency.stream_once(client, model, "A fresh prompt: " + latency.PROMPT, 16)
    client.close()
    seen = f"client: ttft {s.ttft_ms:.1f} ms, itl {s.itl_ms:.2f} ms; server: {s.server}"
    assert len(s.arrivals_ms) == 16, seen  # the end token is ignored: exactly n tokens
    assert s.server and s.server["predicted_n"] == 16, seen
    # the client sees the first token only after the server has read the prompt
    assert s.ttft_ms >= s.server["prompt_ms"], seen
    # the gaps the client sees are the server's decode steps (plus a little transport)
    assert s.itl_ms == pytest.approx(s.server["predicted_per_token_ms"], rel=0.35, abs=5), seen


def test_cli_latency_against_llama_server(capsys, llama_url, tmp_path):
    png = tmp_path / "latency.png"
    code, out, err = cli(
        capsys,
        "latency",
        "--url",
        llama_url,
        "--max-tokens",
        "12",
        "--points",
        "2",
        "--repeats",
        "2",
        "--json",
        "--plot",
        str(png),
        "--goodput",
        "ttft:60000,tpot:60000",
    )
    assert code == 0, err
    data = json.loads(out)
    # vLLM bench's keys and definitions, over the 4 streamed requests; each length has its own
    m = data["metrics"]
    assert m["completed"] == 4 and m["total_output_tokens"] == 2 * (1 + 12)
    for name in ("ttft", "tpot", "itl", "e2el"):
        assert {f"{s}_{name}_ms" for s in ("mean", "median", "std", "p90", "p99")} <= set(m) and name in data[
            "definitions"
        ]
    assert 0 < m["median_ttft_ms"] <= m["median_e2el_ms"] and m["p99_itl_ms"] >= m["median_itl_ms"] > 0
    assert m["goodput_share"] == 1.0 and m["request_goodput"] == pytest.approx(m["request_throughput"])
    assert [p["metrics"]["completed"] for p in data["series"]] == [2, 2]
    assert data["series"][0]["metrics"]["median_tpot_ms"] is None  # one token: no time per output token
    assert data["series"][1]["metrics"]["median_tpot_ms"] == pytest.approx(data["series"][1]["itl_ms"], rel=0.01)
    assert [p["tokens"] for p in data["series"]] == [1, 12]
    assert [p["received"] for p in data["series"]] == [1, 12]
    assert [p["tokens"] for p in data["curve"]] == [p["tokens"] for p in data["loop"]["curve"]] == list(range(1, 13))
    fit, server = data["fit"], data["server"]
    assert fit["ttft_ms"] > 0 and fit["itl_ms"] > 0
    assert server["itl_ms"] > 0 and server["prompt_ms"] > 0
    # the fit, made from client-side totals only, lands near what the server says it spent
    assert fit["itl_ms"] == pytest.approx(server["itl_ms"], rel=0.5, abs=5)
    # (the fastest point's prompt time: one cold or preempted request must not decide the test)
    fastest_prompt = min(p["server_prompt_ms"] for p in data["series"] if p["server_prompt_ms"] is not None)
    assert fit["ttft_ms"] >= 0.5 * fastest_prompt, (fit, data["series"])
    # no /metrics here: the split of TTFT comes from llama.cpp's own timings, prefill only
    split = data["split"]
    assert split["source"] == "llama.cpp timings" and split["queue_ms"] is None and split["requests"] == 4
    assert 0 < split["prefill_ms"] <= split["client_ttft_ms"]  # each first token comes after its prefill
    assert split["overhead_ms"] == pytest.approx(split["client_ttft_ms"] - split["prefill_ms"])
    loop = data["loop"]["fit"]
    assert loop["ttft_ms"] > 0 and loop["itl_ms"] > 0
    assert data["budget"]["stream"]["total_ms"] == pytest.approx(fit["ttft_ms"] + 499 * fit["itl_ms"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

"""Numbers a benchmark can trust, on the real vLLM (CPU build, started with
--enable-per-request-metrics and --enable-prompt-tokens-details, --max-num-seqs 8): each request's
parts add up to the client's TTFT; warm and cold runs say what they were, matching the server's
counters; `probe` lists the /metrics families against the server's own text; the concurrency
sweep names its knee where requests wait; the HTML report (commands/latency/report.py) opens in
chromium with no request leaving the file and no console error."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from support.cli_runner import cli

from tokenloop.backends.server.metrics import FAMILIES

LONG = " ".join(f"word{k % 7}" for k in range(160))  # over one 128-token block, so a warm repeat can hit
SHORT = ["--max-tokens", "4", "--points", "2", "--repeats", "2"]


def run(capsys, url, *extra) -> dict:
    code, out, err = cli(capsys, "latency", "--url", url, *SHORT, *extra, "--json")
    assert code == 0, err
    return json.loads(out)


def test_each_requests_parts_add_up_and_warm_and_cold_runs_say_what_they_were(vllm_url, capsys):
    cold = run(capsys, vllm_url, "--prompt", LONG)
    assert cold["warmth"]["mode"] == "cold" and cold["warmth"]["cached_tokens"] == 0  # a cold run: nothing cached
    assert cold["warmth"]["counter_hits"] == 0 and cold["warmth"]["headline"].startswith("cold:")
    got = cold["account"]
    assert got["source"] == "vLLM per-request metrics" and got["requests"] == got["of"] == 4
    overhead = cold["split"]["overhead_ms"]  # the client-side overhead the /metrics split measured
    for r in got["per_request"]:
        assert r["queue_ms"] + r["server_ttft_ms"] + r["rest_ms"] == pytest.approx(r["client_ttft_ms"])
        # the server's intervals lie inside the client's: the rest is the client's own overhead
        assert 0 <= r["rest_ms"] < max(3 * abs(overhead), 50.0), (r, overhead)
        assert r["server_ttft_ms"] > 0 and r["queue_ms"] >= 0
    # the same prompts, the cache allowed: the first run fills it, the second finds it
    run(capsys, vllm_url, "--prompt", LONG, "--cache", "warm")
    warm = run(capsys, vllm_url, "--prompt", LONG, "--cache", "warm")["warmth"]
    assert warm["mode"] == "warm" and warm["cached_share"] > 0.5, warm
    assert warm["headline"].startswith("you measured the prefix cache:")
    # the per-request cached tokens are what the server's own counters added
    assert warm["cached_tokens"] == warm["counter_hits"] and warm["prompt_tokens"] == warm["counter_queries"]


def test_probe_lists_the_families_the_servers_own_metrics_text_has(vllm_url, capsys):
    code, out, err = cli(capsys, "probe", "--url", vllm_url, "--json")
    assert code == 0, err
    checks = json.loads(out)["checks"]
    assert checks["per_request_metrics"] and checks["prompt_tokens_details"]
    text = httpx.get(vllm_url.removesuffix("/v1") + "/metrics", timeout=30).text
    published = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    bare = {n.removesuffix(s) for n in published for s in ("_bucket", "_sum", "_count")} | published
    rows = {r["key"]: r for r in checks["metric_families"]}
    assert rows, checks
    for key, row in rows.items():
        newest = next(n for n in FAMILIES[key].names if n.startswith("vllm:"))
        if row["status"] in ("present", "renamed"):
            assert row["name"] in bare, row
        if row["status"] == "renamed":  # the old name is gone from this server's text, the new one is there
            assert row["old_name"] not in bare and newest in bare, row
        if row["status"] == "off" and "counts nothing" not in row["detail"]:
            assert newest not in bare and row["flag"].startswith("--"), row
        if row["status"] == "absent":
            assert not any(n in bare for n in FAMILIES[key].names), row
    assert rows["kv_usage"]["status"] == "renamed" and rows["itl"]["status"] == "renamed"
    assert rows["kv_block_lifetime"]["status"] == "off"  # the test server runs without --kv-cache-metrics


def test_the_concurrency_sweep_names_its_knee_where_requests_wait(vllm_url, capsys, tmp_path):
    seen, stop = [], threading.Event()

    def watch():  # the test's own reading of the gauge, not tokenloop's
        while not stop.wait(0.2):
            text = httpx.get(vllm_url.removesuffix("/v1") + "/metrics", timeout=30).text
            seen.extend(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("vllm:num_requests_waiting{")
            )

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        report = tmp_path / "run.html"
        # 32 tokens each: the second wave of 8 waits seconds, not the ~0.5 s that 12 tokens gave,
        # so tokenloop's own 0.25 s gauge readings can't fall between its start and its end
        data = run(capsys, vllm_url, "--concurrency", "2,16", "--requests", "16", "--max-tokens", "32",
                   "--plot", str(tmp_path / "l.png"), "--report", str(report))  # fmt: skip
    finally:
        stop.set()
        thread.join()
    assert max(seen) > 0, "no request ever waited: the sweep did not pass --max-num-seqs"
    sweep = data["concurrency"]
    assert sweep["levels"][1]["split"]["waiting_peak"] > 0 and sweep["levels"][1]["split"]["running_peak"] <= 8
    knee = sweep["knee"]
    assert knee["level"] in (2, 16) and knee["signals"]["16"]["queueing"], knee
    assert "the knee is at" in knee["sentence"]
    assert open(sweep["saturation_plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert data["report"] == str(report) and report.read_text().count("<svg") == 3


@pytest.mark.browser
def test_the_html_report_opens_with_no_outside_request_and_no_console_error(vllm_url, capsys, tmp_path, page):
    report = tmp_path / "run.html"
    run(capsys, vllm_url, "--report", str(report))
    requests, console = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert [u for u in requests if not u.startswith("file://")] == [], requests
    assert console == [] and page.errors == []
    assert page.locator("svg").count() == 1 and "vllm bench serve" in page.content()
    assert "the rest: HTTP" in page.locator("body").inner_text()

"""Where a client's time to first token goes (tokenloop/latency/server_time.py, was ttft_split): the
server's queue and prefill read from two `/metrics` texts in vLLM's exposition format around our
requests, the rest called client-side overhead; and llama.cpp's per-response `timings`.

The texts are written here from numbers each test chooses, so every expected figure is computed
from those numbers; on real servers the split is checked in
tests/latency/test_latency_load.py (vLLM) and tests/latency/test_budget.py (llama-server)."""

from __future__ import annotations

import pytest

from tokenloop.backends.server.metrics import parse
from tokenloop.latency import server_time
from tokenloop.measure.streamed import Chunk, Stream


def metrics(queue=(0.0, 0), prefill=(0.0, 0), ttft=None, queries=0, hits=0, running=0, waiting=0, kv=0.0) -> str:
    """vLLM's /metrics as it sends them: histograms as _sum and _count, one sample per engine."""
    labels = '{engine="0",model_name="SmolLM2-135M-Instruct"}'
    lines = [
        "# HELP vllm:request_queue_time_seconds Histogram of time spent in WAITING phase for request.",
        "# TYPE vllm:request_queue_time_seconds histogram",
        f'vllm:request_queue_time_seconds_bucket{{engine="0",le="0.3"}} {queue[1]}',
        f"vllm:request_queue_time_seconds_sum{labels} {queue[0]}",
        f"vllm:request_queue_time_seconds_count{labels} {float(queue[1])}",
        f"vllm:request_prefill_time_seconds_sum{labels} {prefill[0]}",
        f"vllm:request_prefill_time_seconds_count{labels} {float(prefill[1])}",
        f"vllm:prefix_cache_queries_total{labels} {float(queries)}",
        f"vllm:prefix_cache_hits_total{labels} {float(hits)}",
        f"vllm:num_requests_running{labels} {float(running)}",
        f"vllm:num_requests_waiting{labels} {float(waiting)}",
        f"vllm:kv_cache_usage_perc{labels} {kv}",
    ]
    if ttft:
        lines += [
            f"vllm:time_to_first_token_seconds_sum{labels} {ttft[0]}",
            f"vllm:time_to_first_token_seconds_count{labels} {float(ttft[1])}",
        ]
    return "\n".join(lines) + "\n"


def test_one_quiet_window_splits_the_clients_ttft_into_queue_prefill_and_overhead():
    before = parse(metrics(queue=(1.0, 10), prefill=(2.0, 10), ttft=(4.0, 10), queries=100, hits=40))
    after = parse(metrics(queue=(1.3, 13), prefill=(2.6, 13), ttft=(4.9, 13), queries=160, hits=85))
    tally = server_time.Tally()
    tally.add(before, after, sent=3)
    client_ms = [250.0, 260.0, 270.0]
    report = tally.report(client_ms)
    queue_ms, prefill_ms = 1000 * (1.3 - 1.0) / 3, 1000 * (2.6 - 2.0) / 3  # added sum over added count
    assert report["queue_ms"] == pytest.approx(queue_ms) and report["prefill_ms"] == pytest.approx(prefill_ms)
    assert report["client_ttft_ms"] == pytest.approx(sum(client_ms) / 3)
    assert report["overhead_ms"] == pytest.approx(sum(client_ms) / 3 - queue_ms - prefill_ms)
    assert report["server_ttft_ms"] == pytest.approx(1000 * (4.9 - 4.0) / 3)
    assert (report["prefix_cache_queries"], report["prefix_cache_hits"]) == (60, 45)
    assert report["prefix_hit_rate"] == pytest.approx(45 / 60)
    assert (report["requests"], report["server_counted"], report["server_wide"]) == (3, 3, False)
    assert report["source"] == "/metrics"


def test_windows_add_up_and_the_means_are_over_every_request_counted():
    tally = server_time.Tally()
    tally.add(parse(metrics(queue=(0.0, 0), prefill=(0.0, 0))), parse(metrics(queue=(0.2, 2), prefill=(0.4, 2))), 2)
    tally.add(parse(metrics(queue=(0.2, 2), prefill=(0.4, 2))), parse(metrics(queue=(0.8, 4), prefill=(1.6, 4))), 2)
    report = tally.report([100.0])
    assert tally.windows == 2 and report["requests"] == 4 and report["server_counted"] == 4
    assert report["queue_ms"] == pytest.approx(1000 * 0.8 / 4) and report["prefill_ms"] == pytest.approx(1000 * 1.6 / 4)
    assert report["server_ttft_ms"] is None  # this server sent no ttft histogram


@pytest.mark.parametrize(
    "before, after",
    [
        (metrics(queue=(0.0, 0)), metrics(queue=(0.5, 3))),  # another client's request finished in the window
        (metrics(running=1), metrics(queue=(0.4, 2))),  # something was running when it opened
        (metrics(), metrics(queue=(0.4, 2), waiting=1)),  # something was waiting when it closed
    ],
)
def test_a_window_shared_with_other_work_is_marked_server_wide(before, after):
    tally = server_time.Tally()
    tally.add(parse(before), parse(after), sent=2)
    assert tally.report([50.0])["server_wide"] is True


def test_without_metrics_there_is_no_report():
    tally = server_time.Tally()
    tally.add(None, parse(metrics()), 1)  # a server without /metrics
    tally.add(parse("llamacpp:requests_processing 0\n"), parse("llamacpp:requests_processing 0\n"), 1)  # no histogram
    assert tally.windows == 0 and tally.report([10.0]) is None
    tally.add(parse(metrics()), parse(metrics(queue=(0.1, 1))), 1)
    assert tally.report([]) is None  # no client TTFT to split


def test_the_kv_peak_keeps_the_highest_reading():
    tally = server_time.Tally()
    for reading in (0.1, None, 0.6, 0.2):
        tally.peak(reading)
    assert tally.kv_usage_peak == 0.6


def stream(ttft_ms: float, timings: dict | None) -> Stream:
    return Stream(max_tokens=2, chunks=[Chunk(ttft_ms, 1, True), Chunk(ttft_ms + 9, 1, True)], server=timings)


def test_llama_cpp_timings_give_the_prefill_per_request_and_no_queue():
    streams = [stream(40.0, {"prompt_ms": 25.0}), stream(60.0, {"prompt_ms": 35.0}), stream(80.0, None)]
    split = server_time.from_timings(streams)
    assert split["requests"] == 2  # only the streams that carried timings
    assert split["client_ttft_ms"] == pytest.approx(50.0) and split["prefill_ms"] == pytest.approx(30.0)
    assert split["overhead_ms"] == pytest.approx(50.0 - 30.0) and split["queue_ms"] is None
    assert server_time.from_timings([stream(40.0, None)]) is None

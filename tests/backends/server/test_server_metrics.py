"""The /metrics reader: the exposition format, aliases across engine versions, deltas."""

from tokenloop.backends.server import metrics

NEW_VLLM = """\
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="m"} 2.0
vllm:num_preemptions_total{engine="1",model_name="m"} 1.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} 4.5
vllm:request_queue_time_seconds_count{engine="0",model_name="m"} 12.0
vllm:request_queue_time_seconds_bucket{engine="0",le="+Inf",model_name="m"} 12.0
vllm:cache_config_info{block_size="128",num_gpu_blocks="17",cache_dtype="auto",note="a \\"quoted\\" one"} 1.0
broken line without a value
vllm:odd{x="1"} not-a-number
"""

OLD_VLLM = """\
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
vllm:time_per_output_token_seconds_sum{model_name="m"} 3.0
vllm:time_per_output_token_seconds_count{model_name="m"} 100
"""


def test_counters_sum_over_engine_ranks_and_bad_lines_are_skipped():
    snap = metrics.parse(NEW_VLLM)
    assert snap.value("preemptions") == 3.0
    assert snap.value("kv_usage") == 0.5
    assert "vllm:odd" not in snap.names()


def test_histograms_read_as_sum_and_count():
    snap = metrics.parse(NEW_VLLM)
    assert snap.histogram("queue_time") == (4.5, 12.0)
    assert snap.histogram("prefill_time") is None


def test_info_metric_is_its_labels_with_escapes_undone():
    info = metrics.parse(NEW_VLLM).info("cache_config")
    assert info["block_size"] == "128" and info["num_gpu_blocks"] == "17"
    assert info["note"] == 'a "quoted" one'


def test_older_vllm_names_answer_the_same_keys():
    snap = metrics.parse(OLD_VLLM)
    assert snap.value("kv_usage") == 0.25
    assert snap.histogram("itl") == (3.0, 100.0)
    assert snap.value("preemptions") is None


def test_delta_between_two_readings():
    before = metrics.parse(NEW_VLLM)
    after = metrics.parse(NEW_VLLM.replace('engine="0",model_name="m"} 2.0', 'engine="0",model_name="m"} 5.0'))
    assert after.delta(before, "preemptions") == 3.0
    assert after.delta(metrics.parse(OLD_VLLM), "preemptions") is None
    assert after.histogram_delta(before, "queue_time") == (0.0, 0.0)


def test_roll_call_lists_present_renamed_hidden_and_flag_gated_families_from_the_table():
    text = (
        NEW_VLLM + 'vllm:inter_token_latency_seconds_count{engine="0"} 3\nvllm:prefix_cache_hits_total{engine="0"} 1\n'
    )
    text += 'vllm:estimated_read_bytes_per_gpu_total{engine="0"} 0.0\nvllm:generation_tokens_total{engine="0"} 9\n'
    rows = {r["key"]: r for r in metrics.roll_call(metrics.parse(text), "0.32.0")}
    assert (
        rows["preemptions"]["status"] == "present" and rows["queue_time"]["name"] == "vllm:request_queue_time_seconds"
    )
    assert rows["kv_usage"]["status"] == "renamed" and rows["kv_usage"]["old_name"] == "vllm:gpu_cache_usage_perc"
    assert "removed since" in rows["itl"]["detail"] and rows["itl"]["old_name"] == "vllm:time_per_output_token_seconds"
    assert rows["kv_block_lifetime"]["status"] == "off" and rows["kv_block_lifetime"]["flag"] == "--kv-cache-metrics"
    # published but counting nothing while tokens were generated: off until its flag
    assert (
        rows["estimated_read_bytes"]["status"] == "off"
        and rows["estimated_read_bytes"]["flag"] == "--enable-mfu-metrics"
    )
    assert rows["prefill_time"]["status"] == "absent"
    assert not any(r["name"].startswith(("sglang:", "llamacpp:")) for r in rows.values())  # vLLM's names only
    # one minor version after the deprecation the old name is hidden behind the escape hatch
    hidden = {r["key"]: r for r in metrics.roll_call(metrics.parse(text), "0.12.1")}
    assert hidden["itl"]["status"] == "hidden" and "--show-hidden-metrics-for-version=0.11" in hidden["itl"]["detail"]
    # an old server publishing the old name: present, under it
    old = {r["key"]: r for r in metrics.roll_call(metrics.parse(OLD_VLLM), "0.9.2")}
    assert old["kv_usage"]["status"] == "present" and old["kv_usage"]["name"] == "vllm:gpu_cache_usage_perc"

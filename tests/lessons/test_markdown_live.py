"""How each live result reads in the lesson's Markdown (tokenloop/lessons/markdown_live.py): the
writers get results measured on the tiny model in this process (`lessons.markdown.measure`, the
same dicts the page draws), every lesson's live step has its writer, and model text stays text.
The whole document is tests/lessons/test_markdown.py's."""

from __future__ import annotations

import json
import re

import pytest

from tokenloop.lessons import content
from tokenloop.lessons import markdown as lesson_markdown
from tokenloop.lessons.markdown_live import WRITERS, as_json, cell, percent, quoted


@pytest.fixture(scope="module")
def lesson1_live(tiny):
    return lesson_markdown.measure(tiny, content.load("day01"), k=5)


@pytest.mark.parametrize("name", content.available())
def test_every_live_step_of_every_lesson_has_its_own_writer(name):
    """Not the JSON fallback: a live step without a writer would paste raw JSON into the lesson."""
    keys = {step["live"] for step in content.load(name)["steps"] if step.get("live")}
    assert keys and keys <= set(WRITERS)


def test_the_next_token_table_lists_the_measured_candidates_in_order(lesson1_live, tiny):
    result = lesson1_live["results"]["next"]
    text = "\n".join(WRITERS["next"](result, lesson1_live))
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert rows == [
        f"| {i} | {cell(quoted(c['token']))} | {percent(c['prob'])} |" for i, c in enumerate(result["top"], 1)
    ]
    assert len(rows) == 5  # k
    assert f"| | everything else | {percent(result['other'])} |" in text
    assert f"Measured: {tiny.model} ({result['backend']})" in text
    assert (
        f"({len(result['prompt_ids'])} tokens)" in text
        and f"The top token got {percent(result['top'][0]['prob'])}" in text
    )


def test_the_vocabulary_is_counted_in_process_and_not_claimed_behind_a_server(lesson1_live, tiny):
    result = lesson1_live["results"]["vocab"]
    (line,) = WRITERS["vocab"](result, lesson1_live)
    assert f"{tiny.vocab_size:,} tokens" in line and f"{tiny.vocab_size:,} probabilities" in line
    (line,) = WRITERS["vocab"]({"model": "m", "vocab_size": None}, {})
    assert "behind a server" in line and "probabilities" not in line


def test_the_kv_bytes_of_the_cache_tensors_are_written_with_the_configs_prediction(tiny):
    live = lesson_markdown.measure(tiny, content.load("day07"))
    result = live["results"]["kv_bytes"]
    (line,) = WRITERS["kv_bytes"](result, live)
    m = result["measured"]
    assert f"{m['bytes']:,} B" in line and f"after {m['tokens']} tokens" in line and m["formula"] in line


@pytest.mark.parametrize("text", [" pod", "\n", "a`b", "``x``", "`", "| table |", "**bold** <b>x</b>", "é 日本"])
def test_model_text_is_inline_code_that_decodes_back_to_itself(text):
    shown = quoted(text)
    fence = re.match(r"`+", shown).group(0)
    inner = shown[len(fence) : -len(fence)]
    assert shown.endswith(fence) and "\n" not in shown
    assert json.loads(inner.strip()) == text  # the exact text, a leading space or newline included
    assert all(len(run) < len(fence) for run in re.findall(r"`+", inner))  # no backtick run closes it early


def test_a_bar_in_a_table_cell_is_escaped():
    assert cell("a|b") == "a\\|b" and "|" not in cell("a|b").replace("\\|", "")


@pytest.mark.parametrize("p", [0.5, 0.123, 0.0004, 0.00001234])
def test_a_small_probability_keeps_two_significant_digits_never_zero(p):
    shown = percent(p)
    assert float(shown.rstrip("%")) == pytest.approx(100 * p, rel=0.05)
    assert percent(None) == "–" and percent(0) == "0.0%"


def test_an_unknown_result_is_shown_as_json():
    result = {"anything": [1, 2], "text": "é"}
    lines = as_json(result, {})
    assert json.loads("\n".join(lines[3:-1])) == result

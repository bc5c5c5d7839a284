"""Lesson 8 as Markdown (lessons/markdown_prefix.py, through `tokenloop lesson --markdown`): the copy
carries every step's live numbers, and they are the block cache's own counts, recounted here."""

from __future__ import annotations

from support.cli_runner import cli

from tokenloop.cost import prefix_blocks
from tokenloop.lessons import content
from tokenloop.lessons.markdown_prefix import WRITERS


def test_the_cli_copy_of_lesson_8_carries_each_steps_live_numbers(capsys, tiny_model_dir):
    code, out, err = cli(capsys, "lesson", "--markdown", "--lesson", "day08", "--model", str(tiny_model_dir))
    assert code == 0, err
    assert out.startswith(f"# {content.load('day08')['title']}") and "Not measured" not in out
    most = prefix_blocks.predicted(240, 16)
    assert f"the second had {most} of its 240 tokens from the cache (blocks of 16)" in out
    assert "| 32 | 16 | 16 |" in out and "| 33 | 32 | 32 |" in out  # two blocks reuse one
    assert "| first (token 1) | 0 of 240 |" in out and f"| near the end (token 233) | {most} of 240 |" in out
    assert "(a security lesson)" in out and "other traffic since it was last sent" in out
    # no allocator in this process: the blocks are the paging rule on the measured length, and say so
    assert "Counted in this process" in out and "as a paged cache would hand them out (⌈length ÷ 16⌉)" in out


def test_step_5_without_consent_says_so_instead_of_a_table():
    plan = {"needs_consent": True, "plan": {"text": "sends 16 requests"}, "rounds": [1, 2, 3, 5]}
    assert WRITERS["prefix_survival"](plan, {}) == [
        "Not measured: step 5 on a server waits for your consent on the page."
    ]

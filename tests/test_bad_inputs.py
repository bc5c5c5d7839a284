"""docs/bad-inputs.md is a test: every table row with a **Try** is run here, and what the user sees
must be that row's message: one line, exit 1 or 2, no traceback (the CLI), or the row's status and
message, never a 5xx (the web API). The table and the tests can't drift apart.

FAKE is `FakeVLLM` (tests/support/fake_vllm.py) over real HTTP, answering the named fault; DEAD is a port
nothing listens on; TINY is the tiny test model.

Modules (src/tokenloop/): errors.py.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.cli_runner import cli
from support.fake_vllm import FakeVLLM, fake_vllm
from support.launcher import free_port

from tokenloop.web import create_app

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"
FAKES = {
    "FAKE_NOT_JSON": FakeVLLM(raw=b"not json at all"),
    "FAKE_NO_LOGPROBS": FakeVLLM(mode="no_logprobs"),
    "FAKE_LIST": FakeVLLM(raw=b"[1, 2, 3]"),
    "FAKE_CUT": FakeVLLM(stream="cut"),
    "FAKE_REDIRECT": FakeVLLM(pages={"/v1/models": (302, {"Location": "http://127.0.0.1:9/v1/models"}, b"")}),
    "FAKE": FakeVLLM(),
}


def rows() -> list[tuple[str, str, str]]:
    """(input, what you see, try) of every table row that has a Try."""
    found = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] if line.startswith("| ") else []
        if len(cells) == 3 and cells[2].startswith("`") and cells[0] != "Input or fault":
            found.append((cells[0], cells[1], cells[2].strip("`")))
    return found


def pattern(says: str) -> list[re.Pattern]:
    """The row's messages (its backticked parts) as patterns: a word in capitals, or '...', is
    whatever the user gave or the server said."""
    quoted = [q.strip() for q in re.findall(r"``(.+?)``|`([^`]+)`", says) for q in q if q]
    out = []
    for text in quoted:
        regex = re.escape(text).replace(r"\.\.\.", ".*")
        regex = re.sub(r"\b[A-Z][A-Z_]*\b", ".+?", regex)
        if text.startswith("{"):  # a JSON body: spacing is the serializer's
            regex = regex.replace(r"\ ", r"\s*")
        out.append(re.compile(regex))
    return out


ROWS = rows()


def test_the_table_has_runnable_rows_in_every_section():
    assert len(ROWS) >= 40
    assert {t.split()[0] for _, _, t in ROWS} == {"tokenloop", "POST"}


@pytest.mark.parametrize("row", ROWS, ids=[t for _, _, t in ROWS])
def test_each_row_of_the_table(row, capsys, tiny, tiny_model_dir, tmp_path, monkeypatch):
    _, says, attempt = row
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    patterns = pattern(says)
    if attempt.startswith("POST "):
        _, path, body = attempt.split(" ", 2)
        status = int(re.match(r"(\d{3})", says).group(1))
        response = TestClient(create_app(tiny)).post(
            path, content=body.encode(), headers={"content-type": "application/json"}
        )
        assert response.status_code == status, response.text
        error = response.json()["error"]
        error = error["message"] if isinstance(error, dict) else error  # /v1/completions: OpenAI's shape
        assert not patterns or any(p.search(error) or p.search(response.text) for p in patterns), (error, says)
        return
    (tmp_path / "empty").mkdir()
    cut = shutil.copytree(tiny_model_dir, tmp_path / "cut")
    with open(cut / "model.safetensors", "r+b") as f:
        f.truncate((cut / "model.safetensors").stat().st_size - 100)  # the header intact, the last tensor short
    (tmp_path / "notes.txt").write_text("not a model")
    words = {
        "TINY": str(tiny_model_dir),
        "LONG": "pods " * 200,
        "NOT_UTF8": "caf\udce9",  # how Python hands over argv bytes that are not UTF-8
        "EMPTY_DIR": str(tmp_path / "empty"),
        "TEXT_FILE": str(tmp_path / "notes.txt"),
        "CUT_MODEL": str(cut),
        "DEAD": f"http://127.0.0.1:{free_port()}/v1",
    }
    name = next((n for n in FAKES if n in attempt), None)
    argv = shlex.split(attempt)[1:]
    with fake_vllm(FAKES[name]) if name else _nothing() as url:
        if name:
            words[name] = url
        # a whole word is replaced; FAKE/api is the stand-in's root with a path that isn't there
        argv = [words.get(a) or (a.replace(name, url.removesuffix("/v1")) if name and name in a else a) for a in argv]
        code, out, err = cli(capsys, *argv)
    assert code in (1, 2), (attempt, code, out, err)
    err = err.strip()  # (a command that shows progress has ended its line first)
    assert "\n" not in err and err.startswith("tokenloop: ") and "Traceback" not in err, err
    assert any(p.search(err) for p in patterns), (err, says)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_the_doc_quotes_its_own_json_validly():
    for _, _, attempt in ROWS:
        if attempt.startswith("POST "):
            json.loads(attempt.split(" ", 2)[2].replace("Infinity", "1"))

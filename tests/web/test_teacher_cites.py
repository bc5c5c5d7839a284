"""The teacher acts and cites: the lesson's passages ranked for a question (lessons/passages.py; the
test questions are in tests/lessons/test_passages.py), the two live actions a question can ask for
(web/teacher.py), a question outside the lesson (its map, no model), the model's size (small:
it answers only when asked), the answer's bounds (tokens, time, a repetition) and a server's
chunks (never "null"), and their routes, on the tiny model.

Modules (src/tokenloop/): web/teacher.py, web/routes/teacher.py, lessons/passages.py, web/connected.py,
web/routes/connected.py."""

from __future__ import annotations

import contextlib
import json

import pytest
from fastapi.testclient import TestClient
from support.fake_vllm import FakeVLLM, fake_vllm

from tokenloop.lessons import content, passages
from tokenloop.web import create_app, teacher

SMALL = {"steps": 2, "max_len": 16, "points": 2, "repeats": 1, "teacher_max_new": 4}


@pytest.fixture(scope="module")
def lesson():
    return content.load("day01")


def test_stems_fold_the_forms_of_a_word_together():
    assert {passages.stem(w) for w in ("training", "trained", "trains", "train")} == {"train"}
    assert passages.stem("weights") == passages.stem("weight") and passages.stem("running") == "run"
    assert passages.stems("What is the cache for?") == ["cache"]  # question words say nothing


def test_every_answer_of_the_lesson_is_a_passage_with_its_place(lesson):
    found = passages.passages(lesson)
    steps = [p for p in found if p.source == "step"]
    assert [p.step for p in steps] == [s["id"] for s in lesson["steps"]]
    assert steps[3].text == lesson["steps"][3]["explain"].strip() and steps[3].title == lesson["steps"][3]["title"]
    assert sum(p.source == "recall" for p in found) == len(lesson["recall"])
    right = [p for p in found if p.source == "quiz"][1]
    assert right.text.endswith(lesson["quiz"][1]["choices"][lesson["quiz"][1]["answer"]])


@pytest.mark.parametrize(
    ("question", "step"),
    [
        ("How does training change the weights?", "training"),
        ("Why is inference different from training?", "training"),
        ("Does the model plan the whole answer before it writes?", "loop"),
        ("What does softmax give me at the end of a forward pass?", "output"),
        ("Why do later tokens cost more without a KV cache?", "cost"),
    ],
)
def test_a_question_gets_the_step_that_answers_it_among_the_first_passages(lesson, question, step):
    ranked = passages.rank(passages.passages(lesson), question, 3)
    assert step in [p.step for p, _ in ranked]
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0


def test_the_ranking_rewards_rare_words_and_ignores_unknown_ones():
    found = [
        passages.Passage("step", "a", "the model reads tokens and tokens and tokens"),
        passages.Passage("step", "b", "the model reads tokens and the kv cache keeps them"),
        passages.Passage("step", "c", "the model reads tokens"),
    ]
    (best, _), *rest = passages.rank(found, "what does the cache keep?", 3)
    assert best.title == "b" and not rest  # only one passage holds the rare words
    assert passages.rank(found, "zebra quartz", 3) == []
    assert passages.rank(found, "what is the", 3) == []  # nothing but stop words


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "What comes after Kubernetes pods are scheduled by the?",
            {"kind": "next", "text": "Kubernetes pods are scheduled by the"},
        ),
        ('what comes next after "The capital of France is"', {"kind": "next", "text": "The capital of France is"}),
        ("What is the next token after: Once upon a", {"kind": "next", "text": "Once upon a"}),
        ("Show me training", {"kind": "training"}),
        ("can you show me how training changes the weights?", {"kind": "training"}),
        ("How does training change the weights?", None),
        ("What comes after?", None),
    ],
)
def test_the_two_actions_are_recognised_in_a_question(question, expected):
    assert teacher.action(question) == expected


def test_only_a_lesson_with_the_training_demo_offers_it():
    """Lesson 1 trains a copy of the model; Lesson 7 has no training step, so its teacher neither
    recognises the request nor shows the button (its actions don't name it)."""
    from tokenloop.lessons import content

    day01, day07 = content.load("day01"), content.load("day07")
    assert teacher.action("Show me training", day01) == {"kind": "training"}
    assert "training" not in day07["teacher"]["actions"]
    assert teacher.action("Show me training", day07) is None


def test_a_what_comes_after_question_is_not_ranked_on_the_words_of_its_text(lesson):
    cited = teacher.cite(lesson, "What comes after pods scheduler kubernetes?")
    assert cited["action"] == {"kind": "next", "text": "pods scheduler kubernetes"}
    assert all("kubernetes" not in p["text"].lower() for p in cited["passages"])


def test_the_model_is_told_the_passages_that_answer_the_question(lesson):
    system = teacher.messages(lesson, "How does training change the weights?", [])[0]["content"]
    assert lesson["teacher"]["grounding"].strip() in system
    assert lesson["steps"][3]["explain"].strip() in system and lesson["recall"][1]["answer"].strip() in system


@pytest.fixture
def client(tiny):
    return TestClient(create_app(tiny, demo=SMALL))


def test_the_cite_route_answers_passages_and_the_action(client, lesson):
    answer = client.post("/api/teacher/cite", json={"question": "show me training"}).json()
    assert answer["action"] == {"kind": "training"}
    assert answer["passages"][0]["source"] in ("step", "recall", "quiz", "colleague", "picture")
    assert "training" in [p["step"] for p in answer["passages"]]
    blank = client.post("/api/teacher/cite", json={"question": "   "})
    assert blank.status_code == 400 and "type a question" in blank.json()["error"]
    assert client.post("/api/teacher/cite", json={"question": ""}).status_code == 422


def test_without_a_server_there_is_no_cluster_and_no_server_staircase(client):
    assert client.get("/api/cluster").json() == {"cluster": None}
    assert client.get("/api/server-staircase").json() == {"result": None}
    refused = client.post("/api/server-staircase", json={})
    assert refused.status_code == 400 and "--url" in refused.json()["error"]


def events(response) -> list[tuple[str, dict]]:
    found = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


class Untouchable:
    """A backend that fails the test if anything asks it for anything."""

    def __getattr__(self, name):
        raise AssertionError(f"the model was asked for {name}")


@pytest.mark.parametrize("question", ["Give me a pasta recipe", "Who won the 2018 World Cup?"])
def test_a_question_outside_the_lesson_gets_the_map_and_no_model(lesson, question):
    cited = teacher.cite(lesson, question)
    assert cited["passages"] == [] and cited["outside"]["text"] == lesson["teacher"]["outside"].strip()
    assert [s["title"] for s in cited["outside"]["map"]] == [s["title"] for s in lesson["steps"]]
    assert cited["outside"]["map"][4]["anchor"] == "#step-cost"
    said = list(teacher.answer(Untouchable(), lesson, question, [], 16))
    assert [e for e, _ in said] == ["outside", "done"] and said[1][1]["why"] == "outside"


def test_a_question_of_another_lesson_points_to_it(lesson):
    away = teacher.cite(lesson, "What does the causal mask do?")["outside"]
    assert [o["lesson"] for o in away["elsewhere"]] == ["day07"] and away["elsewhere"][0]["href"] == "/?lesson=day07"
    assert teacher.cite(lesson, "Give me a pasta recipe")["outside"]["elsewhere"] == []


def test_a_lesson_question_and_an_action_are_inside(lesson):
    assert teacher.cite(lesson, "How does training change the weights?")["outside"] is None
    assert teacher.cite(lesson, "What comes after Bonjour, je?")["outside"] is None  # an action is never outside


def test_the_outside_route_streams_the_map_without_the_model(client):
    said = events(client.post("/api/teacher", json={"question": "give me a pasta recipe"}))
    assert [e for e, _ in said] == ["outside", "done"]


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("SmolLM2-135M-Instruct", 135_000_000),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", 135_000_000),
        ("meta-llama/Llama-3.1-8B-Instruct", 8_000_000_000),
        ("Qwen2.5-0.5B-Instruct", 500_000_000),
        ("Mixtral-8x7B-v0.1", 56_000_000_000),
        ("gpt-oss-20b", 20_000_000_000),
        ("org/big-model", None),
        ("/models/smollm2-135m-instruct", 135_000_000),
    ],
)
def test_a_models_size_is_read_from_its_name(name, count):
    assert teacher.parameters_in_name(name) == count


class Named:
    """A server's backend as the size decision sees it: a name, no config."""

    in_process, config = False, None

    def __init__(self, model):
        self.model = model


def test_small_is_decided_by_the_parameter_count_not_by_the_url(tiny):
    embedded = teacher.about(tiny)
    assert embedded["small"] and embedded["from"] == "its config" and 0 < embedded["parameters"] < 10**7
    served = teacher.about(Named("HuggingFaceTB/SmolLM2-135M-Instruct"))
    assert served["small"] and served["parameters"] == 135_000_000 and served["from"] == "its name"
    same = teacher.about(Named(f"/srv/{tiny.model}"), beside=tiny)  # the server runs the model beside it
    assert same["parameters"] == embedded["parameters"] and tiny.model in same["from"]
    large = teacher.about(Named("meta-llama/Llama-3.1-8B-Instruct"))
    assert not large["small"] and large["parameters"] >= teacher.LARGE
    unknown = teacher.about(Named("org/big-model"))
    assert unknown["small"] and unknown["parameters"] is None and unknown["size"] == "an unknown number of parameters"
    assert teacher.about(None) is None


def test_a_server_of_unknown_size_is_small_on_the_page(tiny):
    from tokenloop.backends.server import ServerBackend

    with fake_vllm(FakeVLLM()) as url:
        backend = ServerBackend(url, log=lambda message: None)
        info = (
            TestClient(create_app(backend, compare=tiny, server_url=backend.root, demo=SMALL)).get("/api/info").json()
        )
        backend.close()
    assert info["teacher"]["model"] == "org/big-model" and info["teacher"]["small"]


def test_without_a_chat_template_there_is_no_teachers_model(client):
    assert client.get("/api/info").json()["teacher"] is None  # the tiny model has no chat template
    refused = client.post("/api/teacher", json={"question": "How does training change the weights?"})
    assert refused.status_code == 400 and "no chat template" in refused.json()["error"]


def stream(*pieces, end="end"):
    yield from pieces
    yield teacher.Ended(end)


def test_an_answer_that_repeats_itself_is_cut_where_the_repeat_began():
    said = "the model is trained to predict the next token, and "
    pieces = [said[i : i + 7] for i in range(0, len(said), 7)] + ["the model is trained to predict ", "the next"]
    out = list(teacher.bounded(stream(*pieces), 96, 45, clock=lambda: 0.0))
    cut = dict(out)["cut"]
    assert cut["why"] == "repetition" and cut["keep"] == len(said) and "repeating" in cut["text"]
    assert out[-1] == ("done", {"done": True, "why": "repetition", "seconds": 0.0})


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("One token per step. Then the next one, and the loop repeats until an end token.", None),
        ("token token token token token token token ", 6),  # one word over and over
        ("It is. It is. It is. It is. ", 7),
        ("a b c d e f a b c d e", None),  # the last word may still be growing: wait
    ],
)
def test_the_repetition_finder(text, at):
    assert teacher.Repetition().at(text) == at


def test_an_answer_is_cut_at_its_time_and_says_so():
    ticks = iter(range(100))
    out = list(teacher.bounded(stream("a ", "b ", "c ", "d "), 96, 1.5, clock=lambda: float(next(ticks))))
    assert [e for e, _ in out] == ["text", "text", "cut", "done"]
    assert dict(out)["cut"]["why"] == "time" and "1.5 s" in dict(out)["cut"]["text"]


def test_an_answer_that_reaches_max_new_says_it_was_cut(tiny, monkeypatch):
    monkeypatch.setattr(tiny, "eos_ids", frozenset())  # no end token: it runs to max_new
    out = list(teacher.bounded(teacher.pieces(tiny, tiny.encode("hello"), 3), 3, 45, clock=lambda: 0.0))
    assert dict(out)["cut"]["why"] == "tokens" and "3 tokens" in dict(out)["cut"]["text"]
    assert out[-1][0] == "done" and out[-1][1]["why"] == "tokens"


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        ({"choices": [{"delta": {"role": "assistant", "content": None}}]}, ("", None)),
        ({"choices": [{"delta": {"content": "Hi"}, "finish_reason": None}]}, ("Hi", None)),
        ({"choices": [{"delta": {}, "finish_reason": "length"}]}, ("", "length")),
        ({"choices": [], "usage": {"completion_tokens": 3}}, ("", None)),
        ({"choices": [{"delta": None}]}, ("", None)),
        (None, ("", None)),
    ],
)
def test_a_chat_chunk_without_text_gives_no_text(chunk, expected):
    assert teacher.chunk_text(chunk) == expected


class ChunkClient:
    def __init__(self, chunks):
        self.chunks, self.sent = chunks, None

    @contextlib.contextmanager
    def events(self, path, body):
        self.sent = body
        yield iter(self.chunks)


def test_a_servers_null_content_never_reaches_the_page(lesson):
    server = Named("HuggingFaceTB/SmolLM2-135M-Instruct")
    server.name, server.client = (
        "server",
        ChunkClient(
            [
                {"choices": [{"delta": {"role": "assistant", "content": None}}]},
                {"choices": [{"delta": {"content": "One token"}}]},
                {"choices": [{"delta": {"content": None}}]},
                {"choices": [{"delta": {"content": " per step."}, "finish_reason": "length"}]},
            ]
        ),
    )
    out = list(teacher.answer(server, lesson, "Why once per output token?", [], 8))
    assert [d["text"] for e, d in out if e == "text"] == ["One token", " per step."]
    assert "null" not in json.dumps([d for e, d in out if e in ("text", "cut")])
    assert dict(out)["cut"]["why"] == "tokens"
    system = server.client.sent["messages"][0]["content"]  # grounded in the passages the page cites
    cited = teacher.cite(lesson, "Why once per output token?")["passages"]
    assert all(p["text"] in system for p in cited) and {p["step"] for p in cited} >= {"loop", "answer_time"}

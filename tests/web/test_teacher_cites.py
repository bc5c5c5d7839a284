"""The teacher acts and cites: the lesson's passages ranked for a question (web/passages.py), the two
live actions a question can ask for (web/teacher.py), and their routes, on the tiny model.

Modules (src/tokenloop/): web/teacher.py, web/routes/teacher.py, lessons/passages.py, web/connected.py,
web/routes/connected.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

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


def test_a_what_comes_after_question_is_not_ranked_on_the_words_of_its_text(lesson):
    cited = teacher.cite(lesson, "What comes after pods scheduler kubernetes?")
    assert cited["action"] == {"kind": "next", "text": "pods scheduler kubernetes"}
    assert all("kubernetes" not in p["text"].lower() for p in cited["passages"])


def test_the_model_is_told_the_passages_that_answer_the_question(lesson):
    system = teacher.messages(lesson, "How does training change the weights?", [])[0]["content"]
    assert lesson["teacher"]["grounding"].strip() in system
    assert lesson["steps"][3]["explain"].strip() in system or lesson["recall"][1]["answer"].strip() in system


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

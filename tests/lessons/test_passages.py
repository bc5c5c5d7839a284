"""The teacher's test questions: every lesson's questions, each with the step(s) its citations
must hold, and questions from outside the lessons, which must cite nothing (lessons/passages.py).

A question passes when every step it names is among the steps the teacher cites
(`passages.cite`: at most two steps, then the best other passage) and its first step is one of
the first two cited. The whole set is run; the summary line (rank 1 / top 2) is printed with -s."""

from __future__ import annotations

import pytest

from tokenloop.lessons import content, passages

QUESTIONS = {
    "day01": [
        ("Does the model plan the whole answer before it writes?", ["loop"]),
        ("Why once per output token?", ["loop", "answer_time"]),
        ("Why does the model run once per output token?", ["loop", "answer_time"]),
        ("When does the model stop generating?", ["loop"]),
        ("What does the model produce in its very first step?", ["loop"]),
        ("What comes out of the model at the end of a forward pass?", ["output"]),
        ("What does softmax give me at the end of a forward pass?", ["output"]),
        ("What is greedy decoding?", ["output"]),
        ("Who chooses the next token, the model or the sampler?", ["output"]),
        ("How confident is the model about its favourite token?", ["confidence"]),
        ("Why is the top token's probability so far from certain?", ["confidence"]),
        ("Does the model store facts or a spread of probabilities?", ["confidence"]),
        ("How does training change the weights?", ["training"]),
        ("Why is inference different from training?", ["training"]),
        ("Which job runs on every request I send?", ["training"]),
        ("Why is training like a build and inference like running the artifact?", ["training"]),
        ("Why do later tokens cost more without a KV cache?", ["cost"]),
        ("Why does the staircase climb?", ["cost"]),
        ("Why does every step re-read the whole text?", ["cost"]),
        ("What does the KV cache keep from earlier steps?", ["cost"]),
        ("How long will a 500-token answer take?", ["answer_time"]),
        ("What is the time to the first token?", ["answer_time"]),
        ("Why do serving systems stream tokens and batch users together?", ["answer_time"]),
    ],
    "day02": [
        ("How many tokens is my sentence?", ["pieces"]),
        ("Why is Kubernetes split into three pieces?", ["pieces"]),
        ("What is a token id?", ["pieces"]),
        ("Does the model see words or characters?", ["pieces"]),
        ("Why does a piece carry the space before it?", ["pieces"]),
        ("What does the chat template add to my message?", ["chat_template"]),
        ("Why is my one-line chat message 38 tokens?", ["chat_template"]),
        ("Where does the default system prompt come from?", ["chat_template"]),
        ("What is add_generation_prompt?", ["chat_template"]),
        ("Do I pay for the template's tokens on every request?", ["chat_template"]),
        ("Which kind of text costs the most tokens?", ["text_kinds"]),
        ("Why do UUIDs and hex cost so many tokens?", ["text_kinds"]),
        ("Is Chinese text dearer than English in tokens?", ["text_kinds"]),
        ("Why is code split into more tokens than prose?", ["text_kinds"]),
        ("What happens when prompt plus max_tokens is over the context?", ["limits"]),
        ("What does finish_reason length mean?", ["limits"]),
        ("Why did my answer stop short without an error?", ["limits"]),
        ("Does the server cut my prompt when it is too long?", ["limits"]),
        ("What is prompt_logprobs?", ["surprise"]),
        ("Does the model score my prompt?", ["surprise"]),
        ("How surprised is the model by each prompt token?", ["surprise"]),
        ("What is teacher forcing?", ["surprise"]),
        ("How is perplexity measured?", ["surprise"]),
    ],
    "day07": [
        ("Do the keys and values of earlier tokens change when a token is appended?", ["causal"]),
        ("Why is the KV cache exact and not an approximation?", ["causal"]),
        ("What does the causal mask do?", ["causal"]),
        ("Can a new token reach back and change the cached keys?", ["causal"]),
        ("How does one step's time grow as the text gets longer?", ["staircase"]),
        ("Without a cache, why does the step time climb with the length?", ["staircase"]),
        ("On a server, what are time to first token and time between streamed tokens?", ["staircase"]),
        ("Why does a step with the cache barely move as the text grows?", ["staircase"]),
        ("Is a late token as cheap as an early one?", ["long_context"]),
        ("Why is nearly flat not flat?", ["long_context"]),
        ("Does the new token's query read every cached key?", ["long_context"]),
        ("How many bytes of KV cache does one token take?", ["bytes_per_token"]),
        ("How do I compute the cache size per token from the config?", ["bytes_per_token"]),
        ("Does the number of layers and KV heads change the cache size?", ["bytes_per_token"]),
        ("How many full-length conversations fit at once?", ["capacity"]),
        ("What is a preemption?", ["capacity"]),
        ("What happens when the KV cache runs out of blocks?", ["capacity"]),
        ("What is vLLM's maximum concurrency?", ["capacity"]),
        ("When is the cache allocated?", ["capacity"]),
        ("What does the scheduler do when too many requests arrive?", ["capacity"]),
    ],
    "day08": [
        ("Is a request's KV memory reserved up front or as it grows?", ["growth"]),
        ("What did servers before PagedAttention reserve?", ["growth"]),
        ("Why is the second send of the same prompt faster?", ["repeat"]),
        ("What does cached_tokens count?", ["repeat"]),
        ("Why are fewer tokens cached than the prompt has?", ["two_blocks"]),
        ("Why is the last prompt token always computed again?", ["two_blocks"]),
        ("Are half-filled blocks shared?", ["two_blocks"]),
        ("What happens when I change the first word of a cached prompt?", ["one_word"]),
        ("Where should the timestamp go in my prompt?", ["one_word"]),
        ("How long do cached blocks stay in the cache?", ["survival"]),
        ("Which blocks are evicted when the cache is full?", ["survival"]),
        ("Can another tenant tell what prompt I sent?", ["side_channel"]),
        ("What does cache_salt do?", ["side_channel"]),
        ("How does the server name a block of the cache?", ["repeat"]),
        ("Does a GPU hand out KV cache in blocks too?", ["growth"]),
        ("How many tokens does a prompt of exactly two blocks reuse?", ["two_blocks"]),
        ("Does changing a word near the end lose the whole cache?", ["one_word"]),
        ("Does my cached prefix survive other users' traffic?", ["survival"]),
        ("Is a shared prefix cache a security risk between tenants?", ["side_channel"]),
        ("How much faster is the time to first token on a repeat?", ["repeat"]),
    ],
}
OUTSIDE = [
    "Give me a pasta recipe",
    "Who won the 2018 World Cup?",
    "What is the capital of Australia?",
    "Write me a poem about the sea",
    "How do I fix my bicycle's brakes?",
    "What's the weather like tomorrow?",
    "Recommend a good movie for tonight",
    "Who is the president of France?",
]


def cited_steps(lesson: dict, question: str) -> list[str]:
    return [p.step for p, _ in passages.cite(passages.passages(lesson), question) if p.source == "step"]


def test_every_lesson_has_at_least_twenty_test_questions_on_steps_it_has():
    assert sum(len(q) for q in QUESTIONS.values()) >= 40
    for name, questions in QUESTIONS.items():
        steps = {s["id"] for s in content.load(name)["steps"]}
        assert len(questions) >= 20 and {s for _, want in questions for s in want} == steps  # every step asked about


def test_every_test_question_cites_the_steps_that_answer_it(capsys):
    first = top2 = total = 0
    failed = []
    for name, questions in QUESTIONS.items():
        lesson = content.load(name)
        for question, want in questions:
            got = cited_steps(lesson, question)
            total += 1
            first += got[:1] == want[:1]
            ok = want[0] in got[:2] and all(s in got for s in want)
            top2 += ok
            if not ok:
                failed.append(f"{name}: {question!r} cites {got}, wants {want}")
            assert passages.relevance(passages.passages(lesson), question) >= passages.FLOOR, question
    with capsys.disabled():
        print(f"\nteacher's test questions: {first}/{total} right step at rank 1, {top2}/{total} in the top 2")
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("name", sorted(QUESTIONS))
@pytest.mark.parametrize("question", OUTSIDE)
def test_a_question_outside_the_lesson_falls_under_the_floor(name, question):
    assert passages.relevance(passages.passages(content.load(name)), question) < passages.FLOOR


def test_the_heading_counts_more_than_the_explanation():
    found = [
        passages.Passage("step", "what is the cache?", "it keeps work"),
        passages.Passage("step", "something else", "the cache keeps work"),
    ]
    (best, _), _ = passages.rank(found, "cache")
    assert best.title == "what is the cache?"


def test_the_lessons_synonyms_and_adjacent_pairs_count():
    found = [
        passages.Passage("step", "a", "the softmax turns scores into numbers"),
        passages.Passage("step", "b", "the weather is fine today"),
    ]
    assert passages.rank(found, "what is a probability?")[0][0].title == "a"  # softmax ~ probability
    assert passages.stems("re-read the output tokens") == passages.stems("reread the answer tokens")
    pair = [
        passages.Passage("step", "x", "a causal mask hides"),
        passages.Passage("step", "y", "mask it, causal it is"),
    ]
    (best, high), (_, low) = passages.rank(pair, "the causal mask")
    assert best.title == "x" and high > low  # "causal mask" side by side


def test_citations_put_the_steps_first_and_leave_out_weak_ones():
    lesson = content.load("day07")
    cited = passages.cite(passages.passages(lesson), "What happens when the KV cache runs out of blocks?")
    assert cited[0][0].step == "capacity" and len(cited) <= 3  # a recall card scores higher; the step leads
    steps = [s for p, s in cited if p.source == "step"]
    others = [s for p, s in cited if p.source != "step"]
    assert min(steps) >= passages.SHARE * steps[0] and min(others) >= passages.SHARE * max(others + steps)
    weak = passages.cite(passages.passages(lesson), "What is a preemption?")
    assert [p.step for p, _ in weak if p.source == "step"] == ["capacity"]  # no second step far behind

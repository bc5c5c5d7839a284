"""What each dialect of OpenAI-compatible server takes and gives, as data.

The server backend asks one `Dialect` how to tokenize, where to send a completion, how to word the
request, and what its logprobs mean; no `if vllm:` chains elsewhere. Facts per server:

- vLLM: `/tokenize` and `/detokenize` (root, not /v1), prompts as token ids, logprobs capped by
  `--max-logprobs` (default 20, 400 "max allowed: 20" above it), raw by default
  (`--logprobs-mode raw_logprobs`), `return_tokens_as_token_ids` keys candidates by id. Prefix
  caching is on by default; a request's `cache_salt` (1-128 characters, none of @ / \\ NUL) keys
  its cached blocks, so a new random salt is a guaranteed miss. `prompt_logprobs: k` scores every
  prompt position (one entry per position, the first null).
- SGLang: the same tokenizer endpoints; its logprobs are taken after temperature scaling.
- llama.cpp (`llama-server`): native `/completion` with `n_probs` and `cache_prompt`, token ids
  in and out, `timings` and cached-token counts; raw unless `post_sampling_probs`; a request with
  `cache_prompt: false` reads its whole prompt anew.
- llama-cpp-python: `/extras/tokenize`, text prompts only (a list of ids gets 422), legacy
  logprobs keyed by token string; its default sampler has min_p and repeat_penalty on; any new
  request interrupts a running stream (its `interrupt_requests` setting).
- Ollama: no tokenizer endpoint, text prompts only; logprobs before temperature.
- tokenloop: the lesson app's own teaching endpoint (`web/routes/openai.py`), vLLM's shapes, capped at 20.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...sampling import Sampler
from .wire import clean_text


@dataclass(frozen=True)
class Dialect:
    name: str
    owned_by: tuple[str, ...] = ()  # what /v1/models says in "owned_by"
    tokenize: str | None = "/tokenize"
    detokenize: str | None = "/detokenize"
    text_field: str = "prompt"  # the tokenize request's field for the text
    special_field: str | None = "add_special_tokens"  # the tokenize request's "add BOS" switch
    native: bool = False  # llama.cpp's /completion instead of /v1/completions
    takes_ids: bool = True  # accepts the prompt as a list of token ids
    after_temperature: bool = False  # its logprobs are of the temperature-scaled distribution
    interrupts: bool = False  # a second request cuts a running stream short (llama-cpp-python)
    distribution: str = "unknown: the server does not say whether its logprobs come before or after its sampler"
    neutral: dict = field(default_factory=dict)  # switch off the server's own default sampler steps
    extra: dict = field(default_factory=dict)  # sent with every completion request
    salt_field: str | None = None  # a request field that keys the prefix cache (vLLM's cache_salt)
    no_cache: dict = field(default_factory=dict)  # request fields that switch the prefix cache off
    prompt_scores: bool = False  # scores every prompt position on request (vLLM's prompt_logprobs)

    @property
    def endpoint(self) -> str:
        return "/completion" if self.native else "/v1/completions"


VLLM = Dialect(
    "vLLM",
    ("vllm",),
    distribution="raw: vLLM's default --logprobs-mode raw_logprobs is the model's log-softmax before temperature, "
    "penalties and top-k/top-p (processed_logprobs would be after them)",
    neutral={"top_k": -1, "top_p": 1.0, "min_p": 0.0},
    extra={"return_tokens_as_token_ids": True, "return_token_ids": True},
    salt_field="cache_salt",
    prompt_scores=True,
)
SGLANG = Dialect(
    "SGLang",
    ("sglang",),
    after_temperature=True,
    distribution="after temperature: SGLang computes logprobs from the temperature-scaled logits "
    "(the raw distribution only at temperature 0 or 1)",
    neutral={"top_k": -1, "top_p": 1.0, "min_p": 0.0},
)
LLAMA_CPP = Dialect(
    "llama.cpp",
    ("llamacpp",),
    text_field="content",
    special_field="add_special",
    native=True,
    distribution="raw: llama.cpp reports probabilities before its sampler unless a request sets post_sampling_probs",
    neutral={"top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0, "post_sampling_probs": False},
    no_cache={"cache_prompt": False},
)
LLAMA_CPP_PYTHON = Dialect(
    "llama-cpp-python",
    ("me",),
    tokenize="/extras/tokenize",
    detokenize="/extras/detokenize",
    text_field="input",
    special_field=None,
    takes_ids=False,
    interrupts=True,
    distribution="raw: llama-cpp-python takes the log-softmax of the full logits, before its sampler",
    neutral={"top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0},
)
OLLAMA = Dialect(
    "Ollama",
    ("library", "ollama"),
    tokenize=None,
    detokenize=None,
    takes_ids=False,
    distribution="raw: Ollama computes logprobs before temperature scaling",
    neutral={"top_p": 1.0},
)
TOKENLOOP = Dialect(
    "tokenloop",
    ("tokenloop",),
    distribution="raw: tokenloop's lesson app (its teaching /v1/completions) reports the embedded model's "
    "log-softmax, before temperature and top-p, as vLLM does by default",
    neutral={"top_k": -1, "top_p": 1.0},
    extra={"return_tokens_as_token_ids": True, "return_token_ids": True},
)
OTHER = Dialect("other", neutral={"top_p": 1.0})

DIALECTS = {k.name: k for k in (VLLM, SGLANG, LLAMA_CPP, LLAMA_CPP_PYTHON, OLLAMA, TOKENLOOP, OTHER)}


def by_owner(owned_by: str | None) -> Dialect | None:
    for dialect in DIALECTS.values():
        if owned_by and owned_by.lower() in dialect.owned_by:
            return dialect
    return None


def completion_body(
    dialect: Dialect,
    model: str,
    prompt: list[int] | str,
    k: int,
    *,
    max_tokens: int = 1,
    sampler: Sampler | None = None,
    seed: int | None = None,
    cache: bool = True,
    stream: bool = False,
) -> dict:
    """One completion request: `max_tokens` new tokens with the top-`k` logprobs of each.

    Without a sampler the server picks greedily (temperature 0); with one, it samples with exactly
    that sampler: its own defaults (top-k 40, min-p, repeat penalty ...) are switched off.
    """
    picks = {"temperature": 0.0} if sampler is None or sampler.greedy else {"temperature": sampler.temperature}
    picks.update(dialect.neutral)
    if sampler is not None and not sampler.greedy:
        if sampler.top_k is not None:
            picks["top_k"] = sampler.top_k
        if sampler.top_p is not None:
            picks["top_p"] = sampler.top_p
    if seed is not None:
        picks["seed"] = seed
    if dialect.native:
        body = {"prompt": prompt, "n_predict": max_tokens, "n_probs": k, "cache_prompt": cache, "return_tokens": True}
    else:
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "logprobs": k, **dialect.extra}
    body.update(picks)
    if stream:
        body["stream"] = True
        if not dialect.native:
            body["stream_options"] = {"include_usage": True}
    return body


def uncached_fields(dialect: Dialect, salt: str) -> dict:
    """The request fields that keep one request from reading any cached prefix: a fresh `salt`
    where the server keys its cache by one, its off switch where it has one, else nothing (then
    only a prompt no request has sent before makes sure)."""
    fields = dict(dialect.no_cache)
    if dialect.salt_field:
        fields[dialect.salt_field] = salt
    return fields


def tokenize_body(dialect: Dialect, model: str, text: str, special: bool = True) -> dict:
    body = {dialect.text_field: text}
    if dialect.special_field:
        body[dialect.special_field] = special
    if dialect.text_field == "prompt":
        body["model"] = model
    return body


def detokenize_body(dialect: Dialect, model: str, ids: list[int]) -> dict:
    body: dict = {"tokens": list(ids)}
    if dialect.text_field == "prompt":
        body["model"] = model
    return body


def detokenized_text(answer: Any) -> str | None:
    """llama.cpp answers {"content"}, vLLM {"prompt"}, SGLang and llama-cpp-python {"text"}."""
    for key in ("content", "prompt", "text"):
        if isinstance(answer, dict) and isinstance(answer.get(key), str):
            return clean_text(answer[key])
    return None

"""The server backend: the same loop against any OpenAI-compatible server (vLLM, SGLang,
llama.cpp, Ollama, ...), where a model too big for one machine is served by an engine built for it.

The loop over HTTP, one call per token:

    ids = POST /tokenize(prompt)                              # once, with the server's tokenizer
    repeat:
        answer = POST /v1/completions(prompt=ids, max_tokens=1, logprobs=k)
        top_k  = answer's logprobs as (id, text, logprob)     # the top of the raw distribution
        next   = pick(top_k)                                  # greedy, or the sampler over the top-k
        ids.append(next)                                      # ids, never text: text doesn't round-trip

Each call re-sends and re-schedules the whole prefix (the server's prefix cache narrows the cost:
`cached_tokens`). With `--server-sample` the server picks; with `--stream` one request runs the
whole loop on the server (`picks.py`). Every way yields the same `Step` records.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ...errors import ServerError, UsageError
from ...sampling import Sampler
from ...scores import Scores
from ..picker import Picker
from . import dialects, discover, numbers, picks, wire
from .client import ENV_URL, Client, Refused, base_url
from .ids import TokenTable

UNKNOWN_CONTEXT = 1 << 30  # the server did not say; its own error will tell when a prompt is too long


@dataclass
class PrefixCache:
    """The KV cache lives on the server; this only asks it to reuse the prefix (cache_prompt)."""

    reuse: bool = True


@dataclass
class Answer:
    """One completion call, parsed: scores for the loop, the server's own pick, and timings."""

    scores: Scores
    position: wire.Position
    server_pick: int | None
    finish: str | None


class ServerBackend:
    name = "server"
    full_vocab = False  # a top-k of logprobs, never the whole vocabulary
    can_score = False  # scoring a text needs every position's logits, which a completion API doesn't give
    can_train = False
    in_process = False  # the model runs behind HTTP, in another process
    can_chat = True  # the server's own chat endpoint and template
    vocab_size = None
    model_dir = None
    gguf_file = None
    config = None

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 60.0,
        log=None,
        stream: bool = False,
        server_sample: bool = False,
        keep_alive: bool = True,
        source: str = "--url",
    ):
        self.root = base_url(url, source)
        self.client = Client(self.root, api_key, timeout, keep_alive, source)
        self.log = log or (lambda message: print(f"tokenloop: {message}", file=sys.stderr))
        self.notes: list[str] = []
        self.flags: set[str] = set()  # notes already given once per run
        self.caps = discover.discover(self.client, model)
        self.dialect = dialects.DIALECTS[self.caps.kind]
        self.model = self.caps.model
        self.context_length = self.caps.context_length or UNKNOWN_CONTEXT
        self.eos_ids = frozenset(self.caps.eos_ids)
        self.max_top_k = self.caps.max_logprobs
        self.sends_ids = self.caps.prompt_ids
        self.tokens = TokenTable(self._lookup_id, self.decode if self.caps.detokenize is not None else None)
        # how a run picks: tokenloop's sampler over the returned top-k (None), the server, or one stream
        self.picker: Picker | None = picks.streamed if stream else picks.by_server if server_sample else None
        if not self.sends_ids:
            self._note(
                f"{self.caps.kind} takes no token ids as a prompt: tokenloop sends the text each step and the "
                "server re-tokenizes it, which may split it differently from the tokens shown"
            )

    @classmethod
    def from_args(cls, args, log=None) -> ServerBackend:
        url = getattr(args, "url", None) or os.environ.get("OPENAI_BASE_URL")
        source = "--url" if getattr(args, "url", None) else ENV_URL
        if not url:
            raise UsageError("no server given: pass --url http://host:8000/v1 or set OPENAI_BASE_URL")
        timeout = getattr(args, "server_timeout", None)
        return cls(
            url,
            api_key=getattr(args, "api_key", None) or os.environ.get("OPENAI_API_KEY"),
            model=getattr(args, "server_model", None),
            timeout=60.0 if timeout is None else timeout,
            log=log,
            stream=getattr(args, "stream", False),
            server_sample=getattr(args, "server_sample", False),
            source=source,
        )

    def close(self) -> None:
        self.client.close()

    def _note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            self.log(f"note: {message}")

    def probe(self, text: str = "The capital of France is") -> discover.Capabilities:
        return discover.probe(self, text)

    # --- text <-> ids --------------------------------------------------------------------------
    def encode(self, text: str, chat: bool = False) -> list[int]:
        if chat and self.dialect in (dialects.VLLM, dialects.SGLANG):
            # their /tokenize applies the model's chat template itself
            body = {"model": self.model, "messages": [{"role": "user", "content": text}], "add_generation_prompt": True}
            ids = _ids(self.client.call("POST", self.caps.tokenize, body), self.caps.tokenize)
            self.tokens.remember_prompt(ids, self.decode(ids))
            return ids
        if chat:
            text = self._chat_text(text)
        if self.caps.tokenize is None:
            # No tokenizer on the server (Ollama): count the prompt's tokens, keep the text.
            ids = [-1] * max(1, self._count_tokens(text))
        else:
            body = dialects.tokenize_body(self.dialect, self.model, text, special=not chat)
            ids = _ids(self.client.call("POST", self.caps.tokenize, body), self.caps.tokenize)
        self.tokens.remember_prompt(ids, text)
        return ids

    def _chat_text(self, text: str) -> str:
        if self.dialect is dialects.LLAMA_CPP:
            answer = self.client.call("POST", "/apply-template", {"messages": [{"role": "user", "content": text}]})
            if isinstance(answer, dict) and isinstance(answer.get("prompt"), str):
                return answer["prompt"]
            raise ServerError("the server's /apply-template answered without a prompt string")
        raise UsageError(
            f"--chat over a {self.caps.kind} server is not supported: drop --chat and write the chat template into the prompt"
        )

    def _count_tokens(self, text: str) -> int:
        answer = self.client.call(
            "POST", "/v1/completions", {"model": self.model, "prompt": text, "max_tokens": 1, "temperature": 0}
        )
        usage = answer.get("usage") if isinstance(answer, dict) else None
        count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return numbers.count(count, UNKNOWN_CONTEXT) or 0

    def decode(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        if not ids:
            return ""
        if self.caps.detokenize is None or any(i < 0 for i in ids):
            return self.tokens.text_of(ids)
        answer = self.client.call("POST", self.caps.detokenize, dialects.detokenize_body(self.dialect, self.model, ids))
        text = dialects.detokenized_text(answer)
        return text if text is not None else self.tokens.text_of(ids)

    def token_text(self, token_id: int) -> str:
        return self.tokens.token_text(token_id)

    def _lookup_id(self, text: str) -> int | None:
        if self.caps.tokenize is None:
            return None
        answer = self.client.quiet(
            "POST", self.caps.tokenize, dialects.tokenize_body(self.dialect, self.model, text, special=False)
        )
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        if (
            isinstance(tokens, list)
            and len(tokens) == 1
            and isinstance(tokens[0], int)
            and not isinstance(tokens[0], bool)
            and 0 <= tokens[0] < wire.MAX_ID
        ):
            return tokens[0]
        return None

    # --- one completion call -------------------------------------------------------------------
    def new_cache(self) -> PrefixCache:
        return PrefixCache()

    def forward(self, ids: Sequence[int], cache: PrefixCache | None = None, top_k: int = 8) -> Scores:
        """The top-k of the next-token distribution after `ids`: one call, max_tokens 1, logprobs k."""
        return self.complete(ids, top_k, cache=cache is not None).scores

    def logprobs_of(self, data: Any) -> Any:
        """The logprobs object of a completion (or of one streamed chunk)."""
        if not isinstance(data, dict):
            return None
        if self.dialect.native:
            return data.get("completion_probabilities")
        choices = data.get("choices")
        return (
            choices[0].get("logprobs")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict)
            else None
        )

    def finish_of(self, data: Any) -> str | None:
        """Why the server stopped, if this completion (or chunk) says: "stop", "length", ..."""
        if not isinstance(data, dict):
            return None
        if self.dialect.native:
            return "stop" if data.get("stop_type") == "eos" else None
        choices = data.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        finish = choice.get("finish_reason")
        return finish if isinstance(finish, str) else None

    def complete(
        self,
        ids: Sequence[int],
        top_k: int,
        sampler: Sampler | None = None,
        seed: int | None = None,
        cache: bool = True,
    ) -> Answer:
        step = self.tokens.step_of(ids)
        prompt: list[int] | str = list(ids) if self.sends_ids else self.tokens.text_of(list(ids))
        start = time.perf_counter()
        data, k = self._post_completion(prompt, top_k, step, sampler=sampler, seed=seed, cache=cache)
        request_ms = (time.perf_counter() - start) * 1000
        if not isinstance(data, dict):
            raise ServerError(
                f"the {self.caps.kind} server answered a {type(data).__name__} where a completion object belongs", step
            )
        found = wire.positions(self.logprobs_of(data))
        if not found or not found[0].top:
            raise ServerError(
                f"the {self.caps.kind} server at {self.root} returned no logprobs for {self.caps.endpoint}: "
                "tokenloop needs logprobs to show the distribution (check that the server has them on)",
                step,
            )
        position = found[0]
        top = position.top
        if all(math.isinf(e.logprob) for e in top):
            raise ServerError("every logprob the server returned is -inf: there is no distribution to show", step)
        pick = self._server_pick(position, data)
        if self.finish_of(data) == "stop" and pick is not None:
            self.eos_ids = self.eos_ids | {pick}  # the server stopped on its own pick: an end token, by id from now on
        extra = {"request_ms": request_ms, "sent": "ids" if self.sends_ids else "text", "returned": len(top)}
        extra.update(wire.server_numbers(data))
        if "server_ms" in extra:
            extra["client_ms"] = max(0.0, request_ms - extra["server_ms"])
        if k < top_k:
            extra["logprobs_cap"] = k
        if position.missing:
            extra["missing_logprobs"] = position.missing
        if sampler is not None and not sampler.greedy and self.dialect.after_temperature and sampler.temperature != 1:
            extra["distribution"] = "after temperature"
        tokens_in = extra.get("server_prompt_tokens")
        if tokens_in is None:
            tokens_in = extra.get("prompt_tokens", len(ids)) - extra.get("cached_tokens", 0)
        return Answer(self.scores_of(top, tokens_in, extra), position, pick, self.finish_of(data))

    def scores_of(self, top: list[wire.Entry], tokens_in: int, extra: dict) -> Scores:
        """A server's top-k as the loop's `Scores`: its logprobs over the candidates' ids."""
        logprobs = torch.tensor([e.logprob for e in top], dtype=torch.float32)
        mass = float(logprobs.exp().sum()) if len(top) else 0.0
        if mass > 1.01:  # probabilities of one distribution can't add up to more than 100%
            extra["mass_over_one"] = mass
            if "mass" not in self.flags:
                self.flags.add("mass")
                self._note(
                    f"the server's probabilities for one step add up to {mass:.0%}, not at most 100%: its logprobs "
                    "are not one distribution (shown as sent; shares between them mean little)"
                )
        self.tokens.new_answer()
        return Scores(logprobs, torch.tensor([self.tokens.id_of(e) for e in top]), tokens_in, extra)

    def _server_pick(self, position: wire.Position, data: dict) -> int | None:
        choices = data.get("choices") if not self.dialect.native else None
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        returned = choice.get("token_ids")  # vLLM's return_token_ids
        if (
            isinstance(returned, list)
            and returned
            and isinstance(returned[0], int)
            and not isinstance(returned[0], bool)
            and 0 <= returned[0] < wire.MAX_ID
        ):
            return returned[0]
        return self.tokens.id_of(position.chosen) if position.chosen is not None else None

    def _post_completion(self, prompt, k: int, step: int | None, **options) -> tuple[Any, int]:
        """POST one completion; above the server's logprobs cap, lower k to the cap and go on."""
        k = min(k, self.max_top_k) if self.max_top_k else k
        body = dialects.completion_body(self.dialect, self.model, prompt, k, **options)
        try:
            return self.client.call("POST", self.caps.endpoint, body, step), k
        except Refused as refused:
            cap = self.check_refusal(refused, step, k)
            body = dialects.completion_body(self.dialect, self.model, prompt, cap, **options)
            return self.client.call("POST", self.caps.endpoint, body, step), cap

    def check_refusal(self, refused: Refused, step: int | None, k: int) -> int:
        """A refused completion: a prompt over the context is the user's to fix; over the logprobs
        cap, the cap to ask for instead; anything else is raised as it is."""
        if wire.is_context_error(refused.server_message):
            limit = wire.context_limit(refused.server_message)
            if limit:
                self.context_length = self.caps.context_length = limit
            if step is None or step == 1:
                raise UsageError(
                    f"the prompt is too long for the server's context ({refused.server_message}): shorten it"
                ) from None
            raise ServerError(
                f"the sequence outgrew the server's context ({refused.server_message}): lower --max-new", step
            ) from None
        cap = wire.logprobs_cap(refused.server_message)
        if cap is None or cap >= k or cap < 1:
            raise refused
        self.max_top_k = self.caps.max_logprobs = cap
        self._note(
            f"the server allows at most {cap} logprobs per token (vLLM: --max-logprobs raises it): showing the top {cap}"
        )
        return cap


def _ids(answer: Any, path: str) -> list[int]:
    """The token ids of a /tokenize answer (plain ids, or llama.cpp's {"id": ...} objects)."""
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(tokens, list):
        raise ServerError(f"the server's {path} answered without a list of tokens")
    ids = [t.get("id") if isinstance(t, dict) else t for t in tokens]
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1 << 31 for i in ids):
        raise ServerError(f"the server's {path} answered something that is not a list of token ids")
    return ids

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
`cached_tokens`). `stream()` is the other way: one request, the server runs the loop and sends
every token with its logprobs. Both yield the same `Step` records as the embedded model.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import httpx
import torch

from ..errors import ServerError, UsageError
from ..records import Candidate, Done, Step
from ..sampling import GREEDY, Sampler
from . import Scores
from . import server_kinds as kinds
from . import server_shapes as shapes

UNKNOWN_CONTEXT = 1 << 30  # the server did not say; its own error will tell when a prompt is too long
PROBE_K = 100  # how many logprobs `probe` asks for to find the server's cap


def base_url(url: str) -> str:
    """The server's root: 'http://host:8000/v1/' -> 'http://host:8000' (OpenAI paths add /v1)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--url {url}: give an http(s) URL, e.g. http://localhost:8000/v1")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class Refused(ServerError):
    """The server answered with an HTTP error; `status` and the server's own `message` kept."""

    def __init__(self, message: str, status: int, server_message: str, step: int | None = None):
        super().__init__(message, step)
        self.status, self.server_message = status, server_message


@dataclass
class Capabilities:
    """What a server can do, found once when the backend opens (and by `tokenloop probe`)."""

    url: str
    kind: str
    model: str
    models: list[str]
    context_length: int | None
    tokenize: str | None
    detokenize: str | None
    prompt_ids: bool
    endpoint: str
    distribution: str
    version: str | None = None
    eos_ids: list[int] = field(default_factory=list)
    max_logprobs: int | None = None  # the cap the server enforces, once known
    checks: dict[str, Any] = field(default_factory=dict)  # what `probe` measured live

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class PrefixCache:
    """The KV cache lives on the server; this only asks it to reuse the prefix (cache_prompt)."""

    reuse: bool = True


@dataclass
class Answer:
    """One completion call, parsed: scores for the loop, the server's own pick, and timings."""

    scores: Scores
    position: shapes.Position
    server_pick: int | None
    finish: str | None


class ServerBackend:
    name = "server"
    full_vocab = False

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None, timeout: float = 60.0,
                 log=None, stream: bool = False, server_sample: bool = False, keep_alive: bool = True):
        if not (timeout > 0):
            raise UsageError(f"--server-timeout must be above 0 seconds, not {timeout}")
        self.root = base_url(url)
        self.timeout = timeout
        self.log = log or (lambda message: print(f"tokenloop: {message}", file=sys.stderr))
        self.stream, self.server_sample = stream, server_sample
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # One client, kept alive: every step reuses the same TCP connection.
        limits = httpx.Limits() if keep_alive else httpx.Limits(max_keepalive_connections=0)  # off: only to measure it
        self.client = httpx.Client(base_url=self.root, headers=headers, limits=limits,
                                   timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        self._texts: dict[int, str] = {}  # display text per id, from /detokenize (or the server's clean token string)
        self._pieces: dict[int, str] = {}  # the server's token string per id: what text mode appends
        self._ids_of_text: dict[str, int] = {}  # text mode: token string -> id (negative: a local placeholder)
        self._placeholders: dict[str, int] = {}  # token string -> its local negative id
        self._hold = False  # True while a stream runs on a server that a second request would interrupt
        self._prompts: dict[tuple[int, ...], str] = {}  # prompt ids -> the text they came from
        self.notes: list[str] = []
        self.caps = self._discover(model)
        self.kind = kinds.KINDS[self.caps.kind]
        self.model = self.caps.model
        self.context_length = self.caps.context_length or UNKNOWN_CONTEXT
        self.eos_ids = frozenset(self.caps.eos_ids)
        self.max_top_k = self.caps.max_logprobs
        self.sends_ids = self.caps.prompt_ids
        if not self.sends_ids:
            self._note(f"{self.caps.kind} takes no token ids as a prompt: tokenloop sends the text each step and the "
                       "server re-tokenizes it, which may split it differently from the tokens shown")

    @classmethod
    def from_args(cls, args, log=None) -> "ServerBackend":
        url = getattr(args, "url", None) or os.environ.get("OPENAI_BASE_URL")
        if not url:
            raise UsageError("no server given: pass --url http://host:8000/v1 or set OPENAI_BASE_URL")
        return cls(url, api_key=getattr(args, "api_key", None) or os.environ.get("OPENAI_API_KEY"),
                   model=getattr(args, "server_model", None), timeout=getattr(args, "server_timeout", None) or 60.0,
                   log=log, stream=getattr(args, "stream", False), server_sample=getattr(args, "server_sample", False))

    def close(self) -> None:
        self.client.close()

    def _note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            self.log(f"note: {message}")

    # --- HTTP ----------------------------------------------------------------------------------
    def _send(self, method: str, path: str, body: dict | None = None, step: int | None = None) -> httpx.Response:
        try:
            try:
                return self.client.request(method, path, json=body)
            except httpx.RemoteProtocolError:  # a kept-alive connection the server had closed: once more, anew
                return self.client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise ServerError(f"{self.root} gave no answer within {self.timeout:g} s on {path}: the server is stuck or "
                              "overloaded (raise --server-timeout to wait longer)", step) from None
        except httpx.ConnectError as e:
            raise ServerError(f"can't reach {self.root} ({_reason(e)}): is the server running? check --url", step) from None
        except httpx.HTTPError as e:
            raise ServerError(f"the server at {self.root} stopped answering on {path} ({_reason(e)}): it may have crashed", step) from None

    def _refused(self, response: httpx.Response, path: str, step: int | None) -> Refused:
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        said = shapes.error_message(status, body, response.text if body is None else "")
        if status in (401, 403):
            text = f"the server refused the request ({status}: {said}): pass its key with --api-key or OPENAI_API_KEY"
        elif status == 404:
            text = f"{self.root}{path} not found (404): check --url; give the server's base URL, e.g. http://localhost:8000/v1"
        else:
            text = f"the server answered {status} on {path}: {said}"
        return Refused(text, status, said, step)

    def _call(self, method: str, path: str, body: dict | None = None, step: int | None = None) -> Any:
        response = self._send(method, path, body, step)
        if response.status_code >= 400:
            raise self._refused(response, path, step)
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"{self.root}{path} answered something that is not JSON: is --url an OpenAI-compatible server?", step) from None

    def _quiet(self, method: str, path: str, body: dict | None = None) -> Any:
        """A call whose failure only means "not this kind of server" (used while finding out)."""
        try:
            response = self.client.request(method, path, json=body)
            return response.json() if response.status_code < 400 else None
        except (httpx.HTTPError, ValueError):
            return None

    # --- what the server is --------------------------------------------------------------------
    def _discover(self, wanted: str | None) -> Capabilities:
        listing = self._call("GET", "/v1/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        entries = [m for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if not entries:
            raise ServerError(f"{self.root}/v1/models lists no models: is --url an OpenAI-compatible server?")
        models = [m["id"] for m in entries]
        if wanted is not None and wanted not in models:
            raise UsageError(f"--server-model {wanted}: the server has no such model; it serves: {', '.join(models)}")
        entry = entries[models.index(wanted or models[0])]
        kind = kinds.by_owner(entry.get("owned_by")) or self._sniff()
        context = entry.get("max_model_len") if isinstance(entry.get("max_model_len"), int) else None
        caps = Capabilities(self.root, kind.name, entry["id"], models, context, kind.tokenize, kind.detokenize,
                            kind.takes_ids, kind.endpoint, kind.distribution)
        if kind is kinds.LLAMA_CPP:
            props = self._quiet("GET", "/props") or {}
            n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
            caps.context_length = n_ctx if isinstance(n_ctx, int) else caps.context_length
            caps.version = props.get("build_info")
            if isinstance(props.get("eos_token"), str):
                caps.eos_ids = self._special_ids(kind, caps.model, props["eos_token"])
        elif kind is kinds.VLLM:
            caps.version = (self._quiet("GET", "/version") or {}).get("version")
        if kind is kinds.OTHER and self._quiet("POST", "/tokenize", kinds.tokenize_body(kind, caps.model, "a")) is None:
            caps.tokenize = caps.detokenize = None
        if caps.tokenize is None:
            caps.prompt_ids = False
        return caps

    def _sniff(self) -> kinds.Kind:
        """Servers that /v1/models does not name: ask the endpoints only one kind has."""
        props = self._quiet("GET", "/props")
        if isinstance(props, dict) and "default_generation_settings" in props:
            return kinds.LLAMA_CPP
        if isinstance(self._quiet("GET", "/get_model_info"), dict):
            return kinds.SGLANG
        if isinstance(self._quiet("GET", "/api/version"), dict):
            return kinds.OLLAMA
        version = self._quiet("GET", "/version")
        if isinstance(version, dict) and "version" in version:
            return kinds.VLLM
        return kinds.OTHER

    def _special_ids(self, kind: kinds.Kind, model: str, text: str) -> list[int]:
        answer = self._quiet("POST", kind.tokenize, kinds.tokenize_body(kind, model, text, special=False))
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        return list(tokens) if isinstance(tokens, list) and len(tokens) == 1 else []

    # --- text <-> ids --------------------------------------------------------------------------
    def encode(self, text: str, chat: bool = False) -> list[int]:
        if chat and self.kind in (kinds.VLLM, kinds.SGLANG):
            # their /tokenize applies the model's chat template itself
            body = {"model": self.model, "messages": [{"role": "user", "content": text}], "add_generation_prompt": True}
            ids = list(self._call("POST", self.caps.tokenize, body).get("tokens", []))
            self._prompts[tuple(ids)] = self.decode(ids)
            return ids
        if chat:
            text = self._chat_text(text)
        if self.caps.tokenize is None:
            # No tokenizer on the server (Ollama): count the prompt's tokens, keep the text.
            ids = [-1] * max(1, self._count_tokens(text))
        else:
            answer = self._call("POST", self.caps.tokenize, kinds.tokenize_body(self.kind, self.model, text, special=not chat))
            ids = [t["id"] if isinstance(t, dict) else t for t in answer.get("tokens", [])]
        self._prompts[tuple(ids)] = text
        return ids

    def _chat_text(self, text: str) -> str:
        messages = [{"role": "user", "content": text}]
        if self.kind is kinds.LLAMA_CPP:
            return self._call("POST", "/apply-template", {"messages": messages})["prompt"]
        raise UsageError(f"--chat over a {self.caps.kind} server is not supported: drop --chat and write the chat template into the prompt")

    def _count_tokens(self, text: str) -> int:
        answer = self._call("POST", "/v1/completions", {"model": self.model, "prompt": text, "max_tokens": 1, "temperature": 0})
        return int((answer.get("usage") or {}).get("prompt_tokens") or 0)

    def decode(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        if not ids:
            return ""
        if self.caps.detokenize is None or any(i < 0 for i in ids):
            return self._text_of(ids)
        answer = self._call("POST", self.caps.detokenize, kinds.detokenize_body(self.kind, self.model, ids))
        text = kinds.detokenized_text(answer)
        return text if text is not None else self._text_of(ids)

    def token_text(self, token_id: int) -> str:
        """A token as display text: detokenized by id (the server's string may be '', '\ufffd', 'bytes:..')."""
        text = self._texts.get(token_id)
        if text is None:
            if token_id < 0 or self.caps.detokenize is None or self._hold:
                return self._pieces.get(token_id, "")
            text = self._texts[token_id] = self.decode([token_id])
        return text

    def _text_of(self, ids: list[int]) -> str:
        """Text mode: the registered prompt's own text, then each generated token's string."""
        for prompt, text in reversed(list(self._prompts.items())):
            if tuple(ids[: len(prompt)]) == prompt:
                return text + "".join(self._piece(i) for i in ids[len(prompt):])
        return "".join(self._piece(i) for i in ids)

    def _piece(self, token_id: int) -> str:
        piece = self._pieces.get(token_id)
        return piece if piece is not None else self.token_text(token_id)

    def _step_of(self, ids: Sequence[int]) -> int | None:
        """Which step of a run this call is, counted from the prompt it started from."""
        for prompt in reversed(list(self._prompts)):
            if len(ids) >= len(prompt) and tuple(ids[: len(prompt)]) == prompt:
                return len(ids) - len(prompt) + 1
        return None

    def _id_of(self, entry: shapes.Entry) -> int:
        """A candidate's token id; in text mode found by tokenizing its string (a negative id if that fails)."""
        if entry.id is not None:
            if _clean(entry.text):  # spare a /detokenize call: the server's string already reads right
                self._texts.setdefault(entry.id, entry.text)
                self._pieces.setdefault(entry.id, entry.text)
            return entry.id
        token_id = self._ids_of_text.get(entry.text)
        if token_id is None and self._hold:
            token_id = self._placeholder(entry.text)  # no request while a stream runs: it would cut it short
        elif token_id is None:
            token_id = self._ids_of_text[entry.text] = self._lookup_id(entry.text)
        self._pieces.setdefault(token_id, entry.text)  # text mode appends exactly what the server wrote
        if token_id < 0 or _clean(entry.text):
            self._texts.setdefault(token_id, entry.text)
        return token_id

    def _lookup_id(self, text: str) -> int:
        if self.caps.tokenize is not None and text:
            answer = self._quiet("POST", self.caps.tokenize, kinds.tokenize_body(self.kind, self.model, text, special=False))
            tokens = answer.get("tokens") if isinstance(answer, dict) else None
            if isinstance(tokens, list) and len(tokens) == 1 and isinstance(tokens[0], int):
                return tokens[0]
        return self._placeholder(text)

    def _placeholder(self, text: str) -> int:
        """A local negative id for a token string the server gave no id for."""
        return self._placeholders.setdefault(text, -2 - len(self._placeholders))

    def _resolve(self, token_id: int) -> int:
        """A placeholder handed out during a stream, looked up now that the stream is over."""
        if token_id >= 0:
            return token_id
        text = self._pieces.get(token_id, "")
        real = self._ids_of_text.get(text)
        if real is None:
            real = self._ids_of_text[text] = self._lookup_id(text)
        return real if real >= 0 else token_id

    # --- one completion call -------------------------------------------------------------------
    def new_cache(self) -> PrefixCache:
        return PrefixCache()

    def forward(self, ids: Sequence[int], cache: PrefixCache | None = None, top_k: int = 8) -> Scores:
        """The top-k of the next-token distribution after `ids`: one call, max_tokens 1, logprobs k."""
        return self.complete(ids, top_k, cache=cache is not None).scores

    def complete(self, ids: Sequence[int], top_k: int, sampler: Sampler | None = None, seed: int | None = None,
                 cache: bool = True) -> Answer:
        step = self._step_of(ids)
        prompt: list[int] | str = list(ids) if self.sends_ids else self._text_of(list(ids))
        start = time.perf_counter()
        data, k = self._post_completion(prompt, top_k, step, sampler=sampler, seed=seed, cache=cache)
        request_ms = (time.perf_counter() - start) * 1000
        if self.kind.native:
            logprobs, finish = data.get("completion_probabilities"), "stop" if data.get("stop_type") == "eos" else data.get("stop_type")
        else:
            choice = (data.get("choices") or [{}])[0]
            logprobs, finish = choice.get("logprobs"), choice.get("finish_reason")
        found = shapes.positions(logprobs)
        if not found or not found[0].top:
            raise ServerError(f"the {self.caps.kind} server at {self.root} returned no logprobs for {self.caps.endpoint}: "
                              "it may not support them; tokenloop needs logprobs to show the distribution", step)
        position = found[0]
        top = position.top
        if all(math.isinf(e.logprob) for e in top):
            raise ServerError("every logprob the server returned is -inf: there is no distribution to show", step)
        token_ids = [self._id_of(e) for e in top]
        pick = self._server_pick(position, data)
        if finish == "stop" and pick is not None:
            self.eos_ids = self.eos_ids | {pick}  # the server stopped on its own pick: an end token, by id from now on
        extra = {"request_ms": request_ms, "sent": "ids" if self.sends_ids else "text", "returned": len(top)}
        extra.update(shapes.server_numbers(data))
        if "server_ms" in extra:
            extra["client_ms"] = max(0.0, request_ms - extra["server_ms"])
        if k < top_k:
            extra["logprobs_cap"] = k
        if position.missing:
            extra["missing_logprobs"] = position.missing
        if sampler is not None and not sampler.greedy and self.kind.after_temperature and sampler.temperature != 1:
            extra["distribution"] = "after temperature"
        tokens_in = extra.get("server_prompt_tokens")
        if tokens_in is None:
            tokens_in = extra.get("prompt_tokens", len(ids)) - extra.get("cached_tokens", 0)
        scores = Scores(torch.tensor([e.logprob for e in top], dtype=torch.float32), torch.tensor(token_ids), tokens_in, extra)
        return Answer(scores, position, pick, finish)

    def _server_pick(self, position: shapes.Position, data: dict) -> int | None:
        choice = (data.get("choices") or [{}])[0] if not self.kind.native else {}
        returned = choice.get("token_ids")  # vLLM's return_token_ids
        if isinstance(returned, list) and returned and isinstance(returned[0], int):
            return returned[0]
        return self._id_of(position.chosen) if position.chosen is not None else None

    def _post_completion(self, prompt, k: int, step: int | None, **options) -> tuple[dict, int]:
        """POST one completion; above the server's logprobs cap, lower k to the cap and go on."""
        k = min(k, self.max_top_k) if self.max_top_k else k
        body = kinds.completion_body(self.kind, self.model, prompt, k, **options)
        try:
            return self._call("POST", self.caps.endpoint, body, step), k
        except Refused as refused:
            self._raise_for_context(refused, step)
            cap = shapes.logprobs_cap(refused.server_message)
            if cap is None or cap >= k or cap < 1:
                raise
            self._lower_cap(cap)
            body = kinds.completion_body(self.kind, self.model, prompt, cap, **options)
            return self._call("POST", self.caps.endpoint, body, step), cap

    def _lower_cap(self, cap: int) -> None:
        self.max_top_k = self.caps.max_logprobs = cap
        self._note(f"the server allows at most {cap} logprobs per token (vLLM: --max-logprobs raises it): showing the top {cap}")

    def _raise_for_context(self, refused: Refused, step: int | None) -> None:
        if not shapes.is_context_error(refused.server_message):
            return
        limit = shapes.context_limit(refused.server_message)
        if limit:
            self.context_length = self.caps.context_length = limit
        if step is None or step == 1:
            raise UsageError(f"the prompt is too long for the server's context ({refused.server_message}): shorten it") from None
        raise ServerError(f"the sequence outgrew the server's context ({refused.server_message}): lower --max-new", step) from None

    # --- probe: what the server really does, tried live ---------------------------------------
    def probe(self, text: str = "The capital of France is") -> Capabilities:
        """Try the things the loop relies on, once: tokenizer, ids as prompt, logprobs cap, shape."""
        caps, checks = self.caps, self.caps.checks
        ids = self.encode(text)
        checks["prompt_tokens"] = len(ids)
        if caps.detokenize is not None:
            checks["detokenize_round_trip"] = self.decode(ids) == text
        if caps.tokenize is not None:
            try:  # a list of ids as the prompt: the token-id loop's one requirement
                self._call("POST", caps.endpoint, kinds.completion_body(self.kind, self.model, ids, 1))
                caps.prompt_ids = self.sends_ids = True
            except Refused as refused:
                caps.prompt_ids = self.sends_ids = False
                checks["ids_refused"] = f"{refused.status}: {refused.server_message[:70]}"
        prompt = ids if self.sends_ids else text
        start = time.perf_counter()
        try:
            data = self._call("POST", caps.endpoint, kinds.completion_body(self.kind, self.model, prompt, PROBE_K))
        except Refused as refused:
            cap = shapes.logprobs_cap(refused.server_message)
            if cap is None:
                raise
            checks["logprobs_refused"] = refused.server_message
            caps.max_logprobs = self.max_top_k = cap
            data = self._call("POST", caps.endpoint, kinds.completion_body(self.kind, self.model, prompt, cap))
        checks["request_ms"] = (time.perf_counter() - start) * 1000
        logprobs = data.get("completion_probabilities") if self.kind.native else ((data.get("choices") or [{}])[0]).get("logprobs")
        found = shapes.positions(logprobs)
        returned = len(found[0].top) if found else 0
        checks["logprobs_asked"], checks["logprobs_returned"] = min(PROBE_K, caps.max_logprobs or PROBE_K), returned
        checks["shape"] = shapes.shape_of(logprobs)
        checks["keyed_by"] = shapes.keyed_by(found[0]) if found else "nothing"
        if caps.max_logprobs is None and 0 < returned < PROBE_K and checks["keyed_by"] != "text":
            caps.max_logprobs = self.max_top_k = returned  # answered fewer than asked, without a word
        checks["reports"] = sorted(k for k in shapes.server_numbers(data) if k in ("server_ms", "cached_tokens", "prompt_tokens"))
        if found and found[0].top:
            self._measure_distribution(prompt, found[0].top[0])
        return caps

    def _measure_distribution(self, prompt, greedy_top: shapes.Entry, temperature: float = 0.5) -> None:
        """Raw or processed logprobs, measured: ask again at T=0.5. A raw distribution gives the
        favourite the same logprob as the greedy call; one taken after the sampler sharpens it."""
        k = min(PROBE_K, self.max_top_k or PROBE_K)
        body = kinds.completion_body(self.kind, self.model, prompt, k, sampler=Sampler(temperature), seed=0)
        try:
            data = self._call("POST", self.caps.endpoint, body)
        except ServerError:
            return  # the documented default stands
        logprobs = data.get("completion_probabilities") if self.kind.native else ((data.get("choices") or [{}])[0]).get("logprobs")
        found = shapes.positions(logprobs)
        same = [e.logprob for e in (found[0].top if found else []) if (e.id, e.text) == (greedy_top.id, greedy_top.text)]
        if not same or not math.isfinite(same[0]) or not math.isfinite(greedy_top.logprob):
            return
        shift = same[0] - greedy_top.logprob
        self.caps.checks["favourite_logprob_greedy_t05"] = [round(greedy_top.logprob, 4), round(same[0], 4)]
        if abs(shift) > 1e-3:
            self.caps.distribution = (f"processed: measured, the favourite's logprob moved from {greedy_top.logprob:.3f} to "
                                      f"{same[0]:.3f} at T={temperature}, so the server reports its distribution after "
                                      f"temperature/top-k/top-p (e.g. vLLM --logprobs-mode processed_logprobs)")
        else:
            documented = self.caps.distribution.removeprefix("raw: ")
            self.caps.distribution = f"raw (measured: the same logprobs greedy and at T={temperature}): {documented}"

    # --- the loops -----------------------------------------------------------------------------
    def generate(self, ids: Sequence[int], max_new: int = 32, sampler: Sampler = GREEDY, cache: bool = True,
                 show: int = 8, seed: int | None = None) -> Iterator[Step | Done]:
        """The loop this backend runs for `tokenloop run`: streamed, server-picked, or picked here."""
        if self.stream:
            return stream(self, ids, max_new, sampler, show, seed)
        if self.server_sample:
            return server_picks(self, ids, max_new, sampler, cache, show, seed)
        return client_picks(self, ids, max_new, sampler, cache, show, seed)


def _clean(text: str) -> bool:
    """A server token string that reads as the token's text (not '', '\ufffd', 'bytes:..', 'token_id:N')."""
    return bool(text) and "\ufffd" not in text and not text.startswith("bytes:") and not shapes.TOKEN_ID_KEY.match(text)


def _reason(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:120]


def _step_records(backend: ServerBackend, scores: Scores, chosen_id: int, chosen_logprob: float, show: int):
    """(chosen, top) Candidates from a server's top-k, the same way the embedded loop makes them."""
    from ..loop import Distribution, candidates

    top = candidates(backend, scores, Distribution.raw(scores), show)
    chosen = Candidate(chosen_id, backend.token_text(chosen_id), math.exp(chosen_logprob), chosen_logprob)
    return chosen, top


def client_picks(backend: ServerBackend, ids, max_new, sampler, cache, show, seed) -> Iterator[Step | Done]:
    """The embedded loop, unchanged; a sampled pick is labelled as made over the returned top-k."""
    from ..loop import generate

    for record in generate(backend, ids, max_new, sampler, cache=cache, show=show, seed=seed):
        if isinstance(record, Step) and not sampler.greedy:
            label = f"{record.sampler} over the server's top-{record.extra.get('returned', show)}, renormalised"
            record = dataclasses.replace(record, sampler=label)
        yield record


def server_picks(backend: ServerBackend, ids, max_new=32, sampler=GREEDY, cache=True, show=8, seed=None) -> Iterator[Step | Done]:
    """One call per token, but the server samples (--server-sample): its own pick is appended."""
    if max_new < 1:
        raise UsageError(f"--max-new must be at least 1, not {max_new}")
    prompt, ids = list(ids), list(ids)
    stop, start = "max_new", time.perf_counter()
    for step in range(1, max_new + 1):
        if len(ids) >= backend.context_length:
            stop = "context"
            break
        t0 = time.perf_counter()
        answer = backend.complete(ids, show, sampler=sampler, seed=None if seed is None else seed + step, cache=cache)
        if answer.server_pick is None or answer.position.chosen is None:
            raise ServerError("the server did not say which token it picked", step)
        chosen, top = _step_records(backend, answer.scores, answer.server_pick, answer.position.chosen.logprob, show)
        ms = (time.perf_counter() - t0) * 1000
        label = f"{sampler.describe()} by the server"
        yield Step(step, len(ids), chosen, top, ms, cache, answer.scores.tokens_in, None, label, answer.scores.extra)
        ids.append(chosen.id)
        if chosen.id in backend.eos_ids:
            stop = "eos"
            break
    seconds = time.perf_counter() - start
    new = ids[len(prompt):]
    yield Done(backend.decode(new), new, stop, len(new) / seconds if seconds > 0 else 0.0, seconds, prompt)


def stream(backend: ServerBackend, ids, max_new=32, sampler=GREEDY, show=8, seed=None) -> Iterator[Step | Done]:
    """One request, `stream: true`: the server runs the whole loop and sends each token with its
    logprobs. `ms` is the client-side time since the previous token (the first includes the prefill)."""
    if max_new < 1:
        raise UsageError(f"--max-new must be at least 1, not {max_new}")
    prompt = list(ids)
    new: list[int] = []
    finish: list[str | None] = [None]
    start = time.perf_counter()
    backend._hold = backend.kind.interrupts
    try:
        yield from _streamed_steps(backend, prompt, new, finish, max_new, sampler, show, seed)
    finally:
        backend._hold = False
    new = [backend._resolve(i) for i in new]
    if finish[0] == "stop" and new:
        backend.eos_ids = backend.eos_ids | {new[-1]}  # the server stopped on it: an end token
    seconds = time.perf_counter() - start
    if new and new[-1] in backend.eos_ids:
        stop = "eos"
    else:
        stop = "max_new" if len(new) >= max_new else ("eos" if finish[0] == "stop" else "context")
    yield Done(backend.decode(new), new, stop, len(new) / seconds if seconds > 0 else 0.0, seconds, prompt)


def _streamed_steps(backend: ServerBackend, prompt, new, finish, max_new, sampler, show, seed) -> Iterator[Step]:
    """A `Step` per streamed token; appends to `new` and sets `finish[0]` as it goes."""
    sent: list[int] | str = prompt if backend.sends_ids else backend._text_of(prompt)
    start = last = time.perf_counter()
    for chunk in _events(backend, sent, show, max_new, sampler, seed):
        if backend.kind.native:
            logprobs = chunk.get("completion_probabilities")
            finish[0] = "stop" if chunk.get("stop_type") == "eos" else finish[0]
        else:
            choice = (chunk.get("choices") or [{}])[0]
            logprobs, finish[0] = choice.get("logprobs"), choice.get("finish_reason") or finish[0]
        for position in shapes.positions(logprobs):
            step = len(new) + 1
            if position.chosen is None or not position.top:
                raise ServerError("the streamed token came without logprobs", step)
            now = time.perf_counter()
            top = position.top
            extra = {"mode": "stream", "sent": "ids" if backend.sends_ids else "text", "returned": len(top)}
            if step == 1:
                extra["ttft_ms"] = (now - start) * 1000
            scores = Scores(torch.tensor([e.logprob for e in top], dtype=torch.float32),
                            torch.tensor([backend._id_of(e) for e in top]), len(prompt) if step == 1 else 1, extra)
            chosen, cands = _step_records(backend, scores, backend._id_of(position.chosen), position.chosen.logprob, show)
            yield Step(step, len(prompt) + len(new), chosen, cands, (now - last) * 1000, True, scores.tokens_in, None,
                       f"{sampler.describe()} by the server, streamed", extra)
            last = now
            new.append(chosen.id)


def _events(backend: ServerBackend, prompt, k: int, max_new: int, sampler: Sampler, seed) -> Iterator[dict]:
    """The JSON objects of a server-sent-events stream (`data: {...}` lines up to `data: [DONE]`)."""
    k = min(k, backend.max_top_k) if backend.max_top_k else k
    for attempt in range(2):
        body = kinds.completion_body(backend.kind, backend.model, prompt, k, max_tokens=max_new,
                                     sampler=None if sampler.greedy else sampler, seed=seed, stream=True)
        got = 0
        try:
            # One stream per connection: some servers close it after the stream, so it is not reused.
            with backend.client.stream("POST", backend.caps.endpoint, json=body, headers={"Connection": "close"}) as response:
                if response.status_code >= 400:
                    response.read()
                    refused = backend._refused(response, backend.caps.endpoint, 1)
                    backend._raise_for_context(refused, 1)
                    cap = shapes.logprobs_cap(refused.server_message)
                    if attempt == 0 and cap is not None and 1 <= cap < k:
                        backend._lower_cap(cap)
                        k = cap
                        continue
                    raise refused
                for line in response.iter_lines():
                    if not line.startswith(("data:", "error:")):
                        continue
                    payload = line.split(":", 1)[1].strip()
                    if payload == "[DONE]":
                        return
                    chunk = _json(payload, got + 1)
                    if line.startswith("error:") or "error" in chunk:
                        error = chunk.get("error", chunk)
                        said = shapes.error_message(0, {"error": error})
                        raise ServerError(f"the server stopped the stream: {said}", got + 1)
                    got += _positions_in(backend, chunk)
                    yield chunk
                return
        except httpx.TimeoutException:
            raise ServerError(f"{backend.root} sent nothing for {backend.timeout:g} s: the server is stuck or overloaded "
                              "(raise --server-timeout to wait longer)", got + 1) from None
        except httpx.HTTPError as e:
            raise ServerError(f"the stream from {backend.root} broke off ({_reason(e)}): the server may have crashed", got + 1) from None


def _positions_in(backend: ServerBackend, chunk: dict) -> int:
    if backend.kind.native:
        return len(chunk.get("completion_probabilities") or [])
    return len(shapes.positions(((chunk.get("choices") or [{}])[0]).get("logprobs")))


def _json(payload: str, step: int) -> dict:
    import json

    try:
        value = json.loads(payload)
    except ValueError:
        raise ServerError(f"the stream sent something that is not JSON: {payload[:80]!r}", step) from None
    return value if isinstance(value, dict) else {}

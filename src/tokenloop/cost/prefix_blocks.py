"""Lesson 8 in this process: a prefix cache kept in blocks, on the embedded model's from-scratch forward.

vLLM keeps the KV cache in fixed-size blocks and names each full block by a hash of its tokens and
of the block before it (so, in effect, of everything before it). A new request walks its prompt a
block at a time and reuses blocks while the hashes match; the first miss ends the walk. Two rules
follow, and this module has both, so the embedded model gives the server's answers:

- only full blocks are shared, and the last prompt token is always computed again (its logits give
  the first answer token), so a prompt of n tokens can reuse at most ⌊(n − 1) ÷ block⌋ blocks;
- a changed token ends the match at its block, so a change near the start shares nothing.

`PrefixCache` holds blocks of per-layer keys and values, evicts the least recently used when full,
and mixes a `salt` into the first hash (vLLM's `cache_salt`: another tenant's blocks never match).
`send` runs one prompt through it and times the forward over the tokens it could not reuse; the
lesson's steps (`grow`, `repeat`, `two_blocks`, `one_word`, `survival`, `side_channel`) are made of it.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from ..measure.filler import TEXT
from ..model import from_scratch

BLOCK = 16  # vLLM's default block on GPUs; the lesson passes the connected server's where it has one


def block_hashes(ids: list[int], block: int, salt: str | None = None) -> list[str]:
    """One hash per full block: its tokens and the hash before it (the first block: the salt)."""
    out, parent = [], f"salt:{salt}"
    for start in range(0, len(ids) - block + 1, block):
        parent = hashlib.sha256(f"{parent}|{ids[start : start + block]}".encode()).hexdigest()[:16]
        out.append(parent)
    return out


@dataclass
class PrefixCache:
    """Blocks of keys and values by hash, least recently used first; `capacity` in blocks (None: no limit)."""

    block: int = BLOCK
    capacity: int | None = None
    blocks: OrderedDict = field(default_factory=OrderedDict)  # hash -> per layer (k, v), each (G, block, d)
    queries: int = 0  # prompt tokens looked up, as vLLM's prefix_cache_queries_total counts them
    hits: int = 0  # of those, tokens found (prefix_cache_hits_total)
    evicted: int = 0

    def lookup(self, ids: list[int], salt: str | None = None) -> tuple[int, from_scratch.KVCache | None]:
        """Tokens reused for this prompt, and a cache holding their keys and values."""
        usable = block_hashes(ids[:-1], self.block, salt)  # the last token is always computed
        found = []
        for h in usable:
            if h not in self.blocks:
                break  # the first miss ends the match: every later block hashes a different past
            self.blocks.move_to_end(h)
            found.append(self.blocks[h])
        self.queries += len(ids)
        self.hits += len(found) * self.block
        if not found:
            return 0, None
        layers = [
            (torch.cat([b[i][0] for b in found], dim=1), torch.cat([b[i][1] for b in found], dim=1))
            for i in range(len(found[0]))
        ]
        return len(found) * self.block, from_scratch.KVCache(layers)

    def store(self, ids: list[int], cache: from_scratch.KVCache, salt: str | None = None) -> None:
        """Keep every full block of a computed prompt, evicting the least recently used beyond capacity."""
        for n, h in enumerate(block_hashes(ids, self.block, salt)):
            if h in self.blocks:
                self.blocks.move_to_end(h)
                continue
            a, b = n * self.block, (n + 1) * self.block
            self.blocks[h] = [(k[:, a:b].clone(), v[:, a:b].clone()) for k, v in cache.layers]
            while self.capacity is not None and len(self.blocks) > self.capacity:
                self.blocks.popitem(last=False)
                self.evicted += 1


def send(model: from_scratch.Model, store: PrefixCache, ids: list[int], salt: str | None = None) -> dict:
    """One prompt, as a server runs it: reuse what the cache holds, compute the rest, keep its blocks."""
    start = time.perf_counter()
    cached, cache = store.lookup(ids, salt)
    cache = cache or from_scratch.new_cache(model)
    logits = from_scratch.prefill(model, ids[cached:], cache)
    ms = (time.perf_counter() - start) * 1000
    store.store(ids, cache, salt)
    return {
        "prompt_tokens": len(ids),
        "cached_tokens": cached,
        "computed_tokens": len(ids) - cached,
        "ms": ms,
        "logits": logits,
    }


def public(sent: dict) -> dict:
    return {k: v for k, v in sent.items() if k != "logits"}


def prompt(encode, n: int, tag: str = "") -> list[int]:
    """n tokens of the filler text, opened by `tag` (a number makes a prompt no cache has seen)."""
    ids = encode(f"{tag} {TEXT}" if tag else TEXT)
    while len(ids) < n:
        ids += encode(TEXT)
    return ids[:n]


def fresh() -> str:
    return str(random.randrange(10**9))


def grow(model: from_scratch.Model, ids: list[int], tokens: int, block: int, pool: int, on_progress=None) -> dict:
    """Step 1: generate `tokens` greedily, one at a time, counting the blocks a paged cache hands out
    (⌈length ÷ block⌉) beside what reserving `pool` blocks up front would hold."""
    cache = from_scratch.new_cache(model)
    logits = from_scratch.prefill(model, ids, cache)
    samples, start = [], time.perf_counter()
    for i in range(tokens):
        samples.append(
            {"tokens": cache.length, "blocks": math.ceil(cache.length / block), "t_s": time.perf_counter() - start}
        )
        logits = from_scratch.decode_one(model, int(logits.argmax()), cache)
        if on_progress:
            on_progress(i + 1, tokens)
    samples.append(
        {"tokens": cache.length, "blocks": math.ceil(cache.length / block), "t_s": time.perf_counter() - start}
    )
    jumps = [s for a, s in zip(samples, samples[1:]) if s["blocks"] > a["blocks"]]
    per_token = sum(k.nbytes + v.nbytes for k, v in cache.layers) / cache.length
    return {
        "block_size": block,
        "pool_blocks": pool,
        "prompt_tokens": len(ids),
        "generated": tokens,
        "samples": samples,
        "jumps": [{"tokens": s["tokens"], "blocks": s["blocks"], "t_s": s["t_s"]} for s in jumps],
        "first_blocks": samples[0]["blocks"],
        "last_blocks": samples[-1]["blocks"],
        "bytes_per_block": per_token * block,
        "reserved_up_front_bytes": per_token * block * pool,
    }


def repeat(model: from_scratch.Model, encode, n: int, block: int) -> dict:
    """Step 2: the same prompt twice; the second reuses the first's blocks. A warm-up prompt first
    (not counted); the two answers' logits compared, since a cache that changed them would be wrong."""
    store = PrefixCache(block)
    send(model, store, prompt(encode, n, fresh()))  # warm-up, not counted
    ids = prompt(encode, n, fresh())
    before = (store.queries, store.hits)
    first, second = send(model, store, ids), send(model, store, ids)
    return {
        "block_size": block,
        "first": public(first),
        "second": public(second),
        "speedup": first["ms"] / second["ms"],
        "delta_queries": store.queries - before[0],
        "delta_hits": store.hits - before[1],
        "max_abs_diff": float((first["logits"] - second["logits"]).abs().max()),
    }


def predicted(n: int, block: int) -> int:
    """Tokens a repeat of an n-token prompt can reuse: whole blocks of the first n − 1."""
    return (n - 1) // block * block


def twice(model, encode, n: int, block: int) -> dict:
    store, ids = PrefixCache(block), prompt(encode, n, fresh())
    send(model, store, ids)
    again = send(model, store, ids)
    return {"tokens": n, "cached_tokens": again["cached_tokens"], "predicted": predicted(n, block)}


def two_blocks(model: from_scratch.Model, encode, block: int) -> dict:
    """Step 3: a prompt of exactly two blocks, and one of two blocks and a token, each sent twice."""
    return {"block_size": block, "rows": [twice(model, encode, n, block) for n in (2 * block, 2 * block + 1)]}


def changed(ids: list[int], position: int) -> list[int]:
    """The prompt with the token at `position` replaced by another token of the text."""
    other = next(t for t in ids if t != ids[position])
    return ids[:position] + [other] + ids[position + 1 :]


def one_word(model: from_scratch.Model, encode, n: int, block: int, from_end: int = 8) -> dict:
    """Step 4: the prompt cached, then sent with its first token changed, and with one near the end."""
    store, ids = PrefixCache(block), prompt(encode, n, fresh())
    base = send(model, store, ids)
    rows = []
    for name, position in (("first", 0), ("near the end", n - from_end)):
        sent = send(model, store, changed(ids, position))
        rows.append({"change": name, "position": position, **public(sent), "predicted": position // block * block})
    return {"block_size": block, "tokens": n, "base": public(base), "rows": rows}


def survival(model: from_scratch.Model, encode, n: int, block: int, capacity: int, fractions=(0.25, 0.5, 1, 2)) -> dict:
    """Step 5: the prompt P cached in a cache of `capacity` blocks; then other, unique prompts
    totalling a fraction of the cache, and P again, for each fraction."""
    store, ids = PrefixCache(block, capacity), prompt(encode, n, fresh())
    send(model, store, ids)
    each = min(n, capacity * block // 2)
    rounds = []
    for fraction in fractions:
        others = max(1, math.ceil(fraction * capacity * block / each))
        for _ in range(others):
            send(model, store, prompt(encode, each, fresh()))
        again = send(model, store, ids)
        rounds.append(
            {
                "fraction": fraction,
                "other_requests": others,
                "other_tokens": others * each,
                "cached_tokens": again["cached_tokens"],
                "ms": again["ms"],
            }
        )
    return {
        "block_size": block,
        "capacity_blocks": capacity,
        "capacity_tokens": capacity * block,
        "prompt_tokens": n,
        "rounds": rounds,
        "evicted_blocks": store.evicted,
        "most": predicted(n, block),
    }


def side_channel(model: from_scratch.Model, encode, n: int, block: int) -> dict:
    """Step 6: a victim sends P; a probe times P against another prompt of the same length; then the
    same with a salt per tenant, and the victim's own re-send."""
    store = PrefixCache(block)
    send(model, store, prompt(encode, n, fresh()))  # warm-up, not counted
    secret = prompt(encode, n, fresh())
    send(model, store, secret)  # the victim
    shared = {
        "probe_same": public(send(model, store, secret)),
        "probe_other": public(send(model, store, prompt(encode, n, fresh()))),
    }
    secret = prompt(encode, n, fresh())
    send(model, store, secret, salt="tenant-a")  # the victim, salted
    salted = {
        "probe_same": public(send(model, store, secret, salt="tenant-b")),
        "owner_again": public(send(model, store, secret, salt="tenant-a")),
    }
    return {"block_size": block, "tokens": n, "shared": shared, "salted": salted}

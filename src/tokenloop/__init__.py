"""tokenloop: watch and measure what an LLM does on every call, one token at a time."""

__version__ = "0.1.0"

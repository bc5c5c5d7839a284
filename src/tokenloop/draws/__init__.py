"""Lesson 6's measurements: what the sampler does to one distribution, and what it does not.

- `embedded`: on the model in this process, the full vocabulary's logits: the same logits at any
  temperature, softmax(logits / T) for one token, seeded draws against the top-5 mass, the tokens
  top-p keeps, and one prompt alone against the same prompt in a padded batch.

May import: the foundations, `model`, `backends`, `measure`. Not the loop.
"""

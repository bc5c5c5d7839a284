"""Training beside inference: training changes the weights (once, costly); inference runs them frozen.

- `teach`: teach a copy of the embedded model one fact, step by step, and show what changed.
- `cost`: a training step's cost beside an inference forward, measured and estimated.

May import: the foundations, `model`, `backends`, `measure`, `loop`.
"""

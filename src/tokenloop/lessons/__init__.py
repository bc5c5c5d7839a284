"""The lessons as documents: their words live in `dayNN.yaml` beside this file (a next lesson is a
new file), and this package loads, checks and renders them for the page, the CLI and the teacher.

- `content`: loads a lesson file and checks it (step kinds, honesty tags, links), once per process.
- `markdown`: a lesson as one Markdown document for your own AI, with its live numbers.
- `markdown_live`: how each live result reads in that document.
- `passages`: the lesson's passages and a BM25 search over them (the teacher's citations).

May import: everything below the edges (the foundations, `model`, `backends`, `measure`, `loop`,
`cost`, `latency`, `training`, the views). Never `web` or `commands`, which read it.
"""

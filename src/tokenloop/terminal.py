"""The terminal view of the loop: bars, the pick, the growing text.

On a terminal it draws with rich; piped (not a TTY) it prints one plain line per step. Both read
the same `Step` / `Done` / `NextToken` records that `--json` writes.

Text from a server or a model (token strings, a model's name, its answer) never reaches the
terminal raw: `visible` and `printable` write its control characters as escapes, `titled` keeps
Rich from reading markup in it (it goes in a `Text`, never in a markup string), and `SafeConsole`, the console every command prints
through, escapes whatever control character still reaches it.
"""

from __future__ import annotations

from rich.console import Console
from rich.segment import Segment
from rich.text import Text

from .charts import bar
from .errors import printable
from .records import Candidate, Done, NextToken, Step

BAR_WIDTH = 30
TAIL_CHARS = 70


def glyphs(token: str) -> str:
    """A token's spaces and newlines as marks: a token is not a word."""
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "→").replace("\r", "⏎") or "∅"


def visible(token: str) -> str:
    """A token as the bars show it: its spaces and newlines marked, any other control character
    written as an escape such as \\x1b."""
    return printable(glyphs(token))


def quoted(token: str) -> str:
    """A token as a plain line shows it: marked and quoted by `repr`, which escapes every
    character that doesn't print (controls, bidi marks, lone surrogates)."""
    return repr(glyphs(token))


def titled(title: str, rest: str) -> Text:
    """A bold title, then text that may quote a server or a model (its name, its URL): printable,
    and never read as Rich markup (`evil[/]model` is a name, not a closing tag). Server text never
    goes inside a markup string: Rich's own `escape` doesn't round-trip a backslash before `[`."""
    return Text.assemble((printable(title), "bold"), printable(rest))


class SafeConsole(Console):
    """A Rich console that writes no control character it was handed as text: the styles and
    cursor moves Rich makes itself still go out, a server's escape sequence doesn't. (The net
    under `printable`: it works on Rich's rendered segments, a Rich internal a test pins.)"""

    def _render_buffer(self, buffer):
        return super()._render_buffer(
            segment if segment.control else Segment(printable(segment.text, lines=True), segment.style)
            for segment in buffer
        )


def percent(p: float) -> str:
    return f"{100 * p:5.1f}%" if p >= 0.0005 else f"{100 * p:.0e}%"


def bars(candidates: list[Candidate], chosen_id: int | None, other: float | None) -> Text:
    text = Text()
    width = max([len(visible(c.token)) for c in candidates] + [7])
    for c in candidates:
        mark = "▶ " if c.id == chosen_id else "  "
        style = "bold green" if c.id == chosen_id else ""
        text.append(mark, style="bold green")
        text.append(f"{visible(c.token):<{width}} ", style=style or "cyan")
        text.append(f"{percent(c.prob)} ", style=style)
        text.append(bar(c.prob, BAR_WIDTH), style="green" if style else "blue")
        text.append(f"  id {c.id}\n", style="dim")
    if other is not None and other > 0.0005:
        text.append(f"  {'(other)':<{width}} {percent(other)} ", style="dim")
        text.append(bar(other, BAR_WIDTH, "░") + "\n", style="dim")
    return text


class LoopView:
    """Consumes the loop's records and draws them. One per run."""

    def __init__(self, console: Console, prompt: str = "", fancy: bool | None = None):
        self.console = console
        self.fancy = console.is_terminal if fancy is None else fancy
        self.prompt = prompt
        self.text = prompt

    def next_token(self, result: NextToken) -> None:
        if not self.fancy:
            tops = ", ".join(f"{quoted(c.token)} {percent(c.prob).strip()}" for c in result.top)
            self.console.print(
                f"next after {len(result.prompt_ids)} tokens ({result.distribution}): {tops}",
                markup=False,
                highlight=False,
            )
            return
        head = Text(
            f"{printable(result.model)} · {len(result.prompt_ids)} prompt tokens · {result.ms:.1f} ms · ", style="bold"
        )
        head.append(f"{result.distribution} distribution (softmax of the logits), top {len(result.top)}", style="bold")
        self.console.print(head)
        self.console.print(bars(result.top, None, result.other), end="")

    def step(self, step: Step) -> None:
        cache = "KV cache" if step.cache else "no cache"
        if not self.fancy:
            tops = ", ".join(f"{quoted(c.token)} {percent(c.prob).strip()}" for c in step.top)
            line = (
                f"step {step.step} pos {step.position} {step.ms:.1f}ms {cache} in={step.tokens_in} "
                f"pick {quoted(step.chosen.token)} {percent(step.chosen.prob).strip()} ({step.sampler}) | {tops}"
            )
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
            self.text += step.chosen.token
            return
        head = Text(f"step {step.step}", style="bold")
        head.append(
            f" · position {step.position} · {step.ms:.1f} ms · {cache}, {step.tokens_in} token(s) in · ", style="dim"
        )
        head.append(f"raw distribution · pick: {step.sampler}", style="dim")
        self.console.print(head)
        self.console.print(bars(step.top, step.chosen.id, step.other), end="")
        if step.processed is not None:
            self.console.print(Text(f"  after the sampler ({step.sampler}):", style="dim"))
            self.console.print(bars(step.processed, step.chosen.id, None), end="")
        tail = self.text[-TAIL_CHARS:]
        line = Text("  " + ("…" if len(self.text) > TAIL_CHARS else ""), style="dim")
        line.append(printable(tail.replace("\n", "↵")))
        line.append(visible(step.chosen.token), style="bold black on green")
        self.console.print(line)
        self.console.print()
        self.text += step.chosen.token

    def done(self, done: Done) -> None:
        why = {
            "eos": "the model emitted its end token",
            "max_new": "--max-new reached",
            "context": "the context is full",
        }[done.stop]
        summary = f"{len(done.ids)} tokens in {done.seconds:.2f} s · {done.tokens_per_s:.1f} tokens/s · stopped: {done.stop} ({why})"
        if not self.fancy:
            self.console.print(summary, markup=False, highlight=False)
            self.console.print(f"text: {done.text!r}", markup=False, highlight=False, soft_wrap=True)
            return
        self.console.rule("result")
        self.console.print(
            Text(printable(self.prompt, True), style="dim") + Text(printable(done.text, True), style="bold")
        )
        self.console.print(Text(summary, style="bold"))


def progress_bar(what: str):
    """A progress bar on stderr for a long measurement (gone when done, so stdout stays the result)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=SafeConsole(stderr=True),
        transient=True,
    )

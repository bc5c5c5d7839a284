"""Charts of the measurements: matplotlib files (PNG or SVG) and a small chart for the terminal,
drawn with `bar`, the one block bar every terminal view uses (candidates, training, timings).

Every function takes the same JSON-ready dicts the commands print with --json (and the web page
draws), so a chart never shows anything the data doesn't hold. matplotlib is imported only when a
file is drawn; the `Figure` API is used directly (no pyplot state), which is safe in a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError

FORMATS = (".png", ".svg")
EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")  # the full block's left 0/8 .. 7/8
COLORS = {"uncached": "#d1495b", "cached": "#00798c", "stream": "#00798c", "loop": "#d1495b"}


def check_path(path: str | Path) -> Path:
    path = Path(path)
    if path.name.lower() in FORMATS:  # "x/.png": a hidden file with no name, not a .png
        raise UsageError(
            f"--plot {path}: give the chart a name before its ending, e.g. {path.parent / 'chart'}{path.name}"
        )
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot {path}: the chart is written as .png or .svg; give a file name ending in one of them")
    if not path.parent.exists():
        raise UsageError(f"--plot {path}: folder {path.parent} does not exist")
    return path


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.8), dpi=110, layout="constrained")
    return fig, fig.add_subplot()


def _fit_values(fit: dict, xs: Sequence[float]) -> list[float]:
    c = fit.get("c_ms_per_token2") or 0.0
    return [fit["a_ms"] + fit["b_ms_per_token"] * x + c * x * x for x in xs]


def staircase_chart(data: dict, path: str | Path) -> Path:
    """Per-step time against sequence length, both series with their fits and the gap labelled."""
    path = check_path(path)
    fig, ax = _figure()
    series = data["series"]
    xs = [p["length"] for p in series]
    line = [x * data["max_len"] / 100 for x in range(101)]
    top, handles = 0.0, []
    for kind, label in (
        ("uncached", "no cache: all n tokens every step"),
        ("cached", "KV cache: one new token per step"),
    ):
        ys = [p[f"{kind}_ms"] for p in series]
        spread = [p[f"{kind}_spread_ms"] for p in series]
        fit = data["fits"][kind]
        handles.append(
            ax.errorbar(
                xs,
                ys,
                yerr=[[0] * len(ys), spread],
                fmt="o",
                color=COLORS[kind],
                capsize=3,
                label=f"{label} (min of {data['repeats']}; bar: spread)",
            )
        )
        handles += ax.plot(
            line,
            _fit_values(fit, line),
            "-",
            color=COLORS[kind],
            alpha=0.6,
            label=f"   fit {fit['formula']}  (R² {fit['r2']:.2f})",
        )
        top = max(top, *ys, *_fit_values(fit, [data["max_len"]]))
    last = series[-1]
    ax.annotate(
        "",
        xy=(last["length"], last["uncached_ms"]),
        xytext=(last["length"], last["cached_ms"]),
        arrowprops={"arrowstyle": "<->", "color": "0.3"},
    )
    ratio = last["uncached_ms"] / last["cached_ms"]
    ax.text(
        last["length"] * 0.98,
        (last["uncached_ms"] + last["cached_ms"]) / 2,
        f"×{ratio:.1f} at n={last['length']}:\nthe {last['length'] - 1} tokens the\ncache does not run again",
        ha="right",
        va="center",
        fontsize=9,
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8},
    )
    ceiling = top * 1.35  # a wild repeat must not squash the staircase: its bar is cut at the top
    if any(p[f"{k}_ms"] + p[f"{k}_spread_ms"] > ceiling for p in series for k in ("uncached", "cached")):
        ax.text(
            0.99,
            0.99,
            "some spread bars cut at the top",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color="0.4",
        )
    ax.set_xlabel("sequence length n (tokens)")
    ax.set_ylabel("time of one loop step (ms)")
    ax.set_xlim(0, data["max_len"] * 1.03)
    ax.set_ylim(0, ceiling)
    ax.set_title(f"The staircase: {data['model']}, {data.get('threads', '?')} CPU thread(s)")
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path


def latency_chart(data: dict, path: str | Path) -> Path:
    """Total time against output length: one streamed request vs one request per token."""
    path = check_path(path)
    fig, ax = _figure()
    line = [1 + x * (data["max_tokens"] - 1) / 100 for x in range(101)]
    for key, label, part in (("stream", "one streamed request", data), ("loop", "one request per token", data["loop"])):
        fit = part["fit"]
        ax.plot(
            [p["tokens"] for p in part["curve"]],
            [p["total_ms"] for p in part["curve"]],
            ".",
            color=COLORS[key],
            label=f"{label}: time until token n",
        )
        ax.plot(
            line,
            [fit["ttft_ms"] + (n - 1) * fit["itl_ms"] for n in line],
            "-",
            color=COLORS[key],
            alpha=0.6,
            label=f"   fit {fit['formula']}  (R² {fit['r2']:.2f})",
        )
    ax.set_xlabel("output tokens n")
    ax.set_ylabel("time until the last token (ms)")
    ax.set_xlim(0, data["max_tokens"] * 1.03)
    ax.set_ylim(0, None)
    ax.set_title(f"Latency: {Path(data['model']).name} at {data['url']}")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path


def sweep_axis(levels: list[dict]) -> tuple[list[float], str]:
    """A load sweep's x axis: requests at once (--concurrency), or arrivals a second (--rate)."""
    if any(lv.get("rate") is not None for lv in levels):
        return [lv["rate"] for lv in levels], "requests arriving a second"
    return [lv["concurrency"] for lv in levels], "requests at once"


def concurrency_chart(data: dict, path: str | Path) -> Path:
    """Batching's trade: total output tokens/s against each user's median TPOT, one point per level.
    Written beside `path` as <name>-concurrency<suffix>."""
    path = check_path(path)
    path = path.with_name(f"{path.stem}-concurrency{path.suffix}")
    levels = data["concurrency"]["levels"]
    fig, ax = _figure()
    xs, xlabel = sweep_axis(levels)
    ax.plot(xs, [lv["metrics"]["output_throughput"] for lv in levels], "o-", color=COLORS["stream"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("output tokens/s, all requests", color=COLORS["stream"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.set_ylim(0, 1.15 * max(lv["metrics"]["output_throughput"] or 0 for lv in levels) or None)
    per_user = ax.twinx()
    for key, style, label in (("median_tpot_ms", "s--", "TPOT, median user"), ("p90_tpot_ms", "v:", "TPOT, p90")):
        per_user.plot(xs, [lv["metrics"][key] for lv in levels], style, color=COLORS["loop"], label=label)
    per_user.set_ylabel("each user's time per output token (ms)", color=COLORS["loop"])
    per_user.set_ylim(0, 1.15 * max(lv["metrics"]["p90_tpot_ms"] or 0 for lv in levels) or None)
    per_user.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Batching: {Path(data['model']).name} at {data['url']}")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path


def saturation_chart(data: dict, path: str | Path) -> Path:
    """What the server's gauges did at each concurrency level: the most requests running and
    waiting, the KV cache's fullest, and each user's median TPOT; the knee marked. Written beside
    `path` as <name>-saturation<suffix>."""
    path = check_path(path)
    path = path.with_name(f"{path.stem}-saturation{path.suffix}")
    sweep = data["concurrency"]
    levels = sweep["levels"]
    splits = [lv["split"] or {} for lv in levels]
    fig, ax = _figure()
    xs, xlabel = sweep_axis(levels)
    ax.plot(xs, [s.get("running_peak") or 0 for s in splits], "o-", color=COLORS["stream"], label="running (peak)")
    ax.plot(xs, [s.get("waiting_peak") or 0 for s in splits], "s-", color=COLORS["loop"], label="waiting (peak)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("requests at the server")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    kv = ax.twinx()
    kv.plot(
        xs, [100 * (s.get("kv_usage_peak") or 0) for s in splits], "^:", color="#6a3d9a", label="KV cache, % (peak)"
    )
    kv.set_ylabel("KV cache in use, %  ·  TPOT rise, %")
    tpots = [lv["metrics"]["median_tpot_ms"] for lv in levels]
    if tpots and tpots[0]:
        kv.plot(xs, [100 * (t / tpots[0] - 1) if t else 0 for t in tpots], "d--", color="#b15928", label="TPOT rise, %")
    knee = sweep.get("knee") or {}
    if knee.get("level"):
        ax.axvline(knee["level"], color="grey", linestyle="--", alpha=0.7)
        ax.annotate(f"knee: {', '.join(knee['first'])}", (knee["level"], ax.get_ylim()[1] * 0.9), fontsize=8)
    lines = ax.get_legend_handles_labels()[0] + kv.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper left")
    ax.set_title(f"Saturation: {Path(data['model']).name} at {data['url']}")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path


def bar(fraction: float, width: int, fill: str = "█") -> str:
    """`fraction` of `width` characters as a bar, never empty (a tiny value still shows).

    The full block ends in eighths of a character, so that close values still differ; other fills
    (▒, ░) have no eighths and round to whole characters."""
    if fill != "█":
        return fill * max(1, round(fraction * width))
    eighths = max(1, round(fraction * width * 8))
    return "█" * (eighths // 8) + EIGHTHS[eighths % 8]


def bars(rows: Sequence[tuple[str, float, str]], width: int = 40) -> list[str]:
    """A horizontal bar per (label, value in ms, kind), scaled to the largest value."""
    top = max((value for _, value, _ in rows), default=0.0) or 1.0
    shade = {"uncached": "█", "cached": "▒", "loop": "█", "stream": "▒"}
    label_width = max((len(label) for label, _, _ in rows), default=0)
    lines = []
    for label, value, kind in rows:
        drawn = bar(value / top, width, shade.get(kind, "█"))
        lines.append(f"{label:>{label_width}} {drawn} {value:,.{1 if value < 10 else 0}f} ms")
    return lines


def staircase_bars(data: dict, width: int = 40) -> list[str]:
    """The staircase in the terminal: for each length, the uncached step (█) over the cached one (▒)."""
    rows = []
    for p in data["series"]:
        rows.append((f"n={p['length']}", p["uncached_ms"], "uncached"))
        rows.append(("", p["cached_ms"], "cached"))
    return bars(rows, width)

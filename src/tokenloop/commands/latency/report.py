"""`latency --url … --report FILE.html`: the run as one self-contained page an SRE can pass on.

Everything is inside the file: the styles in a <style> element, the charts as inline SVG drawn by
`charts.py` from the same dict `--json` prints, and no script, font, image or link that would fetch
anything. Every number sits beside the definition it was computed by."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path, PurePath

from ...errors import UsageError

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 10px;text-align:right;vertical-align:top}
td.d,th.d{text-align:left;color:#555;max-width:420px}.head{font-weight:bold;padding:.6em;background:#f4f4f4}
.warn{background:#fff3cd}.bar{display:inline-block;height:12px;background:#00798c}.gap{display:inline-block}
svg{max-width:100%;height:auto}
"""


def check_report(path: str | None) -> None:
    if not path:
        return
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report {path}: the report is one HTML file; give a name ending in .html")
    if not target.resolve().parent.is_dir():
        raise UsageError(f"--report {path}: folder {target.parent} does not exist")


def _n(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]], left: tuple[int, ...] = ()) -> str:
    def cell(tag: str, i: int, text: str) -> str:
        return f"<{tag}{' class=d' if i in left else ''}>{html.escape(str(text))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _svg(draw, data: dict) -> str:
    """A chart function of charts.py, drawn as SVG text (no XML prologue) to put inline."""
    with tempfile.TemporaryDirectory() as folder:
        written = draw(data, Path(folder) / "chart.svg")
        text = Path(written).read_text()
    return text[text.find("<svg") :]


def _sections(data: dict) -> list[str]:
    m, defs = data["metrics"], data["definitions"]
    out = []
    warmth = data.get("warmth")
    if warmth:
        warn = " warn" if warmth["headline"].startswith("you measured") else ""
        out.append(f"<p class='head{warn}'>{html.escape(warmth['headline'])}</p>")
    out.append(f"<h2>All {m['completed']} streamed requests, in vllm bench serve's terms (ms)</h2>")
    rows = [
        [name.upper(), *(_n(m[f"{stat}_{name}_ms"]) for stat in ("mean", "median", "std", "p90", "p99")), text]
        for name, text in defs.items()
    ]
    out.append(_table(["metric", "mean", "median", "std", "p90", "p99", "definition"], rows, left=(0, 6)))
    out.append(f"<p>output throughput {_n(m['output_throughput'])} tokens/s, one request at a time</p>")
    account = data.get("account")
    if account:
        stats = account["stats"]
        out.append(f"<h2>Each request's TTFT by the server's own account ({html.escape(account['source'])})</h2>")
        client = stats["client_ttft_ms"]["median"] or 1.0
        bars, start = [], 0.0
        for key, text in account["parts"].items():
            part = max((stats[key] or {}).get("median") or 0.0, 0.0)
            bars.append(
                f"<div>{html.escape(text)}: {_n(part)} ms<br><span class=gap style='width:{500 * start / client:.0f}px'>"
                f"</span><span class=bar style='width:{max(500 * part / client, 1):.0f}px'></span></div>"
            )
            start += part
        out.append(f"<p>client TTFT, median {_n(client)} ms = the parts below, laid end to end</p>" + "".join(bars))
        labels = {"client_ttft_ms": "client TTFT: sent to first token, the client's clock", **account["parts"]}
        rows = [
            [key.removesuffix("_ms"), *(_n((stats[key] or {}).get(s)) for s in ("mean", "median", "p90", "p99")), text]
            for key, text in labels.items()
        ]
        out.append(_table(["part", "mean", "median", "p90", "p99", "what it is"], rows, left=(0, 5)))
    floor = data.get("histogram_floor")
    if floor:
        out.append("<h2>The server's ITL histogram beside the client's gaps (ms)</h2>")
        rows = [
            [f"p{r['q']}", _n(r["server_ms"]), f"{r['bucket_ms'][0]:.4g}-{r['bucket_ms'][1]:.4g}", _n(r["client_ms"]),
             "yes" if r["trusted"] else "no: read the client's"]
            for r in floor["rows"]
        ]  # fmt: skip
        out.append(_table(["", "server (histogram)", "its bucket", "client (every gap)", "trusted?"], rows))
        out.append(f"<p>{html.escape(floor['verdict'])}</p>")
    return out


def _concurrency(data: dict) -> list[str]:
    sweep = data.get("concurrency")
    if not sweep:
        return []
    out = ["<h2>Batching: the same requests, N at a time</h2>"]
    rows = []
    for lv in sweep["levels"]:
        m, split = lv["metrics"], lv["split"] or {}
        rows.append(
            [lv["concurrency"] if lv.get("rate") is None else f"{lv['rate']:g}/s", _n(m["output_throughput"]), _n(m["median_ttft_ms"]), _n(m["median_tpot_ms"]),
             _n(m["p99_itl_ms"]), _n(split.get("running_peak"), 0), _n(split.get("waiting_peak"), 0),
             "–" if split.get("kv_usage_peak") is None else f"{split['kv_usage_peak']:.1%}", split.get("preemptions", "–")]
        )  # fmt: skip
    header = [
        "at once or a second",
        "output tok/s",
        "TTFT median",
        "TPOT median",
        "ITL p99",
        "running",
        "waiting",
        "KV peak",
    ]
    out.append(_table([*header, "preempted"], rows))
    if sweep.get("knee"):
        out.append(f"<p class=head>{html.escape(sweep['knee']['sentence'])}</p>")
    return out


def write_report(data: dict, path: str) -> str:
    from ... import charts

    title = f"Latency: {PurePath(data['model']).name} at {data['url']}"
    parts = [f"<h1>{html.escape(title)}</h1>", *_sections(data), *_concurrency(data), "<h2>Charts</h2>"]
    parts.append(_svg(charts.latency_chart, data))
    if data.get("concurrency"):
        parts += [_svg(charts.concurrency_chart, data), _svg(charts.saturation_chart, data)]
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    Path(path).write_text(page)
    return path

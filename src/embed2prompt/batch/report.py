"""``embed2prompt report``: a results file as one self-contained HTML page.

Pictures first, since people would rather look than read: the distribution of
similarities, prompt similarity against generation similarity, what variants gained,
how long rows took, what failed; then the best and worst prompts. Plots are drawn with
matplotlib and embedded as PNG data, so the page opens offline and can be mailed as one
file. Every text from the results is HTML-escaped (prompts are recovered from
embeddings and can hold anything).
"""

from __future__ import annotations

import base64
import heapq
import html
import io
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embed2prompt.batch.output import read_records
from embed2prompt.batch.summary import RunningSummary
from embed2prompt.errors import InputError

TABLE_ROWS = 10  # best and worst prompts shown
ERROR_KINDS = 10  # most frequent failure messages shown


@dataclass
class _Collected:
    """What the page needs from the results, gathered in one pass."""

    summary: RunningSummary = field(default_factory=RunningSummary)
    prompt_similarity: list[float] = field(default_factory=list)
    similarity: list[float] = field(default_factory=list)
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (prompt, generation)
    gains: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, str] = field(default_factory=dict)
    best: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    worst: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        self.summary.add(record)
        if not record.get("success"):
            message = str(record.get("error") or "unknown error")
            kind = message.split(":")[0][:120]
            self.errors[kind] += 1
            self.error_examples.setdefault(kind, f"row {record.get('id')}: {message}")
            return
        prompt, generation = record.get("prompt_similarity"), record.get("similarity")
        if prompt is not None:
            self.prompt_similarity.append(prompt)
        if generation is not None:
            self.similarity.append(generation)
        if prompt is not None and generation is not None:
            self.pairs.append((prompt, generation))
        if record.get("processing_time") is not None:
            self.latencies.append(record["processing_time"])
        original = generation if generation is not None else prompt
        variant = record.get("best_variant") or {}
        variant_score = variant.get("similarity")
        if variant_score is None:  # not evaluated: the variant's own prompt similarity
            variant_score = variant.get("prompt_similarity")
        if variant_score is not None and original is not None:
            self.gains.append(max(variant_score, original) - original)
        if original is None:
            return
        keep = {key: record.get(key) for key in ("id", "prompt", "prompt_similarity", "similarity")}
        keep["best_variant"] = variant.get("prompt")
        entry_index = self.summary.processed
        _push(self.best, (original, entry_index, keep))
        _push(self.worst, (-original, entry_index, keep))


def _push(
    heap: list[tuple[float, int, dict[str, Any]]], entry: tuple[float, int, dict[str, Any]]
) -> None:
    """Keep the ``TABLE_ROWS`` largest entries (a min-heap of them)."""
    if len(heap) < TABLE_ROWS:
        heapq.heappush(heap, entry)
    elif entry[0] > heap[0][0]:
        heapq.heapreplace(heap, entry)


def write_report(results: Path, output: Path) -> dict[str, Any]:
    """Write the page; the summary figures it shows."""
    if output.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"{output}: the report is HTML; name it something.html")
    collected = _collect(read_records(results))
    if collected.summary.processed == 0:
        raise InputError(f"{results}: no result records to report on")
    summary = _summary(collected)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(_page(results, collected, summary), encoding="utf-8")
    return summary


def report_figures(
    records: Iterable[dict[str, Any]],
) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The report's summary and plots, each ``(title, PNG)``, of result records (the
    shape ``embed2prompt invert`` writes), for callers that lay them out themselves
    (the service's ``GET /jobs/{id}/report``). No records: an :class:`InputError`."""
    collected = _collect(records)
    if collected.summary.processed == 0:
        raise InputError("no result records to report on yet")
    return _summary(collected), _figures(collected)


def _collect(records: Iterable[dict[str, Any]]) -> _Collected:
    collected = _Collected()
    for record in records:
        collected.add(record)
    return collected


def _summary(data: _Collected) -> dict[str, Any]:
    summary: dict[str, Any] = data.summary.summary(wall_s=0.0).model_dump(
        mode="json", exclude_none=True, exclude={"processing_time"}
    )
    return summary


def _figures(data: _Collected) -> list[tuple[str, bytes]]:
    figures = [("Similarity", _similarity_histogram(data))]
    if data.pairs:
        figures.append(("Prompt versus generation", _scatter(data.pairs)))
    if data.gains:
        figures.append(("What variants gained", _gain_histogram(data.gains)))
    if data.latencies:
        figures.append(("Time per row", _latency_histogram(data.latencies)))
    return figures


def _page(results: Path, data: _Collected, summary: dict[str, Any]) -> str:
    sections = [_summary_section(summary)]
    sections += [_figure_section(title, png) for title, png in _figures(data)]
    sections.append(_failures_section(data))
    best = [entry for _, _, entry in sorted(data.best, reverse=True)]
    worst = [entry for _, _, entry in sorted(data.worst, reverse=True)]
    sections.append(_prompt_table("Best prompts", best))
    sections.append(_prompt_table("Worst prompts", worst))
    title = f"embed2prompt report: {html.escape(results.name)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.2em; margin-top: 2em; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.3em 0.8em; text-align: left;
          vertical-align: top; }}
td.number {{ text-align: right; font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; }}
</style></head>
<body>
<h1>{title}</h1>
{"".join(sections)}
</body></html>
"""


def _summary_section(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(key.replace('_', ' '))}</th>"
        f'<td class="number">{_number(value)}</td></tr>'
        for key, value in summary.items()
    )
    return f"<h2>Summary</h2><table>{rows}</table>"


def _figure_section(title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    escaped = html.escape(title)
    return f'<h2>{escaped}</h2><img alt="{escaped}" src="data:image/png;base64,{data}">'


def _failures_section(data: _Collected) -> str:
    failed = data.summary.failed
    if not failed:
        return "<h2>Failures</h2><p>None: every row succeeded.</p>"
    rows = "".join(
        f'<tr><td class="number">{count}</td><td>{html.escape(kind)}</td>'
        f"<td>{html.escape(data.error_examples[kind])}</td></tr>"
        for kind, count in data.errors.most_common(ERROR_KINDS)
    )
    return (
        f"<h2>Failures</h2><p>{failed} of {data.summary.processed} rows failed.</p>"
        f"<table><tr><th>rows</th><th>kind</th><th>example</th></tr>{rows}</table>"
    )


def _prompt_table(title: str, entries: list[dict[str, Any]]) -> str:
    if not entries:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(str(entry['id']))}</td><td>{html.escape(entry['prompt'] or '')}</td>"
        f'<td class="number">{_number(entry["similarity"])}</td>'
        f'<td class="number">{_number(entry["prompt_similarity"])}</td>'
        f"<td>{html.escape(entry['best_variant'] or '')}</td></tr>"
        for entry in entries
    )
    return (
        f"<h2>{html.escape(title)}</h2><table><tr><th>id</th><th>prompt</th>"
        f"<th>similarity</th><th>prompt similarity</th><th>best variant</th></tr>{rows}</table>"
    )


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


# Plots ------------------------------------------------------------------------------


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # no display: draw to memory
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(8, 3.6), dpi=100)


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _similarity_histogram(data: _Collected) -> bytes:
    figure, axes = _figure()
    bins = np.linspace(-0.2, 1.0, 61)
    if data.prompt_similarity:
        axes.hist(data.prompt_similarity, bins=bins, alpha=0.6, label="prompt similarity")
    if data.similarity:
        axes.hist(data.similarity, bins=bins, alpha=0.6, label="generation similarity")
    axes.set_xlabel("cosine to the target embedding")
    axes.set_ylabel("rows")
    if data.prompt_similarity or data.similarity:
        axes.legend()
    return _png(figure)


def _bins(values: list[float], count: int) -> Any:
    """``count`` bins over the values' range; around the value when they are all equal
    (numpy cannot split an empty range)."""
    low, high = min(values), max(values)
    if high - low < 1e-6:
        return np.linspace(low - 0.05, high + 0.05, 11)
    return count


def _scatter(pairs: list[tuple[float, float]]) -> bytes:
    figure, axes = _figure()
    points = np.asarray(pairs)
    size = 12 if len(points) < 2000 else 2
    axes.scatter(points[:, 0], points[:, 1], s=size, alpha=0.5)
    low = float(min(points.min(), 0.0))
    axes.plot([low, 1], [low, 1], color="grey", linewidth=1, label="equal")
    axes.set_xlabel("prompt similarity (the prompt's own embedding)")
    axes.set_ylabel("generation similarity")
    axes.legend()
    return _png(figure)


def _gain_histogram(gains: list[float]) -> bytes:
    figure, axes = _figure()
    axes.hist(gains, bins=_bins(gains, 40))
    axes.set_xlabel("best variant's similarity minus the original's (0: no variant was better)")
    axes.set_ylabel("rows")
    return _png(figure)


def _latency_histogram(latencies: list[float]) -> bytes:
    figure, axes = _figure()
    values = np.asarray(latencies)
    positive = values[values > 0]
    if len(positive) and positive.max() / max(positive.min(), 1e-9) > 100:
        bins: Any = np.logspace(math.log10(positive.min()), math.log10(positive.max()), 50)
        axes.set_xscale("log")
    else:
        bins = _bins(latencies, 50)
    axes.hist(values, bins=bins)
    for quantile, style in ((0.5, "--"), (0.95, ":")):
        value = float(np.quantile(values, quantile))
        axes.axvline(
            value, color="black", linestyle=style, label=f"p{int(quantile * 100)} {value:.2f} s"
        )
    axes.set_xlabel("seconds per row")
    axes.set_ylabel("rows")
    axes.legend()
    return _png(figure)

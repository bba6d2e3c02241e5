"""``python -m bench [NAME ...]``: run the benchmarks and print one table.

Names, by part (default: all):
- the engine: speedup, compliance, storm, overhead, memory, learn-limit, peer,
  invert-limit (the last two against a server allowing less than the client was told);
- the local models: embedder, batching, generator, synthetic-writers, synthetic-topics,
  fluent-decoding, fluent-eval, lm-dtype (bf16 against fp32 on this CPU), adapter-size
  (the adapter's width and LoRA), demo (`make demo`'s wall time);
- the pipeline: pipeline-speedup, pipeline-local, pipeline-quality (the settings'
  checkpoint: the default or EMBED2PROMPT_MODEL_PATH), pipeline-quality-small, pipeline-fluency;
- the HTTP service: service-load, service-upload, fuzz; the web page: page;
- command-line batch runs: batch-memory, invert-memory; the Batch API mode: batch-api;
- scale-out: ray-throughput, shared-limit; aligners: align-fit, align-invert.

Each figure is a median of repeated runs measured side by side in this process, against
the local OpenAI-compatible server running as a separate process on loopback.
"""

from __future__ import annotations

import asyncio
import sys

from bench import (
    adapter,
    alignment,
    batch,
    batch_api,
    demo,
    engine,
    fluent,
    fuzz,
    invert_memory,
    models,
    page,
    peer,
    pipeline,
    scale,
    service,
)
from bench.engine import Row

BENCHMARKS = {
    **engine.BENCHMARKS,
    **peer.BENCHMARKS,
    **models.BENCHMARKS,
    **fluent.BENCHMARKS,
    **adapter.BENCHMARKS,
    **demo.BENCHMARKS,
    **pipeline.BENCHMARKS,
    **service.BENCHMARKS,
    **fuzz.BENCHMARKS,
    **page.BENCHMARKS,
    **batch.BENCHMARKS,
    **invert_memory.BENCHMARKS,
    **batch_api.BENCHMARKS,
    **scale.BENCHMARKS,
    **alignment.BENCHMARKS,
}


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__.strip() if __doc__ else "")
        return 0
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s) {unknown}; expected some of {list(BENCHMARKS)} "
            "(python -m bench --help says what each measures)",
            file=sys.stderr,
        )
        return 2
    rows: list[Row] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += asyncio.run(BENCHMARKS[name]())
    print_table(rows)
    return 0 if all(row.passed is not False for row in rows) else 1


def print_table(rows: list[Row]) -> None:
    header = ("benchmark", "measured", "target", "ok")
    cells = [header] + [
        (row.name, row.measured, row.target, {True: "yes", False: "NO", None: "-"}[row.passed])
        for row in rows
    ]
    widths = [max(len(cell[i]) for cell in cells) for i in range(4)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) + " |"
        for cell in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

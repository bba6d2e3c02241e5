"""Training the fluent inverter's adapter: ``embed2prompt train --fluent``.

The language model stays frozen; only the adapter learns, from (embedding, text) pairs:
the texts are embedded once with the target embedder (cached on disk), and the adapter is
taught to make the LM write each text from its embedding. Batches hold texts of similar
length (less padding through a 30-layer model), the LM runs in bf16 where the device
has bf16 arithmetic (fp32 elsewhere: :func:`~embed2prompt.inversion.base_lm.compute_dtype`),
and a run resumes from its last checkpoint, so training fits in interrupted sessions on a CPU.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from embed2prompt.embedders.base import Embedder
from embed2prompt.errors import InputError
from embed2prompt.inversion.base_lm import load_base_lm
from embed2prompt.inversion.checkpoint import CheckpointInfo
from embed2prompt.inversion.embedding_cache import embed_with_cache
from embed2prompt.inversion.lexical_search import frequent_words
from embed2prompt.inversion.model import cosine_schedule
from embed2prompt.inversion.prefix_checkpoint import (
    load_prefix_inverter,
    read_prefix_config,
    save_prefix_checkpoint,
)
from embed2prompt.inversion.prefix_lm import AdapterConfig, PrefixAdapter, PrefixLM, token_scale

log = logging.getLogger(__name__)


# How a fluent inverter refines unless told otherwise (written into its checkpoint): the
# library's 32 word edits a step plus the 24 one-token edits the conditioned LM finds
# likeliest (chosen on the 40 out-of-domain texts: BENCHMARKS.md, "token edits"), the 16
# closest ranked by cosine plus 0.2 x how well they read (the LM's mean token
# log-probability of the text alone). Weight and shortlist chosen on the same texts, 8
# steps: cosine 0.923, 82.5% English, against 0.943 and 70% for the LM's likelihood given
# the target (0.05 over 8) and 0.944 and 77.5% for 0.1 over 8 (BENCHMARKS.md and
# docs/development-log.md, "Readability from the LM alone").
FLUENT_SEARCH: dict[str, Any] = {
    "token_edits": 24,
    "fluency": 0.2,
    "fluency_shortlist": 16,
}


@dataclass
class PrefixTrainingOptions:
    checkpoint: Path
    steps: int = 4_000
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    save_every: int = 100
    validation_texts: int = 256
    seed: int = 0
    threads: int | None = None
    # Where the LM and adapter compute ("cpu", "cuda", "cuda:1"): the checkpoint is the
    # same either way, and a run may resume on another device.
    device: str = "cpu"
    # Noise added to training embeddings (then renormalised): refinement conditions the
    # adapter on vectors near, not at, real texts' embeddings.
    embedding_noise: float = 0.0
    emphasis: int = 1  # how many times an epoch an emphasised text is seen
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    # A fluent checkpoint whose adapter a new run starts from (a warm start: more steps on
    # other texts, or LoRA added to a trained adapter); a resumed run ignores it.
    init_from: Path | None = None


def training_device(name: str) -> torch.device:
    """The device called ``name``, or an error naming what is available instead."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {name!r}; expected cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"device {name!r}: training runs on cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(
                f"device {name!r}: this PyTorch ({torch.__version__}) sees no CUDA GPU; "
                "expected --device cpu"
            )
        if device.index is not None and device.index >= count:
            raise InputError(f"device {name!r}: this machine has {count} CUDA GPU(s)")
    return device


def length_batches(
    lengths: Sequence[int],
    batch_size: int,
    rng: random.Random,
    *,
    repeats: Sequence[int] | None = None,
    pool: int = 64,
) -> list[list[int]]:
    """An epoch's indices in batches of similar length: each index ``repeats[i]`` times
    (default once); shuffle, sort within pools of ``pool`` batches, cut, then shuffle the
    batches, so each batch is random yet barely padded."""
    order = [i for i in range(len(lengths)) for _ in range(repeats[i] if repeats else 1)]
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * pool
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def train_prefix(
    options: PrefixTrainingOptions,
    embedder: Embedder,
    texts: Sequence[str],
    *,
    emphasised: Collection[str] = (),
    progress: bool = True,
) -> Path:
    """Train the adapter on ``texts`` until ``options.steps``; returns the checkpoint.
    Texts in ``emphasised`` are seen ``options.emphasis`` times an epoch (texts like those
    users invert, rarer than the rest). ``progress``: a bar while the texts are embedded."""
    device = training_device(options.device)
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    rng = random.Random(options.seed)
    texts = list(dict.fromkeys(" ".join(text.split()) for text in texts if text.strip()))
    rng.shuffle(texts)
    # At most a tenth of the texts validate, so a small set still leaves texts to train on.
    held = min(options.validation_texts, len(texts) // 10)
    if len(texts) - held < options.batch_size or held < 1:
        raise InputError(
            f"{len(texts)} distinct training texts; expected at least "
            f"{max(10, options.batch_size + 1)} (a batch to train on and some to validate)"
        )
    validation, training = texts[:held], texts[held:]
    state_path = options.checkpoint.with_suffix(".train.pt")

    if state_path.is_file() and options.checkpoint.is_file():
        inverter, info = load_prefix_inverter(options.checkpoint)
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        inverter.adapter.load_state_dict(state["adapter"])  # full precision, not the fp16 copy
        step = int(state["step"])
        log.info("resuming from step %d", step)
    else:
        base = load_base_lm()
        config = AdapterConfig(
            **{
                **asdict(options.adapter),
                "embedding_dim": embedder.dimension,
                "lm_width": base.width,
            }
        )
        inverter = PrefixLM(base, PrefixAdapter(config, token_scale=token_scale(base)))
        info = CheckpointInfo(embedder.name, embedder.dimension, language_model=base.name)
        if options.init_from is not None:
            start_from(inverter.adapter, options.init_from, embedder_name=embedder.name)
        state, step = None, 0
    # The words refinement may try as edits: the training texts' frequent ones.
    info.lexicon = info.lexicon or frequent_words(training)
    info.search = info.search or dict(FLUENT_SEARCH)
    inverter.to(device)
    adapter = inverter.adapter
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=options.learning_rate, weight_decay=0.01)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])

    cache_root = options.checkpoint.parent / ".embeddings"
    vectors = torch.from_numpy(embed_with_cache(embedder, training, cache_root, progress=progress))
    val_vectors = torch.from_numpy(
        embed_with_cache(embedder, validation, cache_root, progress=False)
    )
    rows = inverter.encode(training)
    val_rows = inverter.encode(validation)
    wanted = set(emphasised)
    repeats = [options.emphasis if text in wanted else 1 for text in training]
    info.training = {
        "texts": len(training),
        "emphasised": sum(repeat > 1 for repeat in repeats),
        "options": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in asdict(options).items()
            if key not in ("checkpoint", "adapter")
        },
    }

    lengths = [len(r) for r in rows]
    epoch = step * options.batch_size // max(1, sum(repeats))
    batches = length_batches(lengths, options.batch_size, random.Random(epoch), repeats=repeats)
    position = step % len(batches)
    adapter.train()
    started, running = time.monotonic(), 0.0
    while step < options.steps:
        if position >= len(batches):
            epoch, position = epoch + 1, 0
            batches = length_batches(
                lengths, options.batch_size, random.Random(epoch), repeats=repeats
            )
        batch = batches[position]
        position += 1
        embeddings = vectors[batch].to(inverter.device)
        if options.embedding_noise > 0:
            noisy = embeddings + options.embedding_noise * torch.randn_like(embeddings) / math.sqrt(
                embeddings.shape[1]
            )
            embeddings = torch.nn.functional.normalize(noisy, dim=1)
        for group in optimizer.param_groups:
            group["lr"] = cosine_schedule(
                step, warmup=options.warmup_steps, total=options.steps, peak=options.learning_rate
            )
        loss = inverter.loss(embeddings, [rows[i] for i in batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(adapter.parameters(), 1.0)
        optimizer.step()
        step += 1
        running = loss.item() if running == 0 else 0.95 * running + 0.05 * loss.item()
        if step % 10 == 0:
            log.info(
                "step %d loss %.3f (%.2f s a step)",
                step,
                running,
                (time.monotonic() - started) / max(1, step - (state or {}).get("step", 0)),
            )
        if step % options.save_every == 0 or step == options.steps:
            val_loss = validation_loss(inverter, val_vectors, val_rows, options.batch_size)
            info.training["last_validation"] = {
                "step": step,
                "train_loss": round(running, 4),
                "val_loss": round(val_loss, 4),
            }
            log.info("step %d validation loss %.4f", step, val_loss)
            save_prefix_checkpoint(options.checkpoint, adapter, info)
            _save_state(state_path, adapter, optimizer, step)
            adapter.train()
    return options.checkpoint


def start_from(adapter: PrefixAdapter, path: Path, *, embedder_name: str) -> None:
    """Copy the adapter of the fluent checkpoint at ``path`` into ``adapter``, which must
    have the same shape; LoRA updates the checkpoint lacks start at zero, so the warm start
    writes exactly what the checkpoint wrote."""
    config, info = read_prefix_config(path)
    if info.embedder_name != embedder_name:
        raise InputError(
            f"--init-from {path} inverts {info.embedder_name}; this run trains for "
            f"{embedder_name}: expected a checkpoint for the same embedder"
        )
    own = adapter.config
    for name in ("embedding_dim", "prefix_length", "hidden", "lm_width"):
        theirs, ours = getattr(config, name), getattr(own, name)
        if theirs != ours:
            raise InputError(
                f"--init-from {path}: its adapter's {name} is {theirs}, this run's {ours}; "
                "expected the same (--prefix-length, --adapter-hidden)"
            )
    if config.lora_rank not in (0, own.lora_rank):
        raise InputError(
            f"--init-from {path}: its LoRA rank is {config.lora_rank}, this run's "
            f"{own.lora_rank}; expected the same, or a checkpoint without LoRA"
        )
    weights = torch.load(path, map_location="cpu", weights_only=True)
    adapter.load_state_dict({name: t.float() for name, t in weights.items()}, strict=False)


def validation_loss(
    inverter: PrefixLM, vectors: torch.Tensor, rows: list[list[int]], batch_size: int
) -> float:
    """The mean next-token loss of ``rows`` given their embeddings, the adapter in eval
    mode (the caller sets it back to training)."""
    inverter.adapter.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            total += inverter.loss(vectors[start : start + batch_size], part).item() * len(part)
            count += len(part)
    return total / max(1, count)


def _save_state(
    path: Path, adapter: PrefixAdapter, optimizer: torch.optim.Optimizer, step: int
) -> None:
    partial = path.with_suffix(".partial")
    torch.save(
        {"adapter": adapter.state_dict(), "optimizer": optimizer.state_dict(), "step": step},
        partial,
    )
    partial.replace(path)

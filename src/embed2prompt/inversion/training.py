"""Training an inverter on any embedder: ``embed2prompt train``.

Read the corpus, train (or reload) the tokenizer, embed every text once through the chosen
embedder (cached on disk), then teach the decoder to write each text from its embedding.
Validation loss and the mean cosine of greedy inversions of validation texts are logged;
checkpoints are written every ``eval_every`` steps, and a run resumes from the last one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from embed2prompt.embedders.base import Embedder
from embed2prompt.errors import ConfigurationError
from embed2prompt.inversion.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from embed2prompt.inversion.embedding_cache import embed_with_cache
from embed2prompt.inversion.lexical_search import frequent_words
from embed2prompt.inversion.model import Inverter, InverterConfig, cosine_schedule
from embed2prompt.inversion.retrieval import PromptBank, bank_path
from embed2prompt.inversion.tokenizer import decode, encode_batch, train_tokenizer

log = logging.getLogger(__name__)


@dataclass
class TrainingOptions:
    corpus: Path
    checkpoint: Path
    steps: int = 20_000
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int = 500
    eval_every: int = 1_000
    max_texts: int | None = None  # use a random subset of N training texts
    embedding_noise: float = 0.0  # Gaussian noise on training embeddings, for robustness
    seed: int = 0
    threads: int | None = None
    model: InverterConfig = field(default_factory=InverterConfig)


def read_split(corpus: Path, split: str, limit: int | None = None) -> list[str]:
    path = corpus / f"{split}.txt"
    if not path.is_file():
        raise ConfigurationError(
            f"{path} is missing; build the corpus first (embed2prompt corpus build)"
        )
    texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if limit and limit < len(texts):
        # A seeded random subset: the file is ordered by source, so its head is not a sample.
        texts = random.Random(0).sample(texts, limit)
    return texts


def train(options: TrainingOptions, embedder: Embedder, *, progress: bool = True) -> Path:
    """Train until ``options.steps``; returns the checkpoint path."""
    torch.manual_seed(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    train_texts = read_split(options.corpus, "train", options.max_texts)
    val_texts = read_split(options.corpus, "val", 512)
    state_path = options.checkpoint.with_suffix(".train.pt")

    if state_path.is_file() and options.checkpoint.is_file():
        model, tokenizer, info = load_checkpoint(options.checkpoint)
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        step = int(state["step"])
        log.info("resuming from step %d", step)
    else:
        tokenizer = train_tokenizer(train_texts, vocab_size=options.model.vocab_size)
        config = InverterConfig(**{**asdict(options.model), "embedding_dim": embedder.dimension})
        model = Inverter(config)
        state, step = None, 0
    if model.config.embedding_dim != embedder.dimension:
        raise ConfigurationError(
            f"the checkpoint expects {model.config.embedding_dim}-dimensional embeddings "
            f"but {embedder.name} gives {embedder.dimension}"
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=0.01)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])

    cache_root = options.checkpoint.parent / ".embeddings"
    train_vectors = torch.from_numpy(
        embed_with_cache(embedder, train_texts, cache_root, progress=progress)
    )
    # The embedded training texts, kept beside the checkpoint as its prompt bank: the
    # inverter's retrieved first guesses (retrieval.py).
    PromptBank.build(embedder.name, train_texts, train_vectors.numpy()).save(
        bank_path(options.checkpoint)
    )
    val_vectors = torch.from_numpy(
        embed_with_cache(embedder, val_texts, cache_root, progress=False)
    )
    train_tokens = encode_batch(tokenizer, train_texts, max_tokens=model.config.max_tokens)
    val_tokens = encode_batch(tokenizer, val_texts, max_tokens=model.config.max_tokens)

    info = CheckpointInfo(
        embedder.name,
        embedder.dimension,
        {
            "corpus": str(options.corpus),
            "manifest": _manifest(options.corpus),
            "train_texts": len(train_texts),
            "options": {
                k: v
                for k, v in asdict(options).items()
                if k not in ("corpus", "checkpoint", "model")
            },
        },
        frequent_words(train_texts),
    )
    generator = torch.Generator().manual_seed(options.seed + step)
    order = torch.randperm(len(train_texts), generator=generator)
    position = 0
    model.train()
    started = time.perf_counter()
    with tqdm(total=options.steps, initial=step, unit="step", disable=not progress) as bar:
        while step < options.steps:
            if position + options.batch_size > len(order):
                order, position = torch.randperm(len(train_texts), generator=generator), 0
            batch = order[position : position + options.batch_size]
            position += options.batch_size
            vectors = train_vectors[batch]
            if options.embedding_noise:
                vectors = torch.nn.functional.normalize(
                    vectors + options.embedding_noise * torch.randn_like(vectors), dim=1
                )
            for group in optimizer.param_groups:
                group["lr"] = cosine_schedule(
                    step,
                    warmup=options.warmup_steps,
                    total=options.steps,
                    peak=options.learning_rate,
                )
            loss = model.loss(vectors, _trim(train_tokens[batch]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % options.eval_every == 0 or step == options.steps:
                metrics = evaluate(model, tokenizer, embedder, val_vectors, val_tokens, val_texts)
                metrics.update(
                    step=step,
                    train_loss=round(loss.item(), 4),
                    minutes=round((time.perf_counter() - started) / 60, 1),
                )
                log.info("validation %s", json.dumps(metrics))
                bar.write(f"step {step}: {json.dumps(metrics)}")
                info.training["last_validation"] = metrics
                save_checkpoint(options.checkpoint, model, tokenizer, info)
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                    },
                    state_path,
                )
                model.train()
    return options.checkpoint


@torch.no_grad()
def evaluate(
    model: Inverter,
    tokenizer: Any,
    embedder: Embedder,
    vectors: torch.Tensor,
    tokens: torch.Tensor,
    texts: list[str],
    *,
    sample: int = 128,
) -> dict[str, float]:
    """Validation loss, and the mean cosine of greedy inversions re-embedded."""
    model.eval()
    loss = model.loss(vectors[:sample], _trim(tokens[:sample])).item()
    from embed2prompt.inversion.decoding import greedy

    prompts = [decode(tokenizer, ids) or "?" for ids in greedy(model, vectors[:sample])]
    recovered = asyncio.run(embedder.embed(prompts))
    cosine = float((recovered * vectors[:sample].numpy()).sum(axis=1).mean())
    exact = sum(p == t for p, t in zip(prompts, texts[:sample], strict=False)) / len(prompts)
    return {
        "val_loss": round(loss, 4),
        "val_cosine": round(cosine, 4),
        "val_exact": round(exact, 4),
        "val_perplexity": round(math.exp(min(loss, 20)), 2),
    }


def _trim(tokens: torch.Tensor) -> torch.Tensor:
    """Drop the padding columns that no text in the batch reaches: most texts are far
    shorter than the maximum, and every column costs a full pass of the model."""
    length = int((tokens != 0).sum(dim=1).max())
    return tokens[:, :length]


def _manifest(corpus: Path) -> dict[str, Any]:
    path = corpus / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

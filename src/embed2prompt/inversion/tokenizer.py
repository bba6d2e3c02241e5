"""The inverter's tokenizer: byte-level BPE trained on the corpus.

Byte-level, so every string can be written (no unknown tokens); cased, so prompts keep
their capitals and BLEU compares like with like; 8,192 tokens, so the embedding table
stays a small part of a small model. Training it takes seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>"]  # ids 0, 1, 2, as InverterConfig expects


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 8192) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def encode_batch(tokenizer: Tokenizer, texts: Sequence[str], *, max_tokens: int) -> torch.Tensor:
    """(B, max_tokens) ids: the text cut to ``max_tokens - 1`` tokens, <eos>, then <pad>."""
    rows = torch.zeros((len(texts), max_tokens), dtype=torch.long)
    for row, encoding in enumerate(tokenizer.encode_batch(list(texts))):
        ids = [*encoding.ids[: max_tokens - 1], 2]
        rows[row, : len(ids)] = torch.tensor(ids)
    return rows


def decode(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """Text up to the first <eos>, special tokens left out."""
    kept = []
    for token in ids:
        if token == 2:
            break
        if token > 2:
            kept.append(int(token))
    return tokenizer.decode(kept).strip()

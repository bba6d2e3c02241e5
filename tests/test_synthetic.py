"""Synthetic prompts: the real local model continuing a few-shot list, through both writers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from embed2prompt.corpus.held_out import is_evaluation_text, out_of_domain_texts
from embed2prompt.corpus.sources import wordnet_topics
from embed2prompt.corpus.synthetic import (
    EXAMPLES,
    TOPICS,
    few_shot_text,
    synthetic_prompts,
    topics_named,
)
from embed2prompt.corpus.writers import BatchedLMWriter, LlamaWriter
from embed2prompt.errors import ConfigurationError, InputError
from embed2prompt.generators.local import LocalGenerator
from tests.test_cli import run


@pytest.fixture(scope="module")
def llama_writer() -> LlamaWriter:
    return LlamaWriter(LocalGenerator(threads=2))


@pytest.fixture(scope="module")
def batched_writer() -> BatchedLMWriter:
    return BatchedLMWriter()


def test_the_list_ends_where_the_next_item_goes() -> None:
    text = few_shot_text("question", "gardening")
    assert text.endswith("A question about gardening:\n-")
    assert all(f"- {example}\n" in text for example in EXAMPLES["question"][:4])
    assert few_shot_text("instruction", "law", ["Do this.", "Do that."]) == (
        "Examples of instructions people send to an AI assistant:\n- Do this.\n- Do that.\n"
        "An instruction about law:\n-"
    )


def test_no_example_is_an_evaluation_text() -> None:
    examples = [example for kind in EXAMPLES.values() for example in kind]
    assert len(set(examples)) == len(examples)
    assert not [example for example in examples if is_evaluation_text(example)]


@pytest.mark.parametrize("writer_name", ["llama_writer", "batched_writer"])
@pytest.mark.slow  # SmolLM2 writes prompts
def test_prompts_are_single_lines_of_every_kind_and_repeat_with_the_seed(
    writer_name: str, request: pytest.FixtureRequest
) -> None:
    writer = request.getfixturevalue(writer_name)
    prompts = list(synthetic_prompts(6, writer=writer, batch_size=3))
    assert 3 <= len(prompts) <= 6  # fragments and copies are skipped
    examples = {example for kind in EXAMPLES.values() for example in kind}
    for prompt in prompts:
        assert prompt.strip() == prompt
        assert "\n" not in prompt
        assert 4 <= len(prompt.split()) <= 60
        assert prompt not in examples
    assert len(set(prompts)) == len(prompts)
    assert list(synthetic_prompts(6, writer=writer, batch_size=3)) == prompts
    assert list(synthetic_prompts(3, writer=writer, seed=100, batch_size=3)) != prompts[:3]


class _Scripted:
    """A writer that writes the given lines in turn (to test what is skipped), and keeps
    the few-shot lists it was shown."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = iter(lines)
        self.shown: list[str] = []

    def continue_texts(self, texts: Sequence[str], **_: object) -> list[str]:
        self.shown += texts
        return [next(self.lines) for _ in texts]


def test_fragments_copies_repeats_and_evaluation_texts_never_become_training_data() -> None:
    held_out = out_of_domain_texts()[0]
    lines = [
        EXAMPLES["question"][0],
        held_out.upper(),
        "",
        "Create a game.",
        '"Is green tea healthy  for children?"',
        "is green tea healthy for children?",
    ]
    prompts = list(synthetic_prompts(6, writer=_Scripted(lines)))
    assert prompts == ["Is green tea healthy for children?"]


def test_later_lists_show_what_was_written_before_but_half_is_always_hand_written() -> None:
    lines = [f"Question number {n} about something?" for n in range(400)]
    writer = _Scripted(lines)
    list(synthetic_prompts(400, writer=writer, batch_size=50))
    hand_written = {example for kind in EXAMPLES.values() for example in kind}
    shown_lines = [
        [line[2:] for line in text.splitlines() if line.startswith("- ")] for text in writer.shown
    ]
    assert all(len(shown) == 4 for shown in shown_lines)
    assert all(sum(line in hand_written for line in shown) >= 2 for shown in shown_lines)
    assert any(
        any(line.startswith("Question number") for line in shown) for shown in shown_lines[200:]
    )


@pytest.mark.slow  # SmolLM2 writes prompts
def test_corpus_synthetic_appends_prompts_one_a_line(tmp_path: Path) -> None:
    out = tmp_path / "synthetic.txt"
    out.write_text("A prompt from an earlier run, kept.\n")
    result = run("corpus", "synthetic", "--out", str(out), "--synthetic", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "A prompt from an earlier run, kept."
    assert 1 <= len(lines) - 1 <= 2
    assert all(line.strip() for line in lines)
    assert f"{len(lines) - 1} synthetic prompts written to {out}" in result.stderr
    result = run("corpus", "synthetic", "--out", str(out), "--synthetic", "0")
    assert result.returncode != 0
    assert "--synthetic must be at least 1" in result.stderr


def test_prompts_are_about_the_topics_given() -> None:
    writer = _Scripted([f"Is this prompt number {n} fine?" for n in range(40)])
    list(synthetic_prompts(40, writer=writer, batch_size=10, topics=["steam turbines", "tax"]))
    asked = {text.rsplit("\n", 2)[-2] for text in writer.shown}
    assert {line.split(" about ", 1)[1] for line in asked} == {"steam turbines:", "tax:"}


_NOUN_INDEX = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
steam_turbine n 1 1 @ 1 1 04310604
olive_oil n 1 3 @ #s %s 1 0 07674508
bankruptcy n 2 2 @ ~ 2 2 13333833 14474052
"""


def test_wordnet_topics_are_the_nouns_people_write_about(tmp_path: Path) -> None:
    index = tmp_path / "usr/share/wordnet/index.noun"
    index.parent.mkdir(parents=True)
    index.write_text(_NOUN_INDEX, encoding="latin-1")
    # olive oil's sense was never tagged in WordNet's texts: a rare term by that measure.
    assert wordnet_topics(tmp_path) == ["steam turbine", "bankruptcy"]


def test_missing_wordnet_and_unknown_topics_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"index \S+ is missing; expected an unpacked"):
        wordnet_topics(tmp_path)
    expected = "unknown topics 'news'; expected one of everyday, wordnet"
    with pytest.raises(InputError, match=expected):
        topics_named("news")
    assert topics_named("everyday") == TOPICS
    result = run("corpus", "synthetic", "--out", str(tmp_path / "x.txt"), "--topics", "news")
    assert result.returncode == 2
    assert "--topics: invalid choice: 'news'" in result.stderr
    assert not (tmp_path / "x.txt").exists()

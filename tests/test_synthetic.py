"""Synthetic prompts: the real local generator continuing a few-shot list."""

from __future__ import annotations

from pathlib import Path

import pytest

from embed2prompt.corpus.held_out import out_of_domain_texts
from embed2prompt.corpus.synthetic import EXAMPLES, few_shot_text, synthetic_prompts
from embed2prompt.generators.local import LocalGenerator
from tests.test_cli import run


@pytest.fixture(scope="module")
def generator() -> LocalGenerator:
    return LocalGenerator(threads=2)


def test_the_list_ends_where_the_next_item_goes() -> None:
    text = few_shot_text("question", "gardening")
    assert text.endswith("A question about gardening:\n-")
    assert all(f"- {example}\n" in text for example in EXAMPLES["question"])
    assert few_shot_text("instruction", "law").endswith("An instruction about law:\n-")


def test_prompts_are_single_lines_of_both_kinds_and_repeat_with_the_seed(
    generator: LocalGenerator,
) -> None:
    prompts = list(synthetic_prompts(8, generator=generator))
    assert 6 <= len(prompts) <= 8  # an empty or copied generation is skipped
    examples = {example for kind in EXAMPLES.values() for example in kind}
    for prompt in prompts:
        assert prompt.strip() == prompt
        assert "\n" not in prompt
        assert 2 <= len(prompt.split()) <= 60
        assert prompt not in examples
    assert any(prompt.endswith("?") for prompt in prompts)  # questions
    assert any(not prompt.endswith("?") for prompt in prompts)  # and instructions
    assert list(synthetic_prompts(8, generator=generator)) == prompts
    assert list(synthetic_prompts(2, generator=generator, seed=100)) != prompts[:2]


class _Scripted:
    """A generator that writes the given lines in turn (to test what is skipped)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = iter(lines)

    def continue_text(self, text: str, **_: object) -> str:
        return next(self.lines)


def test_copies_and_evaluation_texts_never_become_training_data() -> None:
    held_out = out_of_domain_texts()[0]
    lines = [EXAMPLES["question"][0], held_out.upper(), "", "Is tea healthy?"]
    prompts = list(synthetic_prompts(4, generator=_Scripted(lines)))  # type: ignore[arg-type]
    assert prompts == ["Is tea healthy?"]


def test_corpus_synthetic_writes_prompts_one_a_line(tmp_path: Path) -> None:
    out = tmp_path / "synthetic.txt"
    result = run("corpus", "synthetic", "--out", str(out), "--synthetic", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert 1 <= len(lines) <= 2
    assert all(line.strip() for line in lines)
    assert f"{len(lines)} synthetic prompts written to {out}" in result.stderr
    result = run("corpus", "synthetic", "--out", str(out), "--synthetic", "0")
    assert result.returncode != 0
    assert "--synthetic must be at least 1" in result.stderr

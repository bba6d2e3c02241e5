"""Synthetic prompts: the real local generator continuing a few-shot list."""

from __future__ import annotations

import pytest

from embed2prompt.corpus.synthetic import EXAMPLES, few_shot_text, synthetic_prompts
from embed2prompt.generators.local import LocalGenerator


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

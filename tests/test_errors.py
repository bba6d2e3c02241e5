"""The error tree: documented once for users (docs/errors.md), drawn in errors.py's
docstring, and the classes themselves, all the same; every class at home in errors.py,
exported and used; and errors carried as types, never recognised by their words."""

from __future__ import annotations

import ast
import builtins
import functools
import re
from pathlib import Path

import numpy as np
import pytest

import embed2prompt
from embed2prompt import errors
from embed2prompt.engine.processor import ItemError
from embed2prompt.errors import ApiError, InputError, LimiterUnavailableError
from embed2prompt.inputs import check_embeddings
from embed2prompt.pipeline.results import EvaluationResult, PromptResult

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "embed2prompt"
Tree = dict[str, str | None]  # each class's parent in the tree (None: the root)


def _classes() -> Tree:
    """errors.py's classes, each with its parent among them."""
    tree: Tree = {}
    for name, value in vars(errors).items():
        if isinstance(value, type) and value.__module__ == errors.__name__:
            parents = [
                base.__name__ for base in value.__bases__ if base.__module__ == errors.__name__
            ]
            assert len(parents) <= 1, f"{name} has more than one parent in the tree"
            tree[name] = parents[0] if parents else None
    return tree


def _drawn(lines: list[str]) -> Tree:
    """A tree drawn with ├── └── │ (four columns a level), as a parent for each name."""
    tree: Tree = {}
    path: list[str] = []
    for line in lines:
        match = re.match(r"^((?:│   |    )*)(?:├── |└── )?(\w+)", line)
        assert match is not None, f"not a line of the tree: {line!r}"
        prefix, name = match.groups()
        depth = len(prefix) // 4 + (line[len(prefix) :].startswith(("├", "└")))
        path[depth:] = [name]
        tree[name] = path[depth - 1] if depth else None
    return tree


def _tree_in_docs() -> Tree:
    text = (ROOT / "docs" / "errors.md").read_text()
    block = re.search(r"```\n(Embed2PromptError\n.*?)```", text, re.DOTALL)
    assert block is not None, "docs/errors.md has no tree in a code block"
    return _drawn(block.group(1).splitlines())


def _tree_in_docstring() -> Tree:
    doc = errors.__doc__ or ""
    lines = [
        line[4:] for line in doc.splitlines() if re.match(r"^    (Embed2PromptError|[│├└ ])", line)
    ]
    # Each line goes on to say what its class means: the drawing ends at the name.
    return _drawn([re.match(r"^[│├└─ ]*\w+", line).group(0) for line in lines])  # type: ignore[union-attr]


def test_the_documented_tree_is_the_classes() -> None:
    classes = _classes()
    assert _tree_in_docs() == classes
    assert _tree_in_docstring() == classes
    documented = set(re.findall(r"^\| `(\w+)`", (ROOT / "docs/errors.md").read_text(), re.M))
    assert documented == set(classes) - {"Embed2PromptError"}  # each says what to do


def test_the_tree_reader_sees_a_misplaced_class() -> None:
    drawn = _drawn(["Root", "├── A", "│   └── B", "└── C"])
    assert drawn == {"Root": None, "A": "Root", "B": "A", "C": "Root"}
    assert drawn != _drawn(["Root", "├── A", "├── B", "└── C"])


@functools.cache
def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(PACKAGE.rglob("*.py"))]


def _exception_names() -> set[str]:
    builtin = {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    return builtin | set(_classes())


def test_every_error_class_of_the_package_is_defined_in_errors_py() -> None:
    exceptions = _exception_names()
    elsewhere = []
    for path, module in _sources():
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(module):
            if isinstance(node, ast.ClassDef):
                bases = {
                    base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                    for base in node.bases
                }
                if bases & exceptions:
                    elsewhere.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert elsewhere == []


def test_every_error_is_exported_and_used() -> None:
    classes = _classes()
    assert set(classes) <= set(embed2prompt.__all__)
    constructed = {
        node.func.id
        for path, module in _sources()
        if path != PACKAGE / "errors.py"
        for node in ast.walk(module)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    parents = {parent for parent in classes.values() if parent is not None}
    # A class is raised somewhere, or is the parent callers catch its children by.
    assert [name for name in classes if name not in constructed | parents] == []


# --- carried as types ------------------------------------------------------------


def test_an_items_error_keeps_the_exceptions_class() -> None:
    error = ItemError.from_exception(LimiterUnavailableError("Redis at redis://h is down"))
    assert (error.type, error.exception) == ("LimiterUnavailableError", LimiterUnavailableError)
    assert error == ItemError("LimiterUnavailableError", "Redis at redis://h is down")


def _failed(error: BaseException | ItemError) -> PromptResult:
    original = EvaluationResult(
        similarity=None, prompt_similarity=None, success=False, processing_time=0.0
    )
    return PromptResult(
        embedding_index=0,
        original_prompt=None,
        original_result=original.failed_with(error),
        variants=[],
        best_variant=None,
    )


def test_a_failed_result_carries_its_class_but_serialises_the_seeds_shape() -> None:
    result = _failed(LimiterUnavailableError("the shared limiter is down"))
    assert result.original_result.error_type is LimiterUnavailableError
    assert result.original_result.error == "LimiterUnavailableError: the shared limiter is down"
    dumped = result.model_dump()["original_result"]
    assert set(dumped) == {"similarity", "prompt_similarity", "success", "processing_time",
                           "generated_text", "error"}  # fmt: skip
    from_item = _failed(ItemError.from_exception(ApiError("401 from the API")))
    assert from_item.original_result.error_type is ApiError


def test_a_batch_row_is_a_limiter_outage_by_its_errors_type_not_its_words() -> None:
    from embed2prompt.batch.readers import Row
    from embed2prompt.batch.run import is_limiter_outage, record_or_outage

    row = Row(3, "row-3", np.ones(384, dtype=np.float32))
    subclass = type("SentinelDown", (LimiterUnavailableError,), {})
    outages = [
        _failed(LimiterUnavailableError("Redis cannot be reached")),
        _failed(subclass("no words that name it")),
        _failed(ItemError.from_exception(LimiterUnavailableError("down"))),
    ]
    for result in outages:
        record = record_or_outage(row, result)
        assert is_limiter_outage(record), record
        assert record["index"] == 3
        assert not record["success"]
    # Words that look like an outage are not one: the row failed and is recorded.
    lookalike = _failed(ApiError("LimiterUnavailableError: quoted by the API"))
    record = record_or_outage(row, lookalike)
    assert not is_limiter_outage(record)
    assert record["error"] == "ApiError: LimiterUnavailableError: quoted by the API"
    assert "limiter_outage" not in record


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([0.0] * 4, "the embedding is all zeros"),
        ([0.5, float("nan"), 0.5, 0.5], "the embedding contains NaN"),
        ([[0.5] * 4, [0.0] * 4], "embedding 1 is all zeros"),
        ([[0.5, 0.5, 1e-320, 0.5]], "embedding 0 contains a denormal number"),
    ],
)
def test_one_vector_is_the_embedding_and_rows_are_numbered(raw: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_embeddings(raw, 4)

"""The ``embed2prompt`` command line: thin over the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pydantic

from embed2prompt.errors import Embed2PromptError
from embed2prompt.settings import Settings


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options given on the command line."""
    given = {name: value for name, value in overrides.items() if value is not None}
    return Settings(**given)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embed2prompt",
        description="Turn embedding vectors back into text prompts, fast and at scale.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the main job on the embedded defaults (no API key, no network)",
        description=(
            "Run the main job offline: embed ten sample texts with the local embedder, turn\n"
            "the embeddings back into prompts, judge each by what the local LLM writes from\n"
            "it, refine variants, and print the table and summary.\n\n"
            "example:\n  embed2prompt demo\n  embed2prompt demo --engine"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--engine",
        action="store_true",
        help="instead, show the rate-limited engine against a local OpenAI-compatible server",
    )
    serve = commands.add_parser(
        "serve",
        help="start the HTTP service (the seed's API)",
        description=(
            "Start the HTTP service: POST /generate_prompts_parallel, GET /health, docs at\n"
            "/docs. Settings from the environment (EMBED2PROMPT_*, API_KEY, OPENAI_*).\n\n"
            "example:\n  API_KEY=secret embed2prompt serve --port 8000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: 8000)")
    embed = commands.add_parser(
        "embed",
        help="embed a file of texts",
        description=(
            "Embed every text of INPUT (.txt: one a line; .jsonl: field 'text', optional 'id')\n"
            "into OUTPUT (.npy: rows in input order; .jsonl: id, text, embedding).\n\n"
            "examples:\n"
            "  embed2prompt embed questions.txt -o questions.npy\n"
            "  embed2prompt embed docs.jsonl -o docs.jsonl \\\n"
            "      --embedder openai --model text-embedding-3-small   # needs OPENAI_API_KEY"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_argument("input", type=Path, help="a .txt or .jsonl file of texts")
    embed.add_argument("-o", "--output", type=Path, required=True, help="a .npy or .jsonl file")
    embed.add_argument("--embedder", choices=["local", "openai"], help="default: local")
    embed.add_argument("--model", help="embedding model name (default depends on --embedder)")
    embed.add_argument("--base-url", help="OpenAI-compatible base URL (default: OPENAI_BASE_URL)")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar")

    corpus = commands.add_parser(
        "corpus",
        help="build the inversion model's training text",
        description=(
            "Assemble training text from Debian packages (fetched with apt-get download,\n"
            "unpacked with dpkg -x, nothing installed) plus synthetic prompts written by\n"
            "the local generator; deduplicate; split into train, val and test.\n\n"
            "example:\n"
            "  embed2prompt corpus build --out data/corpus --synthetic 2000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    corpus.add_argument("action", choices=["build"])
    corpus.add_argument("--out", type=Path, default=Path("data/corpus"), help="output folder")
    corpus.add_argument("--sources", help="comma-separated source names (default: all)")
    corpus.add_argument(
        "--synthetic", type=int, default=0, help="synthetic prompts to generate (default 0)"
    )
    corpus.add_argument("--root", type=Path, help="an already unpacked package tree to read")
    corpus.add_argument("--no-progress", action="store_true", help="no progress bar")

    trainer = commands.add_parser(
        "train",
        help="train an inverter for an embedder",
        description=(
            "Train the embedding-to-text model on a corpus (see corpus build), for the\n"
            "local embedder or an API one. Embeddings are cached beside the checkpoint and\n"
            "training resumes from the last checkpoint when run again.\n\n"
            "example:\n"
            "  embed2prompt train --corpus data/corpus --out runs/minilm/model.pt --steps 20000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trainer.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    trainer.add_argument("--out", type=Path, default=Path("runs/inverter/model.pt"))
    trainer.add_argument("--steps", type=int, default=20_000)
    trainer.add_argument("--batch-size", type=int, default=64)
    trainer.add_argument("--learning-rate", type=float, default=1e-3)
    trainer.add_argument("--eval-every", type=int, default=1_000)
    trainer.add_argument("--max-texts", type=int, help="use only the first N training texts")
    trainer.add_argument("--embedding-noise", type=float, default=0.0)
    trainer.add_argument("--embedder", choices=["local", "openai"], help="default: local")
    trainer.add_argument("--model", help="embedding model name")
    trainer.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: all)")
    trainer.add_argument("--no-progress", action="store_true", help="no progress bar")

    invert = commands.add_parser(
        "invert",
        help="turn embeddings back into prompts",
        description=(
            "Invert every vector of INPUT (.npy rows, or .jsonl with field 'embedding' and\n"
            "optional 'id') into OUTPUT.jsonl: index, id, prompt, prompt_similarity,\n"
            "success, error. Exit 1 if some rows failed.\n\n"
            "example:\n"
            "  embed2prompt invert vectors.npy -o prompts.jsonl --steps 12"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    invert.add_argument("input", type=Path)
    invert.add_argument("-o", "--output", type=Path, required=True)
    invert.add_argument("--model", type=Path, default=Path("models/best_model.pt"))
    invert.add_argument("--steps", type=int, default=0, help="refinement steps (default 0)")
    invert.add_argument("--beam", type=int, default=1, help="sequence beam width (default 1)")
    invert.add_argument(
        "--edits", type=int, default=32, help="word edits tried per hypothesis a step (default 32)"
    )
    invert.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = commands.add_parser(
        "eval",
        help="score the inverter: BLEU, token F1, exact match, cosine, cost",
        description=(
            "Invert embeddings of the corpus's test split and of out-of-domain questions\n"
            "and instructions, and compare the prompts with the original texts.\n\n"
            "example:\n"
            "  embed2prompt eval --samples 200 --steps 0,12"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("--model", type=Path, default=Path("models/best_model.pt"))
    evaluate.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    evaluate.add_argument("--samples", type=int, default=200, help="test texts to use")
    evaluate.add_argument("--steps", default="0,12", help="comma-separated refinement steps")
    evaluate.add_argument("--beam", type=int, default=1)
    evaluate.add_argument("--edits", type=int, default=32, help="word edits per hypothesis a step")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG)
    try:
        if args.command == "demo":
            if args.engine:
                from embed2prompt.engine_demo import run_engine_demo

                run_engine_demo()
            else:
                from embed2prompt.demo import run_demo

                run_demo()
        elif args.command == "serve":
            from embed2prompt.service.server import serve
            from embed2prompt.settings import Settings

            overrides = {"host": args.host, "port": args.port}
            serve(Settings(**{k: v for k, v in overrides.items() if v is not None}))
        elif args.command == "embed":
            from embed2prompt.commands.embed import run_embed

            run_embed(
                args.input,
                args.output,
                settings=_settings(
                    embedder=args.embedder,
                    embedding_model=args.model,
                    openai_base_url=args.base_url,
                ),
                progress=not args.no_progress,
            )
        elif args.command == "corpus":
            from embed2prompt.commands.corpus import run_corpus_build

            run_corpus_build(
                args.out,
                sources=args.sources.split(",") if args.sources else None,
                synthetic=args.synthetic,
                root=args.root,
                progress=not args.no_progress,
            )
        elif args.command == "train":
            from embed2prompt.commands.train import run_train
            from embed2prompt.inversion.training import TrainingOptions

            run_train(
                TrainingOptions(
                    corpus=args.corpus,
                    checkpoint=args.out,
                    steps=args.steps,
                    batch_size=args.batch_size,
                    learning_rate=args.learning_rate,
                    eval_every=args.eval_every,
                    max_texts=args.max_texts,
                    embedding_noise=args.embedding_noise,
                    threads=args.threads,
                ),
                settings=_settings(embedder=args.embedder, embedding_model=args.model),
                progress=not args.no_progress,
            )
        elif args.command == "invert":
            from embed2prompt.commands.invert import run_invert

            failed = run_invert(
                args.input,
                args.output,
                model=args.model,
                steps=args.steps,
                beam=args.beam,
                edits=args.edits,
                progress=not args.no_progress,
            )
            return 1 if failed else 0
        elif args.command == "eval":
            from embed2prompt.commands.evaluate import run_eval

            run_eval(
                model=args.model,
                corpus=args.corpus,
                samples=args.samples,
                steps=[int(part) for part in args.steps.split(",")],
                beam=args.beam,
                edits=args.edits,
                as_json=args.json,
            )
        return 0
    except Embed2PromptError as error:
        if args.debug:
            raise
        print(f"embed2prompt: error: {error}", file=sys.stderr)
        return 2
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        print(f"embed2prompt: error: invalid settings: {problems}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embed2prompt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

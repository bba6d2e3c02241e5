"""The ``embed2prompt`` command line: thin over the library."""

from __future__ import annotations

import argparse
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pydantic

from embed2prompt.corpus.held_out import EVALUATION_SETS
from embed2prompt.errors import Embed2PromptError
from embed2prompt.settings import Settings

INTERNAL_ERROR = 3  # 0 success, 1 some items failed, 2 bad usage or input, 130 interrupted


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options given on the command line."""
    given = {name: value for name, value in overrides.items() if value is not None}
    return Settings(**given)


def _default(setting: str) -> str:
    """What the run uses when an option is not given: the setting's environment variable,
    else its default, read from :class:`Settings` (the one place it is declared)."""
    value = Settings.model_fields[setting].default
    shown = value.value if isinstance(value, Enum) else value
    return f"default: EMBED2PROMPT_{setting.upper()}, else {shown}"


def _command_line(argv: list[str]) -> str:
    """The command that runs ``embed2prompt ARGV`` again, for the resume hint; a
    credential in ``--base-url`` (user, password, query) is shown as ``***``."""
    shown: list[str] = []
    hide_next = False
    for argument in argv:
        name, equals, value = argument.partition("=")
        is_base_url = len(name) > 2 and "--base-url".startswith(name)  # argparse: --base too
        if hide_next:
            argument, hide_next = _without_credentials(argument), False
        elif is_base_url and equals:
            argument = f"{name}={_without_credentials(value)}"
        elif is_base_url:
            hide_next = True
        shown.append(argument)
    return shlex.join(["embed2prompt", *shown])


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _whole_number(value: str, *, least: int) -> int:
    """``value`` as an int of at least ``least``, or argparse's usage error saying so."""
    if not value.strip().lstrip("-").isdigit() or int(value) < least:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {value!r}")
    return int(value)


def _at_least_zero(value: str) -> int:
    return _whole_number(value, least=0)


def _at_least_one(value: str) -> int:
    return _whole_number(value, least=1)


def _step_counts(value: str) -> list[int]:
    """``0,12,20``: refinement step counts, each a whole number >= 0."""
    try:
        return [_at_least_zero(part.strip()) for part in value.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers >= 0 such as 0,12, got {value!r}"
        ) from None


def _evaluation_sets(value: str) -> list[str]:
    """``held-out,out-of-domain``: names of evaluation sets."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in EVALUATION_SETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated names among {', '.join(EVALUATION_SETS)}, got {value!r}"
        )
    return names


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
            "example:\n  embed2prompt demo\n  embed2prompt demo --fluent\n"
            "  embed2prompt demo --engine"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--fluent",
        action="store_true",
        help="invert with the fluent inverter (models/fluent_model.pt) and its own search",
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
            "into OUTPUT (.npy: rows in input order; .jsonl: id, text, embedding). Resumable:\n"
            "embeddings are written as they come, and running the same command again after a\n"
            "crash, a kill or Ctrl-C embeds only the texts left. OpenAI requests are packed\n"
            "up to 2,048 inputs and 300,000 tokens. Exit 0 done, 2 bad usage, unreadable\n"
            "input or an output that cannot be written, 130 stopped early.\n\n"
            "examples:\n"
            "  embed2prompt embed questions.txt -o questions.npy\n"
            "  embed2prompt embed docs.jsonl -o docs.jsonl \\\n"
            "      --embedder openai --model text-embedding-3-small   # needs OPENAI_API_KEY"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_argument("input", type=Path, help="a .txt or .jsonl file of texts")
    embed.add_argument("-o", "--output", type=Path, required=True, help="a .npy or .jsonl file")
    embed.add_argument("--embedder", choices=["local", "openai"], help=_default("embedder"))
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
            "`corpus synthetic` appends only the synthetic prompts, one a line, to the file\n"
            "--out names (for `bank add` and `train --fluent --texts`); run it again with\n"
            "another --seed for more, different prompts.\n\n"
            "example:\n"
            "  embed2prompt corpus build --out data/corpus --synthetic 2000\n"
            "  embed2prompt corpus synthetic --out data/synthetic.txt --synthetic 1000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    corpus.add_argument("action", choices=["build", "synthetic"])
    corpus.add_argument("--out", type=Path, default=Path("data/corpus"), help="output folder")
    corpus.add_argument("--sources", help="comma-separated source names (default: all)")
    corpus.add_argument(
        "--synthetic", type=int, default=0, help="synthetic prompts to generate (default 0)"
    )
    corpus.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic prompts (default 0)"
    )
    corpus.add_argument("--root", type=Path, help="an already unpacked package tree to read")
    corpus.add_argument("--no-progress", action="store_true", help="no progress bar")

    bank = commands.add_parser(
        "bank",
        help="add texts like those you invert to a model's prompt bank",
        description=(
            "Embed texts (one a line) with the model's embedder and add them to its prompt\n"
            "bank, the training texts the search starts from: texts of the kind you invert\n"
            "bring prompts closer to their targets without retraining. The bank keeps them\n"
            "verbatim: do not share a model with a bank of private text.\n\n"
            "example:\n"
            "  embed2prompt bank add my_prompts.txt --model runs/minilm/model.pt"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bank.add_argument("action", choices=["add"])
    bank.add_argument(
        "files", type=Path, nargs="+", help=".txt (one text a line) or .jsonl (field text)"
    )
    bank.add_argument(
        "--model",
        type=Path,
        required=True,
        help="the checkpoint whose bank grows (no default: the repository's model is shared)",
    )

    align = commands.add_parser(
        "align",
        help="fit a map from another embedder's vectors into the inverter's space",
        description=(
            "Fit an aligner from texts embedded by another embedder (any dimension): the\n"
            "texts are embedded again with the inverter's embedder, a linear map (ridge or\n"
            "orthogonal Procrustes, whichever scores higher on held-out pairs) is fitted,\n"
            "and its held-out mean cosine printed. Then: invert ... --aligner FILE.\n\n"
            "examples:\n"
            "  embed2prompt align pairs.jsonl -o mpnet.npz   # fields text and embedding\n"
            "  embed2prompt align --texts texts.txt --embeddings vectors.npy -o mpnet.npz"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    align.add_argument(
        "pairs", type=Path, nargs="?", help="a .jsonl of records with text and embedding"
    )
    align.add_argument("-o", "--output", type=Path, required=True, help="the .npz to write")
    align.add_argument("--texts", type=Path, help="one text a line (with --embeddings)")
    align.add_argument(
        "--embeddings", type=Path, help="a .npy of the texts' vectors, in order (with --texts)"
    )
    align.add_argument(
        "--name", help="the foreign embedder's name (default: the input file's stem)"
    )
    align.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default 0)")

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
    trainer.add_argument(
        "--fluent",
        action="store_true",
        help="train the fluent inverter (an adapter into the frozen SmolLM2) instead",
    )
    trainer.add_argument(
        "--texts",
        type=Path,
        action="append",
        default=[],
        help="--fluent: a .txt or .jsonl file of training texts (repeatable)",
    )
    trainer.add_argument(
        "--bank",
        type=Path,
        action="append",
        default=[],
        help="--fluent: a prompt bank (NAME.bank.npz) whose texts to train on (repeatable)",
    )
    trainer.add_argument(
        "--emphasis",
        type=_at_least_one,
        default=1,
        help="--fluent: times an epoch each --texts text is seen (bank texts: once)",
    )
    trainer.add_argument(
        "--prefix-length",
        type=_at_least_one,
        help="--fluent: vectors the embedding becomes (default: AdapterConfig's, 4)",
    )
    trainer.add_argument(
        "--adapter-hidden",
        type=_at_least_one,
        help="--fluent: the adapter's hidden width (default: AdapterConfig's, 2,048)",
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
        help="turn a file of embeddings back into prompts (resumable)",
        description=(
            "Invert every row of INPUT (.npy rows; .jsonl with field 'embedding' and optional\n"
            "'id'; .parquet with a list column 'embedding' and optional 'id') into OUTPUT\n"
            "(.jsonl or .parquet): index, id, prompt, prompt_similarity, similarity,\n"
            "best_variant, success, error, processing_time. Rows are streamed (flat memory)\n"
            "and written as they finish. Run the same command again after a crash or Ctrl-C\n"
            "to finish the rows left. Exit 0 all rows succeeded, 1 some failed (see their\n"
            "error), 2 bad usage, unreadable input or an output that cannot be written,\n"
            "130 stopped early.\n\n"
            "examples:\n"
            "  embed2prompt invert vectors.npy -o prompts.jsonl\n"
            "  embed2prompt invert vectors.parquet -o prompts.parquet --evaluate --variants 3 \\\n"
            "      --generator openai --model gpt-4o-mini --tier tier_2 --concurrency 20\n"
            "  embed2prompt invert shards/ -o prompts.parquet --engine ray --ray-address auto"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    invert.add_argument(
        "input", type=Path, help="a .npy, .jsonl or .parquet file of embeddings, or a folder"
    )
    invert.add_argument(
        "-o", "--output", type=Path, required=True, help="a .jsonl or .parquet file"
    )
    invert.add_argument(
        "--inverter",
        type=Path,
        help=f"the inversion model checkpoint ({_default('model_path')})",
    )
    invert.add_argument(
        "--aligner",
        type=Path,
        help="an aligner from `embed2prompt align`: the input is that embedder's vectors",
    )
    invert.add_argument(
        "--concurrency", type=int, default=10, help="rows in progress at once (default 10)"
    )
    invert.add_argument(
        "--evaluate",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="judge each prompt by what the generator writes from it (default: off)",
    )
    invert.add_argument(
        "--variants", type=int, default=0, help="refined variants per prompt (default 0: none)"
    )
    invert.add_argument(
        "--retry-failed", action="store_true", help="when resuming, run failed rows again"
    )
    invert.add_argument(
        "--tier", help=f"OpenAI rate-limit tier, tier_1..tier_5 ({_default('rate_limit_tier')})"
    )
    invert.add_argument("--rpm", type=float, help="requests per minute (overrides the tier's)")
    invert.add_argument("--tpm", type=float, help="tokens per minute (overrides the tier's)")
    invert.add_argument(
        "--embedder",
        choices=["local", "openai"],
        help=f"the embedder the inverter was trained for ({_default('embedder')})",
    )
    invert.add_argument(
        "--embedding-model", help="the API embedding model (with --embedder openai)"
    )
    invert.add_argument("--generator", choices=["local", "openai"], help=_default("generator"))
    invert.add_argument(
        "--model", help="the generator's model name (default depends on --generator)"
    )
    invert.add_argument("--base-url", help="OpenAI-compatible base URL (default: OPENAI_BASE_URL)")
    invert.add_argument(
        "--steps",
        type=int,
        help=f"refinement steps per prompt ({_default('refinement_steps')})",
    )
    invert.add_argument(
        "--beam", type=int, help=f"sequence beam width ({_default('refinement_beam')})"
    )
    invert.add_argument(
        "--edits",
        type=int,
        help=f"word edits tried per hypothesis a step ({_default('refinement_edits')})",
    )
    invert.add_argument(
        "--fluency",
        type=float,
        help="weight of readability against cosine in refinement, 0: cosine alone "
        f"({_default('refinement_fluency')})",
    )
    invert.add_argument(
        "--neighbours",
        type=int,
        help="training texts from the model's prompt bank among the first guesses "
        f"({_default('retrieval_neighbours')})",
    )
    invert.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: Ray Data, on a local instance or a cluster",
    )
    invert.add_argument(
        "--ray-address", help="an existing Ray cluster (auto, ray://HOST:10001); default: local"
    )
    invert.add_argument(
        "--actors", type=int, help="Ray actors inverting at once (default: one per CPU)"
    )
    invert.add_argument("--json", action="store_true", help="print the summary as JSON")
    invert.add_argument("--no-progress", action="store_true", help="no progress bar")

    report = commands.add_parser(
        "report",
        help="an HTML report of a results file",
        description=(
            "Draw a self-contained HTML page (opens offline) from the output of invert:\n"
            "similarity histogram, prompt versus generation similarity, variant gains,\n"
            "time per row, failures, and the best and worst prompts.\n\n"
            "example:\n"
            "  embed2prompt report prompts.jsonl -o report.html"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("results", type=Path, help="a .jsonl or .parquet file written by invert")
    report.add_argument("-o", "--output", type=Path, required=True, help="the .html file to write")

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
    evaluate.add_argument(
        "--samples", type=_at_least_zero, default=200, help="test texts to use (0: all)"
    )
    evaluate.add_argument(
        "--steps", type=_step_counts, default=[0, 12], help="comma-separated refinement steps"
    )
    evaluate.add_argument(
        "--batch", type=_at_least_one, default=32, help="targets inverted together (default 32)"
    )
    evaluate.add_argument("--beam", type=int, help="sequence beam (default: the model's own)")
    evaluate.add_argument(
        "--edits", type=int, help="word edits per hypothesis a step (default: the model's own)"
    )
    evaluate.add_argument(
        "--fluency",
        type=float,
        help="weight of readability against cosine in refinement (0: cosine alone; "
        "default: the model's own)",
    )
    evaluate.add_argument(
        "--neighbours",
        type=_at_least_zero,
        default=2,
        help="training texts from the model's prompt bank added to the first guesses (0: none)",
    )
    evaluate.add_argument(
        "--completions",
        type=_at_least_zero,
        help="the inverter's rewrites of each hypothesis's tail a step (default: the model's)",
    )
    evaluate.add_argument(
        "--strength",
        type=float,
        help="re-decode conditioned on target + S x (target - hypothesis) a step (0: off; "
        "default: the model's own)",
    )
    evaluate.add_argument(
        "--sets",
        type=_evaluation_sets,
        default=list(EVALUATION_SETS),
        help=f"comma-separated sets to score (default: all of {', '.join(EVALUATION_SETS)})",
    )
    evaluate.add_argument(
        "--readability",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="judge whether prompts read as English with Gemma-3-270M (about 0.1 s a text)",
    )
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

                run_demo(fluent=args.fluent)
        elif args.command == "serve":
            from embed2prompt.service.server import serve
            from embed2prompt.settings import Settings

            overrides = {"host": args.host, "port": args.port}
            serve(Settings(**{k: v for k, v in overrides.items() if v is not None}))
        elif args.command == "embed":
            from embed2prompt.commands.embed import run_embed

            return run_embed(
                args.input,
                args.output,
                settings=_settings(
                    embedder=args.embedder,
                    embedding_model=args.model,
                    openai_base_url=args.base_url,
                ),
                progress=not args.no_progress,
                command=_command_line(sys.argv[1:] if argv is None else argv),
            )
        elif args.command == "bank":
            from embed2prompt.commands.bank import run_bank_add

            run_bank_add(args.model, args.files, settings=_settings())
        elif args.command == "align":
            from embed2prompt.commands.align import run_align

            run_align(
                args.pairs,
                args.output,
                texts_path=args.texts,
                embeddings_path=args.embeddings,
                name=args.name,
                seed=args.seed,
            )
        elif args.command == "corpus" and args.action == "synthetic":
            from embed2prompt.commands.corpus import run_corpus_synthetic

            run_corpus_synthetic(
                args.out, count=args.synthetic, seed=args.seed, progress=not args.no_progress
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
        elif args.command == "train" and args.fluent:
            from embed2prompt.commands.train import run_train_fluent
            from embed2prompt.inversion.prefix_lm import AdapterConfig
            from embed2prompt.inversion.prefix_training import PrefixTrainingOptions

            given = {"prefix_length": args.prefix_length, "hidden": args.adapter_hidden}
            sizes = {name: value for name, value in given.items() if value is not None}
            run_train_fluent(
                PrefixTrainingOptions(
                    checkpoint=args.out,
                    steps=args.steps,
                    batch_size=args.batch_size,
                    learning_rate=args.learning_rate,
                    save_every=args.eval_every,
                    embedding_noise=args.embedding_noise,
                    threads=args.threads,
                    emphasis=args.emphasis,
                    adapter=AdapterConfig(**sizes),
                ),
                settings=_settings(embedder=args.embedder, embedding_model=args.model),
                text_files=args.texts,
                banks=args.bank,
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
            from embed2prompt.batch.ray_engine import RayOptions
            from embed2prompt.batch.run import BatchOptions
            from embed2prompt.commands.invert import run_invert

            settings = _settings(
                rate_limit_tier=args.tier,
                requests_per_minute=args.rpm,
                tokens_per_minute=args.tpm,
                embedder=args.embedder,
                embedding_model=args.embedding_model,
                generator=args.generator,
                generator_model=args.model,
                openai_base_url=args.base_url,
                refinement_steps=args.steps,
                refinement_beam=args.beam,
                refinement_edits=args.edits,
                refinement_fluency=args.fluency,
                retrieval_neighbours=args.neighbours,
            )
            return run_invert(
                args.input,
                args.output,
                inverter_path=args.inverter or Path(settings.model_path),
                settings=settings,
                options=BatchOptions(
                    concurrency=args.concurrency,
                    evaluate=args.evaluate,
                    variants=args.variants,
                    retry_failed=args.retry_failed,
                ),
                progress=not args.no_progress,
                as_json=args.json,
                ray_options=(
                    RayOptions(address=args.ray_address, actors=args.actors)
                    if args.engine == "ray"
                    else None
                ),
                command=_command_line(sys.argv[1:] if argv is None else argv),
                aligner_path=args.aligner,
            )
        elif args.command == "report":
            from embed2prompt.batch.report import write_report

            summary = write_report(args.results, args.output)
            print(
                f"wrote {args.output}: {summary['total_processed']} rows, "
                f"{summary['failed']} failed",
                file=sys.stderr,
            )
        elif args.command == "eval":
            from embed2prompt.commands.evaluate import run_eval

            run_eval(
                model=args.model,
                corpus=args.corpus,
                samples=args.samples,
                steps=args.steps,
                beam=args.beam,
                edits=args.edits,
                neighbours=args.neighbours,
                batch=args.batch,
                fluency=args.fluency,
                completions=args.completions,
                strength=args.strength,
                sets=args.sets,
                readability=args.readability,
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
    except Exception as error:  # a bug or an environment problem: one line, not a traceback
        if args.debug:
            raise
        print(
            f"embed2prompt: internal error: {type(error).__name__}: {error} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())

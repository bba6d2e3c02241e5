"""The one settings class: read once from the environment, then passed down explicitly.

Variables use the ``EMBED2PROMPT_`` prefix (``EMBED2PROMPT_RATE_LIMIT_TIER=tier_3``), except
the standard ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` that every OpenAI tool reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from embed2prompt.engine.retry import RetryPolicy
from embed2prompt.engine.tiers import RateLimitConfig, RateLimitTier
from embed2prompt.errors import ConfigurationError
from embed2prompt.inversion.budget import PIPELINE_SEARCH, PIPELINE_STEPS, SearchBudget
from embed2prompt.inversion.model_paths import DEFAULT_MODEL, default_cache_dir

# SmolLM2 asked to restate a recovered prompt writes text closer to the target than when
# it answers the prompt, because recovered prompts are often loose keywords that a small
# model answers off-topic. Measured on the out-of-domain set in the first sessions (the
# answering template's figures were not kept; other templates: docs/development-log.md,
# "How the quality figures moved in the second session").
DEFAULT_PROMPT_TEMPLATE = (
    "Rewrite the following as one clear sentence, keeping its topic and key words:\n{prompt}"
)


class Settings(BaseSettings):
    """Configuration of embed2prompt. ``Settings()`` reads the environment."""

    model_config = SettingsConfigDict(
        env_prefix="EMBED2PROMPT_",
        extra="ignore",
        validate_default=True,
        frozen=True,
        populate_by_name=True,
    )

    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "EMBED2PROMPT_OPENAI_API_KEY"),
        description="Key for OpenAI or a compatible server; needed only by OpenAI backends.",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "EMBED2PROMPT_OPENAI_BASE_URL"),
        description="Base URL of an OpenAI-compatible API, e.g. http://localhost:8080/v1.",
    )
    embedder: Literal["local", "openai"] = Field(
        default="local", description="Where embeddings come from: the local model or an API."
    )
    embedding_model: str | None = Field(
        default=None,
        description="Embedding model; default all-MiniLM-L6-v2 (local) or "
        "text-embedding-3-small (openai).",
    )
    embedding_dimensions: int | None = Field(
        default=None, ge=1, description="Shorter text-embedding-3 vectors, made by the server."
    )
    generator: Literal["local", "openai"] = Field(
        default="local", description="Which LLM writes text from prompts."
    )
    generator_model: str | None = Field(
        default=None,
        description="Chat model; default SmolLM2-135M-Instruct (local) or gpt-4o-mini (openai).",
    )
    rate_limit_tier: RateLimitTier = Field(
        default=RateLimitTier.TIER_2, description="OpenAI usage tier whose limits to keep."
    )
    custom_rate_limits: RateLimitConfig | None = Field(
        default=None,
        description="Limits of your own (a RateLimitConfig); when set, the tier and the "
        "per-minute overrides are not used.",
    )
    requests_per_minute: float | None = Field(
        default=None, gt=0, description="Override the tier's requests per minute."
    )
    tokens_per_minute: float | None = Field(
        default=None, gt=0, description="Override the tier's tokens per minute."
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis holding rate limits shared by every process (redis://host:6379/0); "
        "unset: each process keeps its own.",
    )
    rate_limit_name: str = Field(
        default="default",
        min_length=1,
        description="Which shared limits (an organisation or API key) in redis_url.",
    )
    request_timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds one HTTP attempt may take."
    )
    max_attempts: int = Field(default=6, ge=1, description="Attempts per call, the first included.")
    retry_base_delay_s: float = Field(default=0.5, ge=0)
    retry_max_delay_s: float = Field(default=20.0, ge=0)

    # The pipeline (ParallelPromptGenerator): how prompts are judged and refined.
    prompt_template: str = Field(
        default=DEFAULT_PROMPT_TEMPLATE,
        description="How a recovered prompt is put to the generator; must contain {prompt}.",
    )
    generation_max_tokens: int = Field(
        default=48, ge=1, description="Most tokens the generator writes per evaluation."
    )
    generation_temperature: float = Field(
        default=0.2, ge=0.0, le=2.0, description="Sampling temperature of evaluations."
    )
    generation_seed: int = Field(default=0, description="Seed of every evaluation's sampling.")
    # The pipeline's refinement (SearchBudget, inversion/budget.py). The steps default to
    # the pipeline's; the rest, left unset, are the model's own search (a checkpoint's,
    # else the pipeline's and the library's defaults), so a fluent model refines as it
    # was measured to.
    refinement_steps: int = Field(
        default=PIPELINE_STEPS,
        ge=0,
        description="Embedding-feedback refinement steps per inversion.",
    )
    refinement_beam: int | None = Field(
        default=None,
        ge=1,
        description="Hypotheses kept per target between refinement steps (unset: the model's).",
    )
    refinement_edits: int | None = Field(
        default=None,
        ge=0,
        description="Word edits tried per hypothesis a refinement step (unset: the model's).",
    )
    refinement_fluency: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Weight of the inverter's fluency against cosine when refinement ranks "
        "hypotheses (0: cosine alone; unset: the model's, else the pipeline's "
        f"{PIPELINE_SEARCH['fluency']}).",
    )
    retrieval_neighbours: int | None = Field(
        default=None,
        ge=0,
        description="Training texts from the model's prompt bank added to each inversion's "
        f"first guesses (0: none; unset: the model's, else {SearchBudget.neighbours}).",
    )
    aligner: str | None = Field(
        default=None,
        description="An aligner file (embed2prompt align): the inputs are that embedder's "
        "vectors, mapped into the inverter's space.",
    )
    aligner_folder: str | None = Field(
        default=None,
        description="The service's aligners: NAME.npz files that a request names.",
    )
    feedback: bool = Field(
        default=True,
        description="With an aligner whose embedder can be called (an API, a local model), "
        "refine by cosine in that embedder's space (false: in the mapped space).",
    )
    feedback_lexicon: int | None = Field(
        default=None,
        ge=0,
        description="Words of the search's lexicon (the most frequent first) that the "
        "feedback embedder embeds once, cached, for word edits in its own space; unset: "
        "all (20,000: about 40,000 tokens through an API); 0: none, the edits follow the "
        "mapped residual.",
    )
    num_variants: int = Field(
        default=3, ge=1, description="Variants per prompt when variants are asked for."
    )
    item_timeout_s: float = Field(
        default=300.0, gt=0, description="Seconds one embedding may take before it fails."
    )

    # The HTTP service (embed2prompt serve, python api/app.py).
    model_path: str = Field(
        default=str(DEFAULT_MODEL),
        description="The inverter checkpoint of every entry point (service, invert, eval, demo).",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Where runs cache what they compute once per machine, such as the "
        "lexicon's embeddings by an embedder other than the checkpoint's own (default "
        "$XDG_CACHE_HOME/embed2prompt, else ~/.cache/embed2prompt).",
    )
    host: str = Field(default="127.0.0.1", description="Address the service listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the service listens on.")
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("API_KEY", "EMBED2PROMPT_API_KEY"),
        description="When set, every endpoint but /health requires it (Bearer or X-API-Key).",
    )
    max_embeddings_per_request: int = Field(
        default=256, ge=1, description="Most embeddings one synchronous request may carry."
    )
    jobs_database: str = Field(
        default="data/jobs.sqlite3", description="SQLite file of the service's jobs and results."
    )
    max_embeddings_per_job: int = Field(
        default=100_000, ge=1, description="Most embeddings one job may carry."
    )
    max_request_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest request body accepted."
    )
    max_upload_bytes: int = Field(
        default=4 * 1024**3,
        ge=1024,
        description="Largest streamed job upload (POST /jobs/upload) accepted.",
    )

    # The OpenAI Batch API mode (invert --batch-api, jobs with "mode": "batch"). The caps
    # default to OpenAI's own and may only be lowered.
    batch_max_requests_per_file: int = Field(
        default=50_000, ge=1, le=50_000, description="Requests per Batch API input file."
    )
    batch_max_file_bytes: int = Field(
        default=200 * 1024**2, ge=1024, le=200 * 1024**2, description="Bytes per input file."
    )
    batch_queue_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Input tokens a model's batch queue holds at once; default the tier's "
        "batch-queue limit (its tokens_per_day).",
    )
    batch_poll_initial_s: float = Field(
        default=5.0, gt=0, description="First pause between polls of running batches."
    )
    batch_poll_max_s: float = Field(
        default=300.0, gt=0, description="Longest pause between polls (the pause doubles)."
    )
    batch_max_resubmits: int = Field(
        default=2,
        ge=0,
        description="Times a request that failed in a batch is sent again before its "
        "error is the row's.",
    )
    batch_join_chunk: int = Field(
        default=1000, ge=1, description="Result lines recorded per transaction when joining."
    )
    batch_cancel_wait_s: float = Field(
        default=5.0,
        ge=0,
        description="How long DELETE /jobs/{id} of a batch job waits for the API to stop "
        "its batches before it answers (the job is 'cancelling' until they stop).",
    )
    batch_keep_files: bool = Field(
        default=False,
        description="Keep a batch's input, output and error files at the API once its "
        "results are joined (default: delete them; OpenAI charges for and limits storage).",
    )

    @field_validator("prompt_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        if "{prompt}" not in value:
            raise ValueError("prompt_template must contain {prompt}, where the prompt goes")
        try:
            value.format(prompt="")
        except (IndexError, KeyError, ValueError) as error:
            raise ValueError(
                f"prompt_template may use only the {{prompt}} placeholder "
                f"(write {{{{ and }}}} for literal braces): {error}"
            ) from None
        return value

    @field_validator("rate_limit_tier", mode="before")
    @classmethod
    def _parse_tier(cls, value: object) -> object:
        return RateLimitTier(value) if isinstance(value, str) else value

    def require_openai_api_key(self) -> str:
        """The API key, or a clear error naming the variable to set."""
        if self.openai_api_key is None or not self.openai_api_key.get_secret_value():
            raise ConfigurationError(
                "OPENAI_API_KEY is not set; an OpenAI backend needs it "
                "(export OPENAI_API_KEY=... or choose the local backend)"
            )
        return self.openai_api_key.get_secret_value()

    @property
    def rate_limits(self) -> RateLimitConfig:
        """Custom limits when given, else the tier's with this settings' overrides."""
        if self.custom_rate_limits is not None:
            return self.custom_rate_limits
        limits = self.rate_limit_tier.config
        if self.requests_per_minute is not None:
            limits = dataclasses.replace(limits, requests_per_minute=self.requests_per_minute)
        if self.tokens_per_minute is not None:
            limits = dataclasses.replace(limits, tokens_per_minute=self.tokens_per_minute)
        return limits

    @property
    def search_choices(self) -> dict[str, Any]:
        """The refinement these settings choose, as :class:`SearchBudget` fields
        (``None``: not chosen, the model's own)."""
        return {
            "steps": self.refinement_steps,
            "beam": self.refinement_beam,
            "edits": self.refinement_edits,
            "fluency": self.refinement_fluency,
            "neighbours": self.retrieval_neighbours,
        }

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay_s=self.retry_base_delay_s,
            max_delay_s=self.retry_max_delay_s,
        )

"""Chat completions from OpenAI or any OpenAI-compatible server, through the engine."""

from __future__ import annotations

from embed2prompt.engine.executor import CallExecutor
from embed2prompt.errors import InputError
from embed2prompt.generators.base import Generation, GenerationRequest
from embed2prompt.openai_api.client import OpenAIClient


class OpenAIGenerator:
    """``model`` on an OpenAI-compatible chat API, limited and retried by ``executor``."""

    def __init__(
        self, client: OpenAIClient, executor: CallExecutor, *, model: str = "gpt-4o-mini"
    ) -> None:
        if not model or not isinstance(model, str):
            raise InputError(f"model must be a model name, got {model!r}")
        self._client = client
        self.executor = executor
        self.model = model

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    async def generate(self, request: GenerationRequest) -> Generation:
        messages = request.messages()
        estimate = self._client.estimate_chat_tokens(
            messages, model=self.model, max_tokens=request.max_tokens
        )
        response = await self.executor.call(
            lambda: self._client.create_chat_completion(
                messages,
                model=self.model,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                seed=request.seed,
            ),
            tokens=estimate,
        )
        completion = response.value
        return Generation(
            text=completion.text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason,
        )

    async def aclose(self) -> None:
        await self._client.close()
        await self.executor.aclose()

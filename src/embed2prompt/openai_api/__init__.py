"""Calling OpenAI-compatible APIs: the client and offline token counting."""

from embed2prompt.openai_api.client import ApiResponse, ChatCompletion, OpenAIClient
from embed2prompt.openai_api.tokens import (
    count_tokens,
    estimate_chat_tokens,
    estimate_embedding_tokens,
)

__all__ = [
    "ApiResponse",
    "ChatCompletion",
    "OpenAIClient",
    "count_tokens",
    "estimate_chat_tokens",
    "estimate_embedding_tokens",
]

"""Generators: an LLM that writes text from a prompt, local or behind an OpenAI-compatible API.

base     Generator protocol, GenerationRequest, Generation
local    LocalGenerator: SmolLM2-135M-Instruct on llama.cpp (the default)
openai   OpenAIGenerator: chat completions through the rate-limited engine
"""

from embed2prompt.generators.base import Generation, GenerationRequest, Generator

__all__ = ["Generation", "GenerationRequest", "Generator"]

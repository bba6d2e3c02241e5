"""The two demos of ``embed2prompt demo``, on the embedded defaults (no API key, no network).

- :mod:`~embed2prompt.demos.main_job`: the main job (`make demo`): ten texts embedded,
  inverted, judged by what the local LLM writes from them, refined into variants;
- :mod:`~embed2prompt.demos.engine`: the rate-limited engine (`demo --engine`) against
  the local OpenAI-compatible server, with latency, a rate limit and injected failures.
"""

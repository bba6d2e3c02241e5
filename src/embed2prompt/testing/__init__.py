"""Test support that ships with the package: a local OpenAI-compatible server, and a
free port on loopback for other servers a test starts.

Users can run their own integration tests and benchmarks against it, as ours do.
"""

from embed2prompt.testing.openai_server import FakeOpenAIServer, ServerConfig
from embed2prompt.testing.ports import free_port
from embed2prompt.testing.server_process import OpenAITestServer

__all__ = ["FakeOpenAIServer", "OpenAITestServer", "ServerConfig", "free_port"]

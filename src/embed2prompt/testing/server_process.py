"""Starting the local OpenAI-compatible server as a real process on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import asdict
from types import TracebackType
from typing import Any

from embed2prompt.errors import Embed2PromptError
from embed2prompt.testing.openai_server import ServerConfig


class OpenAITestServer:
    """``with OpenAITestServer(ServerConfig(rpm=600)) as server: server.url``.

    The server runs in its own process, so the client under test shares no event loop,
    GIL or memory with it, exactly as with a remote API.
    """

    def __init__(self, config: ServerConfig | None = None, *, startup_timeout_s: float = 30.0):
        self.config = config or ServerConfig()
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> OpenAITestServer:
        args = [sys.executable, "-m", "embed2prompt.testing", "--port", "0"]
        for name, value in asdict(self.config).items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + flag[2:])
            elif value is not None:
                args += [flag, str(value)]
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.stop()
            raise Embed2PromptError("the local OpenAI test server exited before it was ready")
        self.url = json.loads(line)["url"]
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ control

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def stats(self, *, arrivals: bool = True) -> dict[str, Any]:
        query = "" if arrivals else "?arrivals=0"
        stats: dict[str, Any] = self._request("GET", f"/_stats{query}")
        return stats

    def configure(self, **changes: Any) -> dict[str, Any]:
        config: dict[str, Any] = self._request("POST", "/_config", changes)
        return config

    def reset(self) -> None:
        self._request("POST", "/_reset", {})

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.root + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

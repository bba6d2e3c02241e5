"""A free TCP port on loopback, for a server that a test or benchmark starts.

The operating system picks a port that nothing listens on; the socket is closed before
the port is returned, so another process could take it first. That race is rare, and a
server that cannot bind fails at once rather than answering for someone else.
Servers that can report the port they bound (``--port 0``) should do that instead, as
:class:`~embed2prompt.testing.OpenAITestServer` does.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port

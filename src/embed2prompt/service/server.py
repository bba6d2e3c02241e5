"""``serve()``: the service under uvicorn, on the settings' host and port.

SIGINT or SIGTERM stops taking connections and lets requests in progress finish (up to
30 s) before the models are released.
"""

from __future__ import annotations

import logging
import sys

import pydantic

from embed2prompt import redaction
from embed2prompt.errors import Embed2PromptError
from embed2prompt.settings import Settings

GRACEFUL_SHUTDOWN_S = 30


def serve(settings: Settings | None = None) -> None:
    import uvicorn

    from embed2prompt.service.app import create_app

    settings = settings or Settings()
    # Our own messages (jobs resumed or failed) beside uvicorn's; never headers or keys.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    app = create_app(settings)
    app.state.models.load()  # a missing or bad checkpoint is an error before listening
    config = uvicorn.Config(  # sets up uvicorn's loggers, which the filter then joins
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        log_level="info",
    )
    # httpx logs each upstream URL, with a proxy's user:password@ in it when there is one.
    redaction.install(redaction.secrets_of(settings), ("", "uvicorn", "uvicorn.access"))
    uvicorn.Server(config).run()


def main() -> int:
    """``python api/app.py``: settings from the environment; errors as one line."""
    try:
        settings = Settings()
    except pydantic.ValidationError as error:
        print(f"embed2prompt: invalid settings: {error}", file=sys.stderr)
        return 2
    try:
        serve(settings)
    except Embed2PromptError as error:
        print(f"embed2prompt: {error}", file=sys.stderr)
        return 2
    return 0

"""``python -m embed2prompt.testing``: run the local OpenAI-compatible test server."""

import sys

from embed2prompt.testing.openai_server import main

main(sys.argv[1:])

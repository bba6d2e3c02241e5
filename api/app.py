"""``python api/app.py``: the seed's command to start the HTTP service.

Host and port come from the settings (``EMBED2PROMPT_HOST``, ``EMBED2PROMPT_PORT``;
default 127.0.0.1:8000), ``API_KEY`` turns on authentication. ``embed2prompt serve`` is
the same service.
"""

import sys

from embed2prompt.service.server import main

if __name__ == "__main__":
    sys.exit(main())

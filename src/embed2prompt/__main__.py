"""``python -m embed2prompt``: the command line."""

import sys

from embed2prompt.cli import console

sys.exit(console())

"""`python -m hk_tune.cli`: the `hk-tune` command."""

import sys

from hk_tune.cli import run

sys.exit(run())

"""`python -m shopbot.cli`: the same as the `shopbot` command."""

import sys

from shopbot.cli.main import main

sys.exit(main())

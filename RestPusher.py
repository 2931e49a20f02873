#!/usr/bin/env python3
"""Entry point so that ``python RestPusher.py`` works from a checkout (see push/cli.py)."""

import sys

from push.cli import main

if __name__ == "__main__":
    sys.exit(main())

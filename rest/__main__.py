"""``python -m rest``: the same command line as ``cogent-rest``."""

import sys

from rest.cli import main

sys.exit(main())

"""``python -m deo``: the command line of :mod:`deo.cli`."""

import sys

from deo.cli import main

sys.exit(main())

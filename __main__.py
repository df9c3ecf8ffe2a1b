"""`python -m genbench ...`: the `genbench` command line."""

import sys

from genbench.harness.cli import main

sys.exit(main())

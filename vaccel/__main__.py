"""`python -m vaccel`: the `vaccel` command."""

import sys

from vaccel.cli.main import main

sys.exit(main())

"""`python -m vaccel.server`: the `vaccel-agent` command."""

import sys

from .main import main

sys.exit(main())

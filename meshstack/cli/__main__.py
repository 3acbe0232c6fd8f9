"""`python -m meshstack.cli`: the `meshstack` command."""

import sys

from meshstack.cli import main

sys.exit(main())

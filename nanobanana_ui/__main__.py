"""`python -m nanobanana_ui`: the command line."""

import sys

from .cli import main

sys.exit(main())

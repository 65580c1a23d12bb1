"""``python -m genreslice``: the same as the ``genreslice`` command."""
from __future__ import annotations

import sys

from genreslice.scripts.cli import main

if __name__ == "__main__":
    sys.exit(main())

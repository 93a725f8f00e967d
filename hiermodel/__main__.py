"""``python -m hiermodel``: the same command line as the ``hiermodel`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

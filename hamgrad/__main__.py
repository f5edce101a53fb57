"""``python -m hamgrad``: the same program as the ``hamgrad`` console script."""

import sys

from hamgrad.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m jobcast ...` is the `jobcast` command; worker and Redis children start this way."""

import sys

from jobcast.web.runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())

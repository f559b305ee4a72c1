"""Training quality against wall-clock time, `python bench/train_quality.py [options]`
(`--help`): the program is the package bench/quality, whose docstring says what it measures
and how."""

import sys

from quality.cli import main

if __name__ == "__main__":
    sys.exit(main())

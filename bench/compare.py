"""The peer comparison's command, `python bench/compare.py [options]` (`--help`): the program is
the package bench/comparison, whose docstring says what it measures and how."""

import sys

from comparison.cli import main

if __name__ == "__main__":
    sys.exit(main())

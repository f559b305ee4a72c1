"""The memory-budget benchmark's command, `python bench/memory_budget.py [options]` (`--help`):
the program is the package bench/budgets, whose docstring says what it measures and how."""

import sys

from budgets.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""The `bptt` command line: `bptt check` (also `python -m bptt check`)."""

import argparse
import sys

from bptt import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bptt", description="Back-propagation through time on a fast core."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser(
        "check",
        help="check the core's gradients against the NumPy oracle and finite differences, and time both",
    )
    check.add_arguments(check_parser)
    args = parser.parse_args(argv)
    if args.command == "check":
        return check.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

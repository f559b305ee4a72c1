"""The `bptt` command line (also `python -m bptt`): `bptt train` and `bptt sample`, a
character-level language model on the core, and `bptt check`, the core against the oracle."""

import argparse
import os
import sys

from bptt import check, cli
from bptt.errors import OutputLost, UsageError


class ArgumentParser(argparse.ArgumentParser):
    """Bad options are one line on stderr and exit status 2, like every other bad input."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(message: str) -> str:
    """The message with its control characters escaped: one line, whatever a file or a
    checkpoint it quotes holds (a newline in a name, a terminal's escape sequence)."""
    return "".join(
        character if character.isprintable() else repr(character)[1:-1] for character in message
    )


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="bptt", description="Back-propagation through time on a fast core."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser(
        "train", help="train a character-level language model (default: on Python's stdlib)"
    )
    cli.add_train_arguments(train_parser)
    sample_parser = commands.add_parser("sample", help="generate text from a bptt train run")
    cli.add_sample_arguments(sample_parser)
    check_parser = commands.add_parser(
        "check",
        help="check the core's gradients against the NumPy oracle and finite differences, its "
        "bits at 1 and N threads, and time it against the oracle",
    )
    check.add_arguments(check_parser)
    args = parser.parse_args(argv)
    run = {"train": cli.run_train, "sample": cli.run_sample, "check": check.run}[args.command]
    try:
        return run(args)
    except UsageError as error:
        print(f"bptt {args.command}: error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except MemoryError as error:  # what the estimates up front did not foresee
        print(
            f"bptt {args.command}: error: out of memory ({str(error) or 'no details'}); "
            "try smaller sizes",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"bptt {args.command}: interrupted", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    except OutputLost as error:
        # what stdout still holds would fail again, with a traceback, when Python flushes it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"bptt {args.command}: error: {one_line(str(error))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

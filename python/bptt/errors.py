"""The error a user can fix: bad input to `bptt train` or `bptt sample`."""


class UsageError(Exception):
    """A bad file, text, checkpoint or option; the command line prints its message on one line
    and exits with status 2, without a traceback."""

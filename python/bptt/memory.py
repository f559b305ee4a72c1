"""Work too large for this machine is refused before it allocates anything: one line naming
the sizes, rather than a MemoryError mid-run or, with overcommit, a machine brought to a halt."""

from bptt import _core
from bptt.errors import UsageError


def shortfall(needed_bytes: int) -> str:
    """What is wrong with needing needed_bytes ("needs about ... GB of memory, more than the ...
    GB this machine has available"), or "" when they fit in the memory available (the core
    reads MemAvailable and SwapFree from /proc/meminfo, or physical memory where the kernel
    does not say)."""
    available = _core.available_memory_bytes()
    if needed_bytes <= available:
        return ""
    return (
        f"needs about {needed_bytes / 1e9:.3g} GB of memory, more than the "
        f"{available / 1e9:.3g} GB this machine has available"
    )


def check_available(needed_bytes: int, what: str, error: type[Exception] = UsageError) -> None:
    """`error` (a command's UsageError by default) when `what` needs more than the memory
    available, its message `what` and the shortfall."""
    problem = shortfall(needed_bytes)
    if problem:
        raise error(f"{what} {problem}")

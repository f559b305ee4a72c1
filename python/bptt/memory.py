"""Work too large for this machine is refused before it allocates anything: one line naming
the sizes, rather than a MemoryError mid-run or, with overcommit, a machine brought to a halt."""

from bptt import _core
from bptt.errors import UsageError


def check_available(needed_bytes: int, what: str, error: type[Exception] = UsageError) -> None:
    """`error` (a command's UsageError by default) when `what` needs more than the memory
    available (the core reads MemAvailable and SwapFree from /proc/meminfo, or physical memory
    where the kernel does not say)."""
    available = _core.available_memory_bytes()
    if needed_bytes > available:
        raise error(
            f"{what} needs about {needed_bytes / 1e9:.3g} GB of memory, more than the "
            f"{available / 1e9:.3g} GB this machine has available"
        )

"""Opening a file a user names, for reading it whole: a regular file only, its size known before
any of it is read. A device (/dev/zero), a pipe or a socket has no size to check against the
memory available, and may never end (or, a pipe, block the open until a writer comes)."""

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

_KINDS = {
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISFIFO: "a pipe",
    stat.S_ISSOCK: "a socket",
    stat.S_ISDIR: "a directory",
}


class NotRegularFile(OSError):
    """The path names something other than a regular file; str() says what it is: "a pipe"."""


def _kind(mode: int) -> str:
    return next((kind for test, kind in _KINDS.items() if test(mode)), "an unknown kind of file")


def other_than_regular(path: str | os.PathLike) -> str | None:
    """What the path names if it exists and is not a regular file ("a pipe"), else None (also
    when it cannot be looked up: opening it then says why)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else _kind(mode)


def open_regular(path: str | os.PathLike) -> tuple[BinaryIO, int]:
    """The file opened for reading in binary and its size in bytes; NotRegularFile, or the
    OSError of opening it (FileNotFoundError, PermissionError...), otherwise."""
    # O_NONBLOCK: opening a pipe returns at once rather than wait for a writer; it changes
    # nothing for a regular file
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(_kind(mode))
        file = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    return file, os.fstat(file.fileno()).st_size


def new_file_beside(path: Path) -> tuple[int, Path]:
    """A new, empty file in path's directory, opened for writing (its descriptor) and named
    after path, to replace it once written: created by this call (O_EXCL, not a file a planted
    name points to), with the permissions an open() of path would give it."""
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    mask = os.umask(0)  # read by setting it: no call only reads it
    os.umask(mask)
    os.fchmod(descriptor, 0o666 & ~mask)
    return descriptor, Path(name)


def read_whole(file: BinaryIO, size: int) -> bytes | None:
    """The file's `size` bytes (fewer if it shrank since), or None if it holds more: it grew
    after its size was checked, and reading on could take any amount of memory."""
    data = file.read(size)
    return None if file.read(1) else data

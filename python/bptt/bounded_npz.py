"""A .npz archive read one named member at a time, each member's declared sizes (the zip
directory's, then its .npy header's shape and dtype) checked against what the reader expects
before any of it is read: a small file that declares gigabytes (a member deflated 1000:1, an
array larger than expected, a member nobody asked for) is refused before anything is allocated.

Only what np.savez writes is read: uncompressed members, .npy headers of versions 1.0 and 2.0,
C-ordered arrays of the dtype asked for, never a pickle. Uncompressed, a member's bytes are in
the file, so that reading all of them takes about the file's size in memory."""

import math
import os
import warnings
import zipfile

import numpy as np

from bptt.regular_file import open_regular

SUFFIX = ".npy"
# a .npy header: magic string and version (8 bytes), its length (2 or 4), then at most numpy's
# default max_header_size (10,000 characters) of dictionary
_MAX_HEADER_BYTES = 8 + 4 + 10_000
_CHUNK_BYTES = 1 << 20  # members are read in pieces of this size: no second copy of a member
# what a damaged zip directory or member raises in zipfile (and read_magic, ValueError)
_DAMAGE = (
    zipfile.BadZipFile,
    EOFError,
    OSError,
    ValueError,  # UnicodeDecodeError too
    KeyError,
    NotImplementedError,
    RuntimeError,  # an encrypted member
    OverflowError,
)


class ArchiveError(Exception):
    """What is wrong with the archive, or with one member, which the message then names first."""


class BoundedNpz:
    """An open .npz file whose members are read by `read_array` and `read_string`, each checked
    against the shape and dtype asked for."""

    def __init__(self, path: str | os.PathLike):
        """The archive at `path` opened: the OSError of opening it (NotRegularFile for a
        device or a pipe), or ArchiveError if its zip directory is unreadable or declares
        members that are not in the file."""
        self._file, size = open_regular(path)
        try:
            self._zip = zipfile.ZipFile(self._file)
            self._members = _checked_members(self._zip.infolist(), size)
        except _DAMAGE as error:
            self._file.close()
            raise ArchiveError(f"not a readable zip archive ({_problem(error)})") from None
        except BaseException:
            self._file.close()
            raise

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def member_count(self) -> int:
        return len(self._members)

    def unexpected_members(self, names: set[str]) -> list[str]:
        """The archive's members other than the arrays `names` (each stored as name + .npy)."""
        return [
            member
            for member in self._members
            if not member.endswith(SUFFIX) or member.removesuffix(SUFFIX) not in names
        ]

    def read_array(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The array `name`, if it is there with this shape and dtype; else ArchiveError."""
        dtype = np.dtype(dtype)
        with self._open(name, math.prod(shape) * dtype.itemsize) as (member, data_bytes):
            found_shape, fortran_order, found_dtype = _read_header(name, member)
            if found_shape != tuple(shape) or found_dtype != dtype:
                raise ArchiveError(
                    f"{name} should be {_described(dtype, shape)}, found "
                    f"{_described(found_dtype, found_shape)}"
                )
            return _read_data(name, member, shape, dtype, fortran_order, data_bytes)

    def read_string(self, name: str, max_length: int) -> str:
        """The string `name` (a 0-d array of NumPy's unicode dtype), if it is there and at most
        max_length characters long; else ArchiveError."""
        itemsize = np.dtype("<U1").itemsize
        with self._open(name, max_length * itemsize, at_most=True) as (member, data_bytes):
            shape, fortran_order, dtype = _read_header(name, member)
            length = dtype.itemsize // itemsize
            if shape != () or dtype != np.dtype(f"<U{length}") or length > max_length:
                raise ArchiveError(
                    f"{name} should be a string of at most {max_length:,} characters, found "
                    f"{_described(dtype, shape)}"
                )
            return str(_read_data(name, member, (), dtype, fortran_order, data_bytes)[()])

    def _open(self, name: str, data_bytes: int, at_most: bool = False):
        """The member `name` opened, once its zip entry is checked to hold a header and
        data_bytes (at most that many, if `at_most`)."""
        info = self._members.get(name + SUFFIX)
        if info is None:
            raise ArchiveError(f"{name}{SUFFIX}: missing")
        header_and_data = info.file_size
        smallest = 0 if at_most else data_bytes
        if not smallest < header_and_data <= data_bytes + _MAX_HEADER_BYTES:
            raise ArchiveError(
                f"{info.filename}: declares {header_and_data:,} bytes, expected "
                f"{'at most ' if at_most else ''}{data_bytes:,} and a header"
            )
        return _OpenMember(self._zip, info)


def _checked_members(infos: list[zipfile.ZipInfo], size: int) -> dict[str, zipfile.ZipInfo]:
    """The zip directory's entries by name, checked to be stored, unencrypted, named once and
    all together no larger than the file (`size` bytes)."""
    members: dict[str, zipfile.ZipInfo] = {}
    stored_bytes = 0
    for info in infos:
        name = info.filename
        if name in members:
            raise ArchiveError(f"{name}: appears twice")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{name}: encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ArchiveError(
                f"{name}: compressed; only uncompressed members (as np.savez writes them) are read"
            )
        if info.file_size != info.compress_size:
            raise ArchiveError(
                f"{name}: declares {info.file_size:,} bytes, stored uncompressed in "
                f"{info.compress_size:,}"
            )
        stored_bytes += info.compress_size
        if stored_bytes > size:
            raise ArchiveError(
                f"{name}: with the members before it, declares more bytes than the file's {size:,}"
            )
        members[name] = info
    return members


class _OpenMember:
    """A member opened for reading, as (file, bytes of data after its header) once the header
    is read; zip errors while it is read as ArchiveError naming it."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo):
        self._archive, self._info = archive, info

    def __enter__(self):
        try:
            self._file = self._archive.open(self._info)
        except _DAMAGE as error:
            raise ArchiveError(f"{self._info.filename}: {_problem(error)}") from None
        return self._file, self._info.file_size

    def __exit__(self, kind, error, traceback):
        self._file.close()
        if isinstance(error, _DAMAGE):
            raise ArchiveError(f"{self._info.filename}: {_problem(error)}") from None


def _read_header(name: str, member) -> tuple[tuple, bool, np.dtype]:
    """The .npy header's shape, Fortran order and dtype."""
    version = np.lib.format.read_magic(member)
    read = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }.get(version)
    if read is not None:
        try:
            with warnings.catch_warnings():
                # numpy warns when it reparses a header in Python 2's syntax: a damaged one here
                warnings.simplefilter("error")
                return read(member)
        except Exception as error:  # noqa: BLE001
            # numpy parses the header's text with ast and tokenize, which raise more than
            # ValueError (tokenize.TokenError: found by tests/fuzz)
            raise ArchiveError(
                f"{name}{SUFFIX}: unreadable .npy header ({_problem(error)})"
            ) from None
    raise ArchiveError(
        f"{name}{SUFFIX}: .npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0"
    )


def _read_data(
    name: str, member, shape: tuple, dtype: np.dtype, fortran_order: bool, member_bytes: int
) -> np.ndarray:
    """The array's data, read into a new array, once the member is checked to hold exactly
    the header just read and the array's bytes."""
    if fortran_order and len(shape) > 1:
        raise ArchiveError(f"{name}{SUFFIX}: in Fortran order, expected C order")
    data_bytes = math.prod(shape) * dtype.itemsize
    if member.tell() + data_bytes != member_bytes:
        raise ArchiveError(
            f"{name}{SUFFIX}: its header and {data_bytes:,} bytes of data are not the "
            f"member's {member_bytes:,} bytes"
        )
    array = np.empty(shape, dtype)
    buffer = array.data.cast("B")
    filled = 0
    while filled < buffer.nbytes:
        # the last read reaches the member's end, where zipfile checks its CRC
        chunk = member.read(min(_CHUNK_BYTES, buffer.nbytes - filled))
        if not chunk:
            raise ArchiveError(f"{name}{SUFFIX}: truncated")
        buffer[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    return array


def _described(dtype: np.dtype, shape: tuple) -> str:
    """float32[3, 8], the notation of checkpoint errors."""
    return f"{dtype}{list(shape)}"


def _problem(error: BaseException) -> str:
    """An exception as one line: its message, or its type when it has none."""
    return " ".join(str(error).split()) or type(error).__name__

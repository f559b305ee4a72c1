"""The training text: where it comes from, its vocabulary, the held-out split, and the cut into
parallel streams that truncated BPTT walks through in order."""

import hashlib
import math
import os
import sysconfig
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import numpy as np

from bptt import memory
from bptt.errors import SettingError
from bptt.regular_file import NotRegularFile, open_regular, read_whole

VALIDATION_FRACTION = Fraction(1, 20)  # the last 5% is held out; a Fraction: lengths are exact
STDLIB = "stdlib"  # the name a checkpoint records for the default corpus
# The memory a text takes per byte of its file, at most (an ASCII text: a character a byte): the
# id (int64) of each character twice, in the corpus and in the streams' table, which outlive
# the bytes, the decoded string and its UTF-32 encoding.
MEMORY_PER_TEXT_BYTE = 16


def stdlib_files() -> list[Path]:
    """The standard library's own *.py sources, in a fixed sorted order, without test
    directories, site-packages, and the generated data that is Python only in name (the codec
    tables of encodings/ and the documentation strings of pydoc_data/, 18% of the bytes)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    excluded = {
        "site-packages",
        "dist-packages",
        "__pycache__",
        "idle_test",
        "encodings",
        "pydoc_data",
    }
    files = []
    for path in root.rglob("*.py"):
        folders = path.relative_to(root).parts[:-1]
        if any(part in excluded or part.startswith("test") for part in folders):
            continue
        files.append(path)
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


def read_stdlib_text() -> str:
    """The stdlib files' text, but for those not pure ASCII (17 files on CPython 3.11: a few
    hundred non-ASCII characters that would more than double the vocabulary)."""
    texts = []
    for path in stdlib_files():
        try:
            text = path.read_bytes().decode("ascii")
        except (OSError, UnicodeDecodeError):
            continue  # unreadable or not pure ASCII: left out, the same way on every run
        texts.append(text)
    if not texts:
        root = sysconfig.get_paths()["stdlib"]
        raise SettingError(
            lambda name: (
                f"default corpus: no readable *.py files under {root}; pass {name('text')} FILE"
            )
        )
    return "".join(texts)


def read_text_file(path: str | os.PathLike) -> str:
    """The file's text; else a SettingError about the setting `text` naming the file. Only a
    regular file is read, and only once its size is known to fit in the memory available."""
    try:
        file, size = open_regular(path)
    except FileNotFoundError:
        raise _text_error(path, "no such file") from None
    except NotRegularFile as error:
        raise _text_error(path, f"is {error}, expected a regular file of UTF-8 text") from None
    except OSError as error:
        raise _text_error(path, f"cannot read it ({error.strerror})") from None
    with file:
        shortfall = memory.shortfall(size * MEMORY_PER_TEXT_BYTE)
        if shortfall:
            raise _text_error(path, f"{size:,} bytes: a run on it {shortfall}")
        try:
            data = read_whole(file, size)
        except OSError as error:
            raise _text_error(path, f"cannot read it ({error.strerror})") from None
    if data is None:
        raise _text_error(path, f"grew while it was read (from {size:,} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _text_error(
            path, f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None


def _text_error(path, problem: str) -> SettingError:
    return SettingError(lambda name: f"{name('text')} {path}: {problem}")


def read_text(source: str) -> str:
    """The text named by a checkpoint's or the command line's source: STDLIB or a file path."""
    return read_stdlib_text() if source == STDLIB else read_text_file(source)


def recorded_source(source: str) -> str:
    """The source as a checkpoint records it: STDLIB, or the file's absolute path, so that the
    run resumes from any directory."""
    return source if source == STDLIB else os.path.abspath(source)


def text_fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Vocabulary:
    """The characters of a text, sorted by code point; a character's id is its rank."""

    def __init__(self, characters: str):
        self.characters = characters

    # Built at first use: a checkpoint's vocabulary is read (and compared) without them, in
    # memory proportional to its length rather than its largest code point.
    @cached_property
    def _ids(self) -> dict[str, int]:
        return {character: i for i, character in enumerate(self.characters)}

    @cached_property
    def _table(self) -> np.ndarray:
        """code point -> id (or -1), so that encoding a long text is one NumPy gather."""
        table = np.full(max(map(ord, self.characters), default=0) + 1, -1, np.int64)
        table[[ord(character) for character in self.characters]] = np.arange(len(self))
        return table

    @classmethod
    def of_text(cls, text: str) -> "Vocabulary":
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.characters)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.characters == other.characters

    def __contains__(self, character: str) -> bool:
        return character in self._ids

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int64, the core's own id type, so that it never converts them)."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        if codes.size and codes.max() >= self._table.size:
            raise ValueError("text holds characters outside the vocabulary")
        ids = self._table[codes]
        if ids.size and ids.min() < 0:
            raise ValueError("text holds characters outside the vocabulary")
        return ids

    def decode(self, ids) -> str:
        return "".join(self.characters[i] for i in np.asarray(ids).ravel())


@dataclass(frozen=True)
class Corpus:
    """A text split into training ids (the first 95%) and validation ids (the last 5%)."""

    vocabulary: Vocabulary
    train_ids: np.ndarray
    validation_ids: np.ndarray
    fingerprint: str

    @classmethod
    def of_text(cls, text: str) -> "Corpus":
        vocabulary = Vocabulary.of_text(text)
        ids = vocabulary.encode(text)
        split = len(ids) - validation_length(len(ids))
        return cls(vocabulary, ids[:split], ids[split:], text_fingerprint(text))


def validation_length(text_length: int) -> int:
    return math.floor(text_length * VALIDATION_FRACTION)


def shortest_text_length(batch: int, seq_len: int) -> int:
    """The fewest characters that give `batch` streams of `seq_len` (input, target) pairs to
    train on and two characters (one pair) to validate on; in closed form, so that a huge
    --batch or --seq-len is refused at once rather than counted up to."""
    needed = batch * seq_len + 1
    # L - floor(f·L) >= needed  <=>  ceil((1 - f)·L) >= needed  <=>  (1 - f)·L > needed - 1,
    # in exact rational arithmetic (no float rounding, no overflow for any integer sizes)
    for_training = math.floor((needed - 1) / (1 - VALIDATION_FRACTION)) + 1
    for_validation = math.ceil(2 / VALIDATION_FRACTION)  # floor(f·L) >= 2
    return max(for_training, for_validation)


class Streams:
    """Truncated BPTT over `batch` parallel streams: the training ids cut into `batch` equal,
    consecutive pieces, each read `seq_len` characters a step. Step k's inputs are characters
    [k·T, k·T + T) of every stream and its targets the characters one further on, so the last
    target of a step is the first input of the next: no character is skipped between steps.

    The pieces overlap by one character (piece b's last target is piece b+1's first input), so
    every consecutive pair of the training text is an (input, target) pair once per epoch, but
    the last (len - 1) mod batch pairs. The last step of an epoch takes the remaining, shorter
    chunk; then every stream starts again at its beginning, and the trainer from a zero state.
    """

    def __init__(self, ids: np.ndarray, batch: int, seq_len: int):
        self.batch, self.seq_len = batch, seq_len
        self.length = (len(ids) - 1) // batch  # (input, target) pairs per stream
        if self.length < seq_len:
            raise ValueError(
                f"ids: {len(ids)} ids are too few for {batch} streams of {seq_len} (input, target) "
                "pairs"
            )
        # column b is stream b, so that a step's (T, B) inputs are a contiguous slice of rows
        starts = self.length * np.arange(batch)
        self.table = np.ascontiguousarray(ids[np.arange(self.length + 1)[:, None] + starts])

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.length // self.seq_len)

    def chunk(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets (T, B) starting at `position` in every stream: views, no copies."""
        end = min(position + self.seq_len, self.length)
        return self.table[position:end], self.table[position + 1 : end + 1]

    def next_position(self, position: int) -> int:
        """Where the step after the one at `position` starts; 0 after an epoch's last step."""
        end = position + self.seq_len
        return end if end < self.length else 0

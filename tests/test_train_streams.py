"""The data order of `bptt train`: the training text cut into parallel streams read in order,
each step's targets one character on from its inputs, nothing skipped between steps, a 5%
validation split at the end, and the default corpus read the same way every time."""

import numpy as np
import pytest

from bptt import corpus

IDS = np.arange(1001, dtype=np.int64)  # ids equal to their positions make the order visible


def walk_one_epoch(streams):
    """The (inputs, targets) chunks of one epoch, in order."""
    chunks, position = [], 0
    while True:
        chunks.append(streams.chunk(position))
        position = streams.next_position(position)
        if position == 0:
            return chunks


def test_each_stream_is_a_consecutive_piece_of_the_text():
    streams = corpus.Streams(IDS, batch=4, seq_len=10)
    inputs, _ = streams.chunk(0)
    # 1000 (input, target) pairs over 4 streams: 250 each, stream b starting at 250·b
    np.testing.assert_array_equal(inputs[0], [0, 250, 500, 750])
    np.testing.assert_array_equal(inputs[:, 1], np.arange(250, 260))


def test_targets_are_the_inputs_one_character_on():
    streams = corpus.Streams(IDS, batch=4, seq_len=10)
    for inputs, targets in walk_one_epoch(streams):
        np.testing.assert_array_equal(targets, inputs + 1)


def test_an_epoch_reads_every_pair_of_every_stream_once_in_order():
    streams = corpus.Streams(IDS, batch=4, seq_len=10)
    inputs = np.concatenate([chunk_inputs for chunk_inputs, _ in walk_one_epoch(streams)])
    np.testing.assert_array_equal(inputs, np.arange(250)[:, None] + 250 * np.arange(4))


def test_the_last_chunk_of_an_epoch_is_the_shorter_rest():
    streams = corpus.Streams(IDS, batch=4, seq_len=12)  # 250 = 20·12 + 10
    chunks = walk_one_epoch(streams)
    assert len(chunks) == streams.steps_per_epoch == 21
    assert chunks[-1][0].shape == (10, 4)


def test_chunks_are_contiguous_views_of_one_table():
    streams = corpus.Streams(IDS, batch=4, seq_len=10)
    inputs, targets = streams.chunk(20)
    for chunk in (inputs, targets):
        assert chunk.base is streams.table
        assert chunk.flags.c_contiguous
        assert chunk.dtype == np.int64  # the core's id type: it never converts them


def test_too_few_ids_for_one_step_are_refused():
    with pytest.raises(ValueError, match="too few"):
        corpus.Streams(IDS[:40], batch=4, seq_len=10)


def test_the_last_five_percent_are_held_out_for_validation():
    text = "abcdefghij" * 100
    split = corpus.Corpus.of_text(text)
    assert len(split.validation_ids) == 50
    assert (
        split.vocabulary.decode(split.train_ids) + split.vocabulary.decode(split.validation_ids)
        == text
    )


def test_the_vocabulary_is_the_sorted_characters_of_the_text():
    vocabulary = corpus.Vocabulary.of_text("hello, world")
    assert vocabulary.characters == " ,dehlorw"
    np.testing.assert_array_equal(vocabulary.encode("hello"), [4, 3, 5, 5, 6])
    assert vocabulary.decode(vocabulary.encode("hello, world")) == "hello, world"


def test_encoding_a_character_outside_the_vocabulary_is_an_error():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        corpus.Vocabulary.of_text("abc").encode("abd")


def test_the_shortest_text_trains_one_step_and_validates_one_pair():
    length = corpus.shortest_text_length(batch=4, seq_len=10)
    enough = corpus.Corpus.of_text("x" * length)
    corpus.Streams(enough.train_ids, batch=4, seq_len=10)  # does not raise
    assert len(enough.validation_ids) >= 2
    short = corpus.Corpus.of_text("x" * (length - 1))
    assert len(short.train_ids) < 41 or len(short.validation_ids) < 2


def test_the_default_corpus_is_the_stdlib_sources_in_sorted_order_without_tests():
    files = corpus.stdlib_files()
    names = [file.as_posix() for file in files]
    assert names == sorted(names)
    assert any(name.endswith("/argparse.py") for name in names)
    assert not any(
        "/test/" in name or "/tests/" in name or "site-packages" in name for name in names
    )

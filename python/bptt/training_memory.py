"""The memory a `bptt train` run holds at its peak, estimated from its settings and text before
it allocates any of it, so that a run too large for the machine is refused at once."""

import math

import numpy as np

from bptt import _model, sampling
from bptt.corpus import Corpus
from bptt.optimizers import OPTIMIZERS
from bptt.training_config import TrainConfig
from bptt.validation import VALIDATION_CHUNK


def memory_needed(config: TrainConfig, corpus: Corpus) -> int:
    """Bytes a run holds at its peak, about: the parameters and as many vectors again for the
    gradient (which the core writes) and the optimizer's state;
    the core's buffers for one step (the states, and a (T·B, max(H, O)) buffer that holds the
    logits, then dO and dL/da in place) or for one validation chunk (states, logits and two
    temporaries of their size); the streams' table of ids; a sample."""
    hidden, size, itemsize = config.hidden, len(corpus.vocabulary), np.dtype(config.dtype).itemsize
    shapes = _model.parameter_shapes(size, hidden, size)
    parameters = sum(math.prod(shape) for shape in shapes.values())
    vectors = 2 + len(OPTIMIZERS[config.optimizer].state_names)
    rows = config.seq_len * config.batch
    step = (rows + config.batch) * hidden + rows * max(hidden, size)
    validation_rows = min(VALIDATION_CHUNK * config.batch, config.validation_chars)
    validation = validation_rows * (hidden + 3 * size)
    streams = corpus.train_ids.itemsize * len(corpus.train_ids)
    sample = sampling.memory_needed(hidden, size, itemsize, config.sample_chars, 1)
    return itemsize * (vectors * parameters + max(step, validation)) + streams + sample

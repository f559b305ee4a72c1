"""The memory a `bptt train` run holds at its peak, estimated from its settings and text before
it allocates any of it, so that a run too large for the machine is refused at once."""

import numpy as np

from bptt import sampling, stack
from bptt.corpus import Corpus
from bptt.errors import SettingError
from bptt.memory_budget import memory_plan, minimum_budget
from bptt.optimizers import OPTIMIZERS
from bptt.training_config import TrainConfig
from bptt.validation import VALIDATION_CHUNK


def memory_needed(config: TrainConfig, corpus: Corpus) -> int:
    """Bytes a run holds at its peak, about: the parameters and as many vectors again for the
    gradient (which the core writes) and the optimizer's state;
    the core's buffers for one step (`step_memory`) or for one validation chunk (states, logits
    and two temporaries of their size); the streams' table of ids; a sample."""
    hidden, size, itemsize = config.hidden, len(corpus.vocabulary), np.dtype(config.dtype).itemsize
    parameters = stack.parameter_count(size, hidden, size, config.layers)
    vectors = 2 + len(OPTIMIZERS[config.optimizer].state_names)
    validation_rows = min(VALIDATION_CHUNK * config.batch, config.validation_chars)
    validation = itemsize * validation_rows * (config.layers * hidden + 3 * size)
    streams = corpus.train_ids.itemsize * len(corpus.train_ids)
    sample = sampling.memory_needed(hidden, size, itemsize, config.sample_chars, 1)
    step = step_memory(config, size)
    return itemsize * vectors * parameters + max(step, validation) + streams + sample


def step_memory(config: TrainConfig, vocabulary_size: int) -> int:
    """Bytes of the core's buffers for one step: without a memory budget, the states and a
    (T·B, max(H, O)) buffer that holds the logits, then dO and dL/da in place; under one, what
    its plan takes (`bptt.memory_plan`, at the current thread count). SettingError naming
    memory_budget when it is below the smallest plan's need."""
    hidden, rows, budget = config.hidden, config.seq_len * config.batch, config.memory_budget_bytes
    if budget is None:
        # a stack keeps every layer's states, and its upstream gradients between layers
        states = (rows + config.batch) * hidden * (2 * config.layers - 1)
        scalars = states + rows * max(hidden, vocabulary_size)
        return np.dtype(config.dtype).itemsize * scalars
    sizes = (config.seq_len, config.batch, vocabulary_size, hidden, vocabulary_size)
    dtype, compute_dtype = config.dtype, config.compute_dtype
    try:
        return memory_plan(
            *sizes, dtype=dtype, tokens=True, memory_budget=budget, compute_dtype=compute_dtype
        ).bytes
    except ValueError:
        minimum = minimum_budget(*sizes, dtype=dtype, tokens=True, compute_dtype=compute_dtype)
    raise SettingError(
        lambda name: (
            f"{name('memory_budget')} {config.memory_budget}: a step of {name('batch')} "
            f"{config.batch} streams of {name('seq_len')} {config.seq_len}, {name('hidden')} "
            f"{hidden} and a vocabulary of {vocabulary_size} needs at least {minimum:,} bytes"
        )
    )

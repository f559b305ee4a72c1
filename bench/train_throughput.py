"""Training throughput of `bptt train`: characters per second of the whole step (data, core,
clipping, optimizer), against peers measured in the same process, in alternating rounds so that
a busy machine slows both alike.

- hidden 256, seq-len 100, batch 32, Adam, float32 (PyTorch's usual character model): bptt
  against the same loop in PyTorch eager (`tests/torch_loop.py`) with the same number of
  threads; target >= 2x.
- min-char-rnn settings (hidden 100, seq-len 25, batch 1, Adagrad): bptt against the same
  training loop with the NumPy oracle's gradients (min-char-rnn's way); target >= 50x.
- a stack (`--layers 2` of the default settings): the core's fused step against the same step
  in parts (`bptt.stack.loss_and_grad`, the public layer ops composed in Python, then the clip
  and the update) and against PyTorch's `nn.RNN(num_layers=2)` loop.

At the min-char-rnn settings a round runs a block of consecutive steps of each loop, as
training does: a bptt step there takes tens of microseconds, and the first one after the
oracle's steps takes about 100 us more, the caches holding the oracle's code and data instead of
its own, which no step of a real run meets.

    python bench/train_throughput.py [--text FILE] [--threads N] [--repeats N]

Medians and ratios; `--breakdown` adds where a bptt step spends its time."""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import bptt
from bptt import corpus, stack
from bptt.trainer import Trainer
from bptt.training_config import TrainConfig

# the PyTorch loop is the tests' judge of the trainer too, and lives beside them
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

DEFAULT = {"hidden": 256, "seq_len": 100, "batch": 32, "optimizer": "adam"}
MIN_CHAR_RNN = {"hidden": 100, "seq_len": 25, "batch": 1, "optimizer": "adagrad"}
STACK = DEFAULT | {"layers": 2}
MIN_CHAR_RNN_BLOCK = 200  # consecutive steps per round: about 10 ms of bptt, 0.25 s of the oracle


def median_seconds_alternating(
    steps: dict[str, Callable], repeats: int, block: int = 1
) -> dict[str, float]:
    """The median time of one call of each step function over `repeats` rounds, each round
    calling every function `block` times in a row, one function after the other."""
    for step in steps.values():  # warm-up: first touches, thread start-up, lazy imports
        step()
        step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(block):
                step()
            times[name].append((time.perf_counter() - start) / block)
    return {name: float(np.median(values)) for name, values in times.items()}


def trainer(text_corpus, settings, **options) -> Trainer:
    config = TrainConfig(**settings)
    size = len(text_corpus.vocabulary)
    params = stack.init_params(
        size, config.hidden, size, config.layers, dtype=np.dtype(config.dtype), seed=config.seed
    )
    return Trainer(config, text_corpus, params, **options)


def report(title: str, settings: dict, medians: dict[str, float], peer: str, target: float):
    chars = settings["seq_len"] * settings["batch"]
    print(f"\n{title}: " + ", ".join(f"{key} {value}" for key, value in settings.items()))
    for name, seconds in medians.items():
        print(f"  {name:<22} {1e3 * seconds:9.3f} ms/step  {chars / seconds:12,.0f} chars/s")
    ratio = medians[peer] / medians["bptt"]
    verdict = "met" if ratio >= target else "NOT met"
    print(f"  {peer} time / bptt time: {ratio:.2f}x (target >= {target:g}x: {verdict})")
    return ratio


def torch_loop(ours: Trainer):
    """PyTorch's loop of the same model, weights, data, optimizer and clip."""
    import torch
    from torch_loop import TorchLoop

    torch.set_num_threads(bptt.get_num_threads())
    config = ours.config
    return TorchLoop(
        ours.params,
        corpus.Streams(ours.corpus.train_ids, config.batch, config.seq_len),
        optimizer=config.optimizer,
        lr=config.learning_rate,
        clip=config.clip,
    )


def default_settings(text_corpus, repeats: int) -> float:
    ours = trainer(text_corpus, DEFAULT)
    peer = torch_loop(ours)
    medians = median_seconds_alternating({"bptt": ours.step, "pytorch": peer.step}, repeats)
    return report("default settings", DEFAULT, medians, "pytorch", 2)


def stack_settings(text_corpus, repeats: int) -> float:
    ours = trainer(text_corpus, STACK)
    in_parts = trainer(text_corpus, STACK, loss_and_grad=stack.loss_and_grad)
    peer = torch_loop(ours)
    steps = {"bptt": ours.step, "bptt, step in parts": in_parts.step, "pytorch": peer.step}
    medians = median_seconds_alternating(steps, repeats)
    ratio = report("a stack of 2 layers", STACK, medians, "pytorch", 2)
    parts_ratio = medians["bptt, step in parts"] / medians["bptt"]
    print(f"  the step in parts / the fused step: {parts_ratio:.3f}x")
    return ratio


def min_char_rnn_settings(text_corpus, repeats: int) -> float:
    ours = trainer(text_corpus, MIN_CHAR_RNN)
    oracle = trainer(text_corpus, MIN_CHAR_RNN, loss_and_grad=bptt.reference.loss_and_grad)
    medians = median_seconds_alternating(
        {"bptt": ours.step, "numpy oracle": oracle.step}, repeats, MIN_CHAR_RNN_BLOCK
    )
    return report("min-char-rnn settings", MIN_CHAR_RNN, medians, "numpy oracle", 50)


def breakdown(text_corpus, settings: dict, repeats: int, block: int = 1) -> None:
    """Median time of each part of a bptt step, timed one part at a time: the step is one call
    of the core (gradients, clipping and the optimizer's update), of which the gradients alone
    are timed too."""
    ours = trainer(text_corpus, settings)
    inputs, targets = ours.streams.chunk(0)
    h_last = np.zeros_like(ours.hidden)
    grads = ours.params.views(np.zeros_like(ours.params.vector))
    parts = {
        "whole step": ours.step,
        "data (chunk views)": lambda: ours.streams.chunk(0),
        # a step's update with the state of step 1: its size never changes with the step count
        "core training step": lambda: ours._fused_step(inputs, targets, ours.hidden, h_last, 1),
        "  its gradients alone": lambda: bptt.loss_and_grad(
            ours.params, inputs, targets, h0=ours.hidden, reduction="mean", out=grads
        ),
    }
    medians = median_seconds_alternating(parts, repeats, block)
    print(f"  where a bptt step's time goes ({settings['optimizer']}):")
    for name, seconds in medians.items():
        share = seconds / medians["whole step"]
        print(f"    {name:<22} {1e6 * seconds:10.1f} us  {share:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", help="a UTF-8 file (default: the standard library's sources)")
    parser.add_argument("--threads", type=int, help="threads for bptt and PyTorch (default: all)")
    parser.add_argument("--repeats", type=int, default=20, help="rounds of each comparison")
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args()
    if args.threads:
        bptt.set_num_threads(args.threads)
    try:  # the oracle's products: NumPy's BLAS on as many threads as the others
        from threadpoolctl import threadpool_limits

        threadpool_limits(bptt.get_num_threads())
    except ImportError:
        print("threadpoolctl is not installed: NumPy's BLAS runs on its own thread count")
    text_corpus = corpus.Corpus.of_text(corpus.read_text(args.text or corpus.STDLIB))
    info = bptt.build_info()
    print(
        f"bptt {bptt.__version__}, kernels {info['instruction_set']}, "
        f"{bptt.get_num_threads()} thread(s); {len(text_corpus.train_ids):,} characters, "
        f"vocabulary {len(text_corpus.vocabulary)}"
    )
    default_settings(text_corpus, args.repeats)
    if args.breakdown:
        breakdown(text_corpus, DEFAULT, args.repeats)
    min_char_rnn_settings(text_corpus, args.repeats)
    stack_settings(text_corpus, args.repeats)
    if args.breakdown:
        breakdown(text_corpus, MIN_CHAR_RNN, args.repeats, MIN_CHAR_RNN_BLOCK)


if __name__ == "__main__":
    main()

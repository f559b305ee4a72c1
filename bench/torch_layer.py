"""bptt.torch.RNN as a drop-in for torch.nn.RNN: the time of a training step (forward and
backward) of RNN + nn.Linear + cross-entropy with either layer, at the standard sizes, 1 and 2
layers, float32, with the same thread count for torch and bptt's core, in the same process and
alternating step for step so that a busy machine slows both alike.

    python bench/torch_layer.py [--sizes medium,long] [--layers 1,2] [--threads 1,2]
                                [--repeats 15] [--budget SECONDS]

Prints a Markdown table of medians and ratios (nn.RNN ÷ bptt.torch.RNN, above 1: bptt is faster);
targets: >= 2x at medium, >= 1x everywhere. Measures; asserts nothing."""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from train_throughput import median_seconds_alternating

import bptt
import bptt.torch

from problems import STANDARD_SIZES

TARGETS = {"medium": 2.0}  # and 1.0 everywhere else: never slower


class TrainingStep:
    """One step of RNN + nn.Linear + mean cross-entropy over (T, B, D) float inputs: zero the
    gradients, forward, loss, backward. The inputs need no gradient, as data does not."""

    def __init__(self, rnn_class, state: dict, layers: int):
        output_size, hidden_size = state["head"]["weight"].shape
        self.rnn = rnn_class(state["inputs"].shape[2], hidden_size, num_layers=layers)
        self.rnn.load_state_dict(state["rnn"])
        self.head = torch.nn.Linear(hidden_size, output_size)
        self.head.load_state_dict(state["head"])
        self.inputs, self.targets = state["inputs"], state["targets"]
        self.parameters = [*self.rnn.parameters(), *self.head.parameters()]
        self.loss = None

    def __call__(self) -> None:
        for parameter in self.parameters:
            parameter.grad = None
        hidden, _ = self.rnn(self.inputs)
        logits = self.head(hidden)
        self.loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.targets)
        self.loss.backward()


def shared_state(size: str, layers: int) -> dict:
    """Weights (nn.RNN's initialization) and data for both steps."""
    T, B, D, H, O = STANDARD_SIZES[size]
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    return {
        "rnn": torch.nn.RNN(D, H, num_layers=layers).state_dict(),
        "head": torch.nn.Linear(H, O).state_dict(),
        "inputs": torch.randn(T, B, D, generator=generator),
        "targets": torch.randint(0, O, (T * B,), generator=generator),
    }


def measure(size: str, layers: int, repeats: int, budget: float) -> dict:
    state = shared_state(size, layers)
    steps = {
        "nn.RNN": TrainingStep(torch.nn.RNN, state, layers),
        "bptt.torch.RNN": TrainingStep(bptt.torch.RNN, state, layers),
    }
    start = time.perf_counter()
    for step in steps.values():
        step()
    # as many repeats as fit the budget (at least 5): the large sizes take a second a step
    first = time.perf_counter() - start
    repeats = max(5, min(repeats, int(budget / max(first, 1e-9))))
    reference, ours = steps["nn.RNN"].loss.item(), steps["bptt.torch.RNN"].loss.item()
    if abs(ours - reference) > 1e-4 * abs(reference):
        raise RuntimeError(
            f"{size}, {layers} layer(s): loss {ours} differs from nn.RNN's {reference}"
        )
    medians = median_seconds_alternating(steps, repeats)
    return {"medians": medians, "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(STANDARD_SIZES))
    parser.add_argument("--layers", default="1,2")
    parser.add_argument("--threads", default="1,2", help="thread counts, each for both libraries")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps each, at most")
    parser.add_argument("--budget", type=float, default=20, help="seconds of timing per row, about")
    args = parser.parse_args()
    info = bptt.build_info()
    print(
        f"bptt {bptt.__version__} (kernels {info['instruction_set']}), torch {torch.__version__}; "
        "float32; training step = forward + backward of RNN + nn.Linear + cross-entropy\n"
    )
    print(
        "| size (T, B, D, H, O) | layers | threads | nn.RNN ms | bptt.torch.RNN ms | ratio | target |"
    )
    print("|---|---|---|---|---|---|---|")
    for threads in (int(n) for n in args.threads.split(",")):
        torch.set_num_threads(threads)
        bptt.set_num_threads(threads)
        for size in args.sizes.split(","):
            for layers in (int(n) for n in args.layers.split(",")):
                result = measure(size, layers, args.repeats, args.budget)
                medians = result["medians"]
                ratio = medians["nn.RNN"] / medians["bptt.torch.RNN"]
                target = TARGETS.get(size, 1.0)
                verdict = f">= {target:g}x {'met' if ratio >= target else 'NOT met'}"
                print(
                    f"| {size} {STANDARD_SIZES[size]} | {layers} | {threads} | "
                    f"{1e3 * medians['nn.RNN']:.2f} | {1e3 * medians['bptt.torch.RNN']:.2f} | "
                    f"{ratio:.2f}x | {verdict} |",
                    flush=True,
                )


if __name__ == "__main__":
    np.seterr(all="raise")
    main()

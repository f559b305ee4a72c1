"""bptt.torch.RNN as a drop-in for torch.nn.RNN: the time of a training step (forward and
backward) of RNN + nn.Linear + cross-entropy with either layer, at the standard sizes, 1 and 2
layers, float32, with the same thread count for torch and bptt's core, in one process.

    python bench/torch_layer.py [--sizes medium,long] [--layers 1,2] [--threads 1,2]
                                [--repeats 15] [--budget SECONDS]

Each round times one step of each model back to back (in alternating order), so that a busy
machine slows both alike; the ratio is the median over rounds of nn.RNN's time ÷ bptt's (above
1: bptt is faster), the times are medians. `load` is the machine's 1-minute load average, which
on a shared machine says how far the absolute times can be trusted. Targets: >= 2x at medium,
>= 1x everywhere. Measures; asserts nothing. bptt's layer against oneDNN's RNN primitive, forward
and backward without a head: `python bench/compare.py --peers onednn,limit`."""

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import bptt
import bptt.torch

from problems import STANDARD_SIZES

TARGETS = {"medium": 2.0}  # and 1.0 everywhere else: never slower
MODELS = {"nn.RNN": torch.nn.RNN, "bptt.torch.RNN": bptt.torch.RNN}


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


def check_same_results(reference: TrainingStep, ours: TrainingStep, row: str) -> None:
    """RuntimeError unless the two steps' losses and every parameter's gradient agree, in
    float32, as bench/compare.py holds its peers to (comparison/agreement.py), before any is
    timed; NaN never agrees."""
    if not abs(ours.loss.item() - reference.loss.item()) <= 1e-4 * abs(reference.loss.item()):
        raise RuntimeError(f"{row}: the two models' losses differ")
    for parameter, theirs in zip(ours.parameters, reference.parameters, strict=True):
        scale = max(theirs.grad.abs().max().item(), 1e-30)
        if not (parameter.grad - theirs.grad).abs().max().item() <= 1e-3 * scale:
            raise RuntimeError(f"{row}: the two models' gradients differ")


def seconds(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def measure(size: str, layers: int, repeats: int, budget: float) -> dict:
    """Median times and the median per-round ratio nn.RNN ÷ bptt.torch.RNN."""
    state = shared_state(size, layers)
    reference, ours = (TrainingStep(model, state, layers) for model in MODELS.values())
    # warm-up, and as many rounds as fit the budget (at least 5): a large step takes a second
    first = seconds(reference) + seconds(ours)
    seconds(reference), seconds(ours)
    rounds = max(5, min(repeats, int(budget / max(first, 1e-9))))
    check_same_results(reference, ours, f"{size}, {layers} layer(s)")
    times = np.empty((rounds, 2))
    for index in range(rounds):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for column in order:
            times[index, column] = seconds((reference, ours)[column])
    return {
        "medians": dict(zip(MODELS, np.median(times, axis=0), strict=True)),
        "ratio": float(np.median(times[:, 0] / times[:, 1])),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(STANDARD_SIZES))
    parser.add_argument("--layers", default="1,2")
    parser.add_argument("--threads", default="1,2", help="thread counts, each for both libraries")
    parser.add_argument("--repeats", type=int, default=15, help="rounds per row, at most")
    parser.add_argument("--budget", type=float, default=20, help="seconds of timing per row, about")
    args = parser.parse_args()
    info = bptt.build_info()
    print(
        f"bptt {bptt.__version__} (kernels {info['instruction_set']}), torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs; float32; a training step = forward + backward of RNN + "
        "nn.Linear + cross-entropy\n"
    )
    print(
        "| size (T, B, D, H, O) | layers | threads | nn.RNN ms | bptt.torch.RNN ms | ratio | "
        "target | rounds | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for threads in (int(n) for n in args.threads.split(",")):
        torch.set_num_threads(threads)
        bptt.set_num_threads(threads)
        for size in args.sizes.split(","):
            for layers in (int(n) for n in args.layers.split(",")):
                result = measure(size, layers, args.repeats, args.budget)
                medians, ratio = result["medians"], result["ratio"]
                target = TARGETS.get(size, 1.0)
                verdict = f">= {target:g}x {'met' if ratio >= target else 'NOT met'}"
                print(
                    f"| {size} {STANDARD_SIZES[size]} | {layers} | {threads} | "
                    f"{1e3 * medians['nn.RNN']:.2f} | {1e3 * medians['bptt.torch.RNN']:.2f} | "
                    f"{ratio:.2f}x | {verdict} | {result['rounds']} | {os.getloadavg()[0]:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

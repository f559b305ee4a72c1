"""Data-parallel training on bptt's core: torch.distributed's DistributedDataParallel (gloo)
over processes on this machine, training a model built on bptt.torch.RNN.

    python examples/ddp_train.py [--processes 2] [--steps 300] [--layers 1] [--hidden 64]

The task is a delayed echo: random tokens in, and at every step the token seen `--delay` steps
earlier as the target, so the network must remember; the loss falls from log(vocabulary) towards
zero. Every process draws the same batch and trains on its own slice of the sequences; DDP
averages the gradients, so each step equals one single-process step on the whole batch. Since
bptt.torch.RNN is an ordinary autograd operation, the same code runs on several machines with
another --init-method (e.g. tcp://<host>:<port> of rank 0).
"""

import argparse
import datetime
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import bptt
import bptt.torch

IGNORED = -100  # cross_entropy's ignore_index: the first `delay` steps have nothing to echo


class EchoModel(torch.nn.Module):
    """One-hot tokens -> bptt.torch.RNN -> a linear head: logits (T, B, vocabulary)."""

    def __init__(self, vocabulary: int, hidden: int, layers: int):
        super().__init__()
        self.vocabulary = vocabulary
        self.rnn = bptt.torch.RNN(vocabulary, hidden, num_layers=layers)
        self.head = torch.nn.Linear(hidden, vocabulary)

    def forward(self, tokens):
        hidden, _ = self.rnn(F.one_hot(tokens, self.vocabulary).float())
        return self.head(hidden)


def make_batch(step: int, args) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens (T, B) and their echo targets, the same in every process for a given step."""
    generator = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    tokens = torch.randint(0, args.vocabulary, (args.seq_len, args.batch), generator=generator)
    targets = torch.full_like(tokens, IGNORED)
    targets[args.delay :] = tokens[: -args.delay]
    return tokens, targets


def mean_loss(model, tokens, targets):
    """Mean cross-entropy over the counted steps: equal slices of the batch count the same
    number, so the mean of the slices' means (DDP's average) is the whole batch's mean."""
    logits = model(tokens)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORED
    )


def build_model(args) -> EchoModel:
    torch.manual_seed(args.seed)  # DDP broadcasts rank 0's weights anyway; this makes them known
    return EchoModel(args.vocabulary, args.hidden, args.layers)


def train(rank: int, args) -> None:
    """One process: its slice of every batch, DDP's gradient average, an Adam step."""
    torch.set_num_threads(args.threads)
    bptt.set_num_threads(args.threads)
    dist.init_process_group(
        "gloo",
        init_method=args.init_method,
        rank=rank,
        world_size=args.processes,
        timeout=datetime.timedelta(seconds=args.timeout),
    )
    try:
        take_steps(rank, args)
        # Every process past its last collective, and its model (which holds the group) freed,
        # before any tears the group down: otherwise a process could abort in std::terminate at
        # the teardown (seen about once in a dozen runs of the DDP test).
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # gloo's threads can outlive the group, and the interpreter's exit, destroying them, then
    # aborts the process in std::terminate (pytorch#179291; here, rarely, even
    # after the barrier): a worker whose work is done and written leaves without that exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def take_steps(rank: int, args) -> None:
    model = DistributedDataParallel(build_model(args))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    per_process = args.batch // args.processes
    mine = slice(rank * per_process, (rank + 1) * per_process)
    for step in range(args.steps):
        tokens, targets = make_batch(step, args)
        loss = mean_loss(model, tokens[:, mine], targets[:, mine])
        optimizer.zero_grad()
        loss.backward()
        if step == 0 and rank == 0 and args.save_gradients:
            gradients = {name: p.grad for name, p in model.module.named_parameters()}
            torch.save(gradients, args.save_gradients)
        optimizer.step()
        if rank == 0 and (step % args.log_every == 0 or step == args.steps - 1):
            print(f"step {step:4d}  loss of rank 0's slice {loss.item():.4f}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32, help="the whole batch, all processes")
    parser.add_argument("--seq-len", type=int, default=20)
    parser.add_argument("--vocabulary", type=int, default=8)
    parser.add_argument("--delay", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="per process")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for a peer")
    parser.add_argument(
        "--init-method", help="default: tcp://127.0.0.1:<a free port> (processes on this machine)"
    )
    parser.add_argument(
        "--save-gradients", metavar="PATH", help="save the first step's averaged gradients"
    )
    args = parser.parse_args(argv)
    if args.batch % args.processes:
        parser.error(
            f"--batch: expected a multiple of --processes ({args.processes}), got {args.batch}"
        )
    if not 0 < args.delay < args.seq_len:
        parser.error(f"--delay: expected 1 to --seq-len - 1 ({args.seq_len - 1}), got {args.delay}")
    args.init_method = args.init_method or f"tcp://127.0.0.1:{free_port()}"
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    mp.spawn(train, args=(args,), nprocs=args.processes, join=True)


if __name__ == "__main__":
    main()

"""bptt under a memory budget: what loss_and_grad(memory_budget=) costs in time for the memory it
saves, measured against the unbudgeted call and against PyTorch and JAX with activation
checkpointing at about the same memory.

    python bench/memory_budget.py                        # both sizes, 2 and 1 threads
    python bench/memory_budget.py --quick --threads 1    # the CI smoke run, seconds
    python bench/memory_budget.py --cases dense --threads 2 --peers torch
    python bench/memory_budget.py --render bench/results/memory/<run>/results.json

Size 1 (T=1000, B=32, D=128 dense, H=256, O=128): budgets of 100%, 25%, 10%, 5% and 1% of the
hidden states' bytes (T + 1)·B·H·4 and memory_plan's minimum; at each, bptt's schedule, its
measured working memory and its time ÷ the unbudgeted call's; and PyTorch (torch.utils.checkpoint
over segments of nn.RNN) and JAX (jax.checkpoint around lax.scan segments) at about bptt's
memory there, their time ÷ their own unbudgeted run's and ÷ bptt's. Size 2 (T=100,000, B=8,
D=64 token ids, H=256, O=64): a 64 MiB budget against the unbudgeted call (about 1.8 GB at two
threads), memory and time.

Working memory (everything a call allocates beyond its inputs and the arrays it returns) is
measured in a fresh process per measurement (bptt at each budget, each peer at each segment
length); time in one process per case and thread count, every cell interleaved in rounds (the
peer comparison's instruments, bench/comparison/timing.py). Each peer's configuration is checked
against bptt's loss and gradients before it is timed, and each budgeted bptt call against the
unbudgeted call's bits.

One job a module: `cli` the options and which program runs; `run` the parent; `memory_child` and
`timing_child` the children; `runners` the cells' runners; `cases` the problems, budgets and
targets; `matching` which peer configuration meets bptt's memory; `markdown` the report;
`records` the run's folder under bench/results/memory.
"""

"""The peer comparison: bptt against the NumPy oracle, PyTorch eager and JAX, and against the
machine's own limits (the GEMM throughput on the products the kernel performs, the sequential
chain of its per-step products, the peak sgemm rate), on the same data with the same thread
count, forward+backward (the loss and every gradient); and bptt's recurrent layer alone against
oneDNN's RNN primitive, which has no softmax head to compare in the loss.

    python bench/compare.py                        # every size, 1 and 2 threads, several minutes
    python bench/compare.py --quick --threads 1    # the CI smoke run
    python bench/compare.py --sizes large --threads 2 --peers torch,jax
    python bench/compare.py --sizes charrnn,small,medium,large,long --peers onednn,limit
    python bench/compare.py --compare bench/results/latest.json

One child process per thread count does all the timing (XLA fixes its thread count when its
client is created, so each count needs its own process); one more fresh child per implementation
and size measures peak memory. Each child times every implementation in interleaved rounds, so
that noise on this shared machine falls on all of them alike; the medians and the ratios are what
to read. Before timing, every peer's loss must agree with bptt's on the same data and weights
(relative 1e-4, float32), and its gradients within GRAD_TOLERANCE; a layer peer's states and
gradients within a float32 tolerance derived from the sizes; a peer that does not is reported,
not timed.

One job a module: `cli` the options and which program runs; `run` the parent, which starts the
children (`children`) and writes the record (`records`); `timing_child` and `memory_child` the
two children, measuring with `timing`, the first also the layer alone (`layer`); `agreement` how
peers are checked against bptt; `problem` the problems by name; `machine` the machine's
description; `ratios` what is read from the medians; `markdown`, `plot` and `diff` the report,
its chart and its changes against a previous run.
"""

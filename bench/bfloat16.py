"""loss_and_grad with compute_dtype="bfloat16" against float32, in the same process: the median
time of each at bench/problems.py's sizes, in alternating rounds (so that a busy machine slows
both alike), at each thread count asked for, and their ratio; and the working memory each
plans (bptt.memory_plan).

    python bench/bfloat16.py [--threads 1 2] [--repeats 15] [--sizes charrnn small ...]

On a CPU without AVX512-BF16 (bptt.build_info()['bfloat16_products'] says which path runs)
the bfloat16 products are float32 FMA on rounded operands: the ratio then measures the cost of
the rounding and of the conversions of the stored states, not a speed-up."""

import argparse
import statistics
import time

import bptt

from problems import STANDARD_SIZES, TOKEN_SIZES, make_problem


def median_seconds(calls: dict, repeats: int) -> dict:
    """Each call's median wall time over `repeats` rounds, the calls alternating in each."""
    times: dict = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm: scratch kept, pages touched
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def loss_and_grad_call(params, inputs, targets, compute_dtype):
    return lambda: bptt.loss_and_grad(params, inputs, targets, compute_dtype=compute_dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sizes", nargs="+", default=list(STANDARD_SIZES))
    args = parser.parse_args()
    info = bptt.build_info()
    print(f"instruction set {info['instruction_set']}; bfloat16: {info['bfloat16_products']}")
    print(f"{'size':>16} {'threads':>7} {'float32 ms':>10} {'bfloat16 ms':>11} {'ratio':>6} "
          f"{'f32 MB':>7} {'bf16 MB':>7}")  # fmt: skip
    for size in args.sizes:
        for tokens in (False, True) if size in TOKEN_SIZES else (False,):
            params, inputs, targets = make_problem(size, tokens=tokens)
            T, B, D, H, O = STANDARD_SIZES[size]
            plans = [
                bptt.memory_plan(T, B, D, H, O, tokens=tokens, compute_dtype=compute_dtype)
                for compute_dtype in (None, "bfloat16")
            ]
            for threads in args.threads:
                bptt.set_num_threads(threads)
                calls = {
                    compute_dtype: loss_and_grad_call(params, inputs, targets, compute_dtype)
                    for compute_dtype in (None, "bfloat16")
                }
                medians = median_seconds(calls, args.repeats)
                name = size + (" tokens" if tokens else "")
                f32, bf16 = medians[None] * 1e3, medians["bfloat16"] * 1e3
                print(f"{name:>16} {threads:>7} {f32:>10.2f} {bf16:>11.2f} {bf16 / f32:>6.2f} "
                      f"{plans[0].bytes / 1e6:>7.2f} {plans[1].bytes / 1e6:>7.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

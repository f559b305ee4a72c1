"""The matrix products the bptt kernel performs, their analytic FLOP count, and NumPy's BLAS on
exactly those shapes, float32, one call each: the GEMM baseline (the tables' "GEMM limit"). It is
no bound: the kernel packs W once for all T per-step products, where the baseline makes T calls
that each pack it, so at every size the kernel can pass it; where the products are large it
says how the kernel's products compare with the BLAS's on the same work.

Every product (m × k)·(k × n) counts 2·m·n·k FLOPs; elementwise work (tanh, its derivative, the
softmax, bias additions and sums) is not counted. With N = T·B rows:

    forward   input projection (N×D)(D×H) [dense inputs only; a row gather for token ids]
              T per-step recurrent products (B×H)(H×H)
              output (N×H)(H×O)
    backward  dV (O×N)(N×H) · Vᵀ dO (N×O)(O×H) · T per-step (B×H)(H×H) · dW (H×N)(N×H)
              dU (H×N)(N×D) and dx (N×H)(H×D) [dense inputs only; a scatter-add for token ids]

so a dense problem costs 6·T·B·H·(D + H + O) FLOPs and a token problem 6·T·B·H·(H + O); the
recurrent layer alone (without the output, dV and Vᵀ·dO products of the head) 6·T·B·H·(D + H).

Two more measures of the machine, taken in the same run: the peak sgemm rate of NumPy's BLAS on
a large square product (GFLOP/s), the machine's limit, which no kernel passes; and the
sequential chain, the 2·T per-step products (B×H)(H×H) done one after the other by NumPy's BLAS
at the same thread count, each reading the last one's result, as the recurrence must: the time
the recurrence's order alone takes at the BLAS's speed on those products (which split across
the threads as the kernel's do); no bound either.
"""

# ruff: noqa: RUF001, RUF002, RUF003  (× is the shapes' symbol)

from typing import NamedTuple

import numpy as np

KEY = "limit"  # its name beside the peers' in the comparison's options and records
SEQUENTIAL_KEY = "sequential_chain"  # the records' names of the two other limits
PEAK_KEY = "peak_sgemm"
PEAK_SGEMM_SIZE = 2048  # n of the square product: large enough for BLAS's peak rate

FLOP_RULE = (
    "2·m·n·k FLOPs per (m×k)·(k×n) product of the kernel (input projection, per-step recurrent "
    "products, output, dV, Vᵀ·dO, dW, dU, dx); elementwise operations are not counted; token "
    "inputs count no input-projection, dU or dx product (the kernel gathers and scatter-adds rows)"
)


class Product(NamedTuple):
    name: str
    m: int
    k: int
    n: int
    count: int  # how many times the kernel performs it per call (T for the per-step products)
    layout: str  # "N"/"T": whether the left, then the right operand is a transposed view
    dense_only: bool = False  # a row gather or scatter-add instead for token ids
    head: bool = False  # the softmax head's, not the recurrent layer's

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k * self.count


def products(T: int, B: int, D: int, H: int, O: int, tokens: bool = False) -> list[Product]:
    """The products of one forward+backward call, in the order the kernel performs them."""
    N = T * B
    forward = [
        Product("forward: input projection (T·B×D)(D×H)", N, D, H, 1, "NT", True),
        Product("forward: per-step W·h (B×H)(H×H), T times", B, H, H, T, "NT"),
        Product("forward: output (T·B×H)(H×O)", N, H, O, 1, "NT", head=True),
    ]
    backward = [
        Product("backward: dV (O×T·B)(T·B×H)", O, N, H, 1, "TN", head=True),
        Product("backward: Vᵀ·dO (T·B×O)(O×H)", N, O, H, 1, "NN", head=True),
        Product("backward: per-step Wᵀ·da (B×H)(H×H), T times", B, H, H, T, "NN"),
        Product("backward: dW (H×T·B)(T·B×H)", H, N, H, 1, "TN"),
        Product("backward: dU (H×T·B)(T·B×D)", H, N, D, 1, "TN", True),
        Product("backward: dx (T·B×H)(H×D)", N, H, D, 1, "NN", True),
    ]
    return [p for p in forward + backward if not (tokens and p.dense_only)]


def flop_count(T: int, B: int, D: int, H: int, O: int, tokens: bool = False) -> int:
    return sum(p.flops for p in products(T, B, D, H, O, tokens))


def layer_flop_count(T: int, B: int, D: int, H: int) -> int:
    """The recurrent layer's products alone, float inputs (no head: its O is irrelevant)."""
    return sum(p.flops for p in products(T, B, D, H, O=0) if not p.head)


def peak_sgemm_product(n: int = PEAK_SGEMM_SIZE) -> Product:
    return Product(f"peak: ({n}×{n})({n}×{n})", n, n, n, 1, "NN")


def product_call(product: Product, seed: int = 0):
    """A zero-argument call computing one instance of the product with NumPy's BLAS into a
    preallocated output (no allocation timed), float32, row-major operands as the kernel has them;
    a transposed operand (W in h·Wᵀ, the row sums of dV/dW/dU) is a view, which BLAS reads
    without a copy."""
    rng = np.random.default_rng(seed)
    m, k, n = product.m, product.k, product.n
    left_t, right_t = (flag == "T" for flag in product.layout)
    left = rng.standard_normal((k, m) if left_t else (m, k), dtype=np.float32)
    right = rng.standard_normal((n, k) if right_t else (k, n), dtype=np.float32)
    left, right = (left.T if left_t else left), (right.T if right_t else right)
    out = np.empty((m, n), dtype=np.float32)

    def call():
        np.matmul(left, right, out=out)

    return call


def sequential_chain_call(T: int, B: int, H: int, seed: int = 0):
    """A zero-argument call doing the recurrence's 2·T per-step products in order, each on the
    previous one's result: h ← h·Wᵀ T times (forward), then d ← d·W T times (backward), with
    NumPy's BLAS into preallocated buffers. W is orthogonal, so that the values keep their size
    (neither overflow nor denormals, which would slow the products down)."""
    rng = np.random.default_rng(seed)
    W = np.linalg.qr(rng.standard_normal((H, H)))[0].astype(np.float32)
    buffers = [rng.standard_normal((B, H), dtype=np.float32), np.empty((B, H), np.float32)]

    def call():
        current, spare = buffers
        for right in (W.T, W):
            for _ in range(T):
                np.matmul(current, right, out=spare)
                current, spare = spare, current

    return call

"""The comparison's problems by name: a standard size (bench/problems.py) with float inputs
(`small`) or token ids (`small-tokens`); and the recurrent layer's problem on a float one."""

from dataclasses import dataclass

import gemm_limit
import numpy as np

from problems import STANDARD_SIZES, TOKEN_SIZES, make_problem

TOKENS_SUFFIX = "-tokens"
PROBLEMS = [*STANDARD_SIZES, *(f"{size}{TOKENS_SUFFIX}" for size in TOKEN_SIZES)]
QUICK_PROBLEMS = ["charrnn", "small", "charrnn-tokens", "small-tokens"]
TOKENS_NOTE = (
    "token inputs: bptt and the NumPy oracle take int ids; PyTorch gets one-hot float vectors "
    "(nn.RNN takes only floats); JAX gathers rows of Uᵀ (the embedding-equivalent)"
)


def size_and_tokens(name: str) -> tuple[str, bool]:
    """`small-tokens` -> ("small", True); `small` -> ("small", False)."""
    return name.removesuffix(TOKENS_SUFFIX), name.endswith(TOKENS_SUFFIX)


def problem_shape(name: str) -> tuple[int, int, int, int, int]:
    """(T, B, D, H, O) of the named problem."""
    return STANDARD_SIZES[size_and_tokens(name)[0]]


def problem_flops(name: str) -> int:
    return gemm_limit.flop_count(*problem_shape(name), tokens=size_and_tokens(name)[1])


@dataclass
class Problem:
    name: str
    shape: tuple  # (T, B, D, H, O)
    tokens: bool
    params: dict
    inputs: np.ndarray
    targets: np.ndarray

    @classmethod
    def make(cls, name: str) -> "Problem":
        size, tokens = size_and_tokens(name)
        params, inputs, targets = make_problem(size, tokens)
        return cls(name, STANDARD_SIZES[size], tokens, params, inputs, targets)


@dataclass
class LayerProblem:
    """The recurrent layer alone on a float problem's inputs and weights (U, W, b), with an
    initial state and the upstream gradients dL/dh_t (T, B, H) and dL/dh_T (B, H) drawn beside
    them, all float32."""

    name: str
    shape: tuple  # (T, B, D, H)
    U: np.ndarray
    W: np.ndarray
    b: np.ndarray
    inputs: np.ndarray
    h0: np.ndarray
    d_hidden: np.ndarray
    d_h_last: np.ndarray

    @classmethod
    def make(cls, name: str) -> "LayerProblem":
        if size_and_tokens(name)[1]:
            raise ValueError(f"problem: expected one with float inputs, got {name}")
        problem = Problem.make(name)
        T, B, D, H, _ = problem.shape
        rng = np.random.default_rng(2)
        return cls(
            name,
            (T, B, D, H),
            *(problem.params[weight] for weight in ("U", "W", "b")),
            problem.inputs,
            h0=np.tanh(rng.standard_normal((B, H), dtype=np.float32)),  # a state's range
            d_hidden=rng.standard_normal((T, B, H), dtype=np.float32),
            d_h_last=rng.standard_normal((B, H), dtype=np.float32),
        )

"""The model's facts that every part of the package shares: the parameters and their shapes,
the activations (sigma) and the loss reductions. Written here once; the core, the oracle, the adapters
and the command line read them from here."""

from __future__ import annotations

PARAM_NAMES: tuple[str, ...] = ("U", "W", "b", "V", "c")
ACTIVATIONS: tuple[str, ...] = ("tanh", "sigmoid", "relu", "identity")
REDUCTIONS: tuple[str, ...] = ("sum", "mean")


def parameter_shapes(
    input_size: int, hidden_size: int, output_size: int
) -> dict[str, tuple[int, ...]]:
    """U (H, D), W (H, H), b (H,), V (O, H), c (O,): a_t = b + W h_{t-1} + U x_t, o_t = c + V h_t."""
    D, H, O = input_size, hidden_size, output_size
    return {"U": (H, D), "W": (H, H), "b": (H,), "V": (O, H), "c": (O,)}

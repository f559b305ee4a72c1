"""How a peer's results are held against bptt's before it is timed: relative errors of the loss
and of each array against bptt's, and the float32 tolerances of the loss comparison and of the
recurrent layer's."""

# ruff: noqa: RUF002, RUF003  (− and √ are the maths' symbols)

import math

import numpy as np

LOSS_TOLERANCE = 1e-4  # relative, float32: sums of T·B log-probabilities in a different order
# max |g_peer − g_bptt| / max |g_bptt| over each gradient: float32 rounding grows with the T-step
# chain and the T·B-row sums, so this is loose, yet a wrong formula is off by O(1).
GRAD_TOLERANCE = 1e-3


def array_errors(arrays: dict, ref_arrays: dict) -> dict:
    """max |a − a_bptt| / max |a_bptt| of each of bptt's arrays; inf when the peer's is missing or
    of another shape."""
    errors = {}
    for name, ref in ref_arrays.items():
        if name not in arrays or np.shape(arrays[name]) != np.shape(ref):
            errors[name] = math.inf
            continue
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-30)
        errors[name] = _nan_as_inf(float(np.max(np.abs(arrays[name] - ref), initial=0.0)) / scale)
    return errors


def relative_errors(loss, grads, ref_loss, ref_grads) -> tuple[float, dict]:
    loss_error = _nan_as_inf(abs(loss - ref_loss) / max(abs(ref_loss), 1e-30))
    return loss_error, array_errors(grads, ref_grads)


def _nan_as_inf(error: float) -> float:
    """A NaN in a peer's result (or bptt's) is as far from agreeing as can be: never within a
    tolerance, as a NaN compared with one would be."""
    return math.inf if math.isnan(error) else error


def mismatch_note(loss_error: float, grad_errors: dict) -> str | None:
    """Why a peer's result disagrees with bptt's, None when it agrees within the tolerances."""
    worst = max(grad_errors, key=grad_errors.get)
    if loss_error > LOSS_TOLERANCE or grad_errors[worst] > GRAD_TOLERANCE:
        return (
            f"loss relative error {loss_error:.1e} (tolerance {LOSS_TOLERANCE:.0e}), "
            f"worst gradient d{worst} {grad_errors[worst]:.1e} "
            f"(tolerance {GRAD_TOLERANCE:.0e}): not timed"
        )
    return None


# K of the layer's tolerance: the worst error seen at the standard sizes was under 1e-2 of it.
LAYER_TOLERANCE_FACTOR = 8


def layer_tolerance(T: int, B: int, D: int, H: int) -> float:
    """max |a_peer − a_bptt| / max |a_bptt| allowed for the layer's states and each of its
    gradients, float32: K·eps·√n with n = T·(B + D + H), the rounding of random-walk sums as long
    as the longest any entry depends on (T steps of (D + H)-term products for the states, T·B-row
    sums for dU, dW and db). A wrong formula is off by O(1)."""
    return LAYER_TOLERANCE_FACTOR * float(np.finfo(np.float32).eps) * math.sqrt(T * (B + D + H))


def layer_mismatch_note(errors: dict, tolerance: float) -> str | None:
    """Why a layer peer's states or gradients disagree with bptt's, None when they agree."""
    worst = max(errors, key=errors.get)
    if errors[worst] > tolerance:
        return f"worst {worst} {errors[worst]:.1e} (tolerance {tolerance:.1e}): not timed"
    return None

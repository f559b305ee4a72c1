"""bptt.init_params: the documented shapes, dtype and distribution, reproducible by seed."""

import numpy as np
import pytest
from random_problems import DTYPES, PARAM_NAMES

import bptt


@pytest.mark.parametrize("dtype", DTYPES)
def test_init_params_gives_the_documented_shapes_and_dtype(dtype):
    params = bptt.init_params(3, 5, 7, dtype=dtype, seed=0)

    assert params.keys() == set(PARAM_NAMES)
    assert {k: v.shape for k, v in params.items()} == {
        "U": (5, 3),
        "W": (5, 5),
        "b": (5,),
        "V": (7, 5),
        "c": (7,),
    }
    for name, value in params.items():
        assert value.dtype == dtype, name
        assert np.abs(value).max() <= 1 / np.sqrt(5), name  # uniform in ±1/sqrt(H)


def test_init_params_defaults_to_float32():
    assert all(v.dtype == np.float32 for v in bptt.init_params(2, 3, 4).values())


def test_init_params_with_the_same_seed_is_deterministic_and_with_another_differs():
    a = bptt.init_params(3, 5, 7, seed=42)
    b = bptt.init_params(3, 5, 7, seed=42)
    c = bptt.init_params(3, 5, 7, seed=43)

    for name in PARAM_NAMES:
        assert np.array_equal(a[name], b[name]), name
        assert not np.array_equal(a[name], c[name]), name


def test_init_params_feed_loss_and_grad_directly():
    params = bptt.init_params(4, 6, 3, seed=1)
    result = bptt.loss_and_grad(params, np.zeros((2, 1), np.int64), np.zeros((2, 1), np.int64))
    assert np.isfinite(result.loss)

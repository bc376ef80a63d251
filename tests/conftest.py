"""Shared test configuration: Hypothesis profiles and a Numba warm-up."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# dev: quick local runs.  ci: deterministic (derandomised, no example database,
# no deadline because the first example may pay Numba compilation).
# thorough: many random examples, for `make test-thorough`.
settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile("ci", max_examples=60, derandomize=True, database=None, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session", autouse=True)
def _warm_kernels():
    """Compile (or load from cache) the kernels once, before any test runs."""
    from theorylab._kernels import relu_net

    X = np.zeros((2, 3))
    relu_net.loss_and_weight_gradient(X, np.ones(2), np.ones((2, 3)), np.zeros(2))
    relu_net.loss_and_input_gradient(X, np.ones(2), np.ones((2, 3)), np.zeros(2))
    relu_net.scores(X, np.ones((2, 3)), np.zeros(2))

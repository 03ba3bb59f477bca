"""Shared fixtures. Models are session-scoped: tests must not modify their weights."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.models import build_teaching_model, load_model
from interpwidgets.models.teaching import WEIGHTS_FILE

torch.set_grad_enabled(True)


@pytest.fixture(scope="session")
def random_model():
    """The teaching architecture with random weights (seed 0): for exact identities that need no training."""
    return build_teaching_model(seed=0)


@pytest.fixture(scope="session")
def attn_only_model():
    """A 2-layer attention-only model with random weights (for path-patching identities)."""
    return build_teaching_model(seed=1, n_layers=2, attn_only=True)


@pytest.fixture(scope="session")
def teaching_model():
    """The bundled, trained teaching model."""
    if not WEIGHTS_FILE.exists():
        pytest.fail(f"bundled teaching weights missing: {WEIGHTS_FILE}")
    return load_model(device="cpu")


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: many small training steps run fastest so (and do not crowd a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

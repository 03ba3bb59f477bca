"""Shared fixtures. Models are session-scoped: tests must not modify their weights."""

from __future__ import annotations

import pytest
import torch

from interpwidgets.models import build_teaching_model, load_model
from interpwidgets.models.assets import TEACHING_WEIGHTS_FILE

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
    if not TEACHING_WEIGHTS_FILE.exists():
        pytest.fail(f"bundled teaching weights missing: {TEACHING_WEIGHTS_FILE}")
    return load_model(device="cpu")


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: many small training steps run fastest so (and do not crowd a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ctrl_c_at_step(monkeypatch):
    """ctrl_c_at_step(n): from then on, SAE training raises KeyboardInterrupt when it starts step n + 1, as a Ctrl-C
    in the middle of training would."""
    from interpwidgets.sae.trainer import Trainer

    real_step = Trainer.step

    def arm(n: int) -> None:
        def interrupted(self, *args):
            if self.step_count == n:
                raise KeyboardInterrupt
            return real_step(self, *args)

        monkeypatch.setattr(Trainer, "step", interrupted)

    return arm


# ---- the family matrix: the teaching model and a tiny random model of each Hugging Face family ----------
from interpwidgets.models.families import FAMILIES, save_random_family  # noqa: E402

MATRIX = ("teaching", *FAMILIES)
_FAMILY_MODELS: dict = {}


def family_model_for(name: str, tmp_path_factory):
    """The model of one matrix row, built once per session: the teaching architecture (random weights,
    boot_native) or a random `transformers` model of that family saved to a temp folder and loaded back
    with iw.load_model(folder)."""
    if name not in _FAMILY_MODELS:
        if name == "teaching":
            _FAMILY_MODELS[name] = build_teaching_model(seed=0)
        else:
            folder = save_random_family(name, tmp_path_factory.mktemp(name))
            _FAMILY_MODELS[name] = load_model(str(folder), device="cpu")
    return _FAMILY_MODELS[name]


@pytest.fixture(scope="session", params=MATRIX)
def family_model(request, tmp_path_factory):
    """Each row of the family matrix in turn (see `family_model_for`); tests must not modify the weights."""
    return family_model_for(request.param, tmp_path_factory)

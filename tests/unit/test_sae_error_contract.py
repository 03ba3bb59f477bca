"""One error contract across the engine: a wrong value (a hook name the model lacks, a dictionary filed
under another hook) is a ValueError, whichever module checks it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from interpwidgets.interventions.hooks import check_hook_name
from interpwidgets.sae import SAEConfig, SAESet, build_sae
from interpwidgets.sae.inputs import check_hook

MODEL = SimpleNamespace(hook_dict={"blocks.0.hook_resid_post": None, "blocks.0.hook_mlp_out": None})


def test_sae_and_interventions_reject_a_missing_hook_with_the_same_value_error():
    for check in (check_hook, check_hook_name):
        with pytest.raises(ValueError, match="Did you mean 'blocks.0.hook_resid_post'") as err:
            check(MODEL, "blocks.0.hook_resid_pots")
        assert not isinstance(err.value, KeyError)
    with pytest.raises(ValueError, match="does not say which hook it reads"):
        check_hook(MODEL, "")


def test_saeset_refuses_a_dictionary_filed_under_another_hook_with_a_value_error():
    sae = build_sae(SAEConfig(d_in=8, d_sae=16, hook_name="blocks.0.hook_resid_post"), seed=0)
    saes = SAESet()
    with pytest.raises(ValueError, match="keyed by each dictionary's input hook") as err:
        saes["blocks.0.hook_mlp_out"] = sae
    assert not isinstance(err.value, KeyError) and len(saes) == 0
    saes["blocks.0.hook_resid_post"] = sae
    assert saes["blocks.0.hook_resid_post"] is sae

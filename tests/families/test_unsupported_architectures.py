"""An architecture the engine cannot fully handle (a state-space model: no attention, no MLP) gets errors that
name the missing component, never an index error from inside the bridge, and the model is left as it was."""

from __future__ import annotations

import pytest
import torch

import interpwidgets as iw
from interpwidgets.interventions import count_hooks


@pytest.fixture(scope="module")
def mamba(tmp_path_factory):
    import transformers as tf

    from interpwidgets.models.teaching import teaching_tokenizer

    folder = tmp_path_factory.mktemp("mamba")
    words = teaching_tokenizer()
    torch.manual_seed(0)
    tf.AutoModelForCausalLM.from_config(tf.MambaConfig(vocab_size=len(words), hidden_size=64, num_hidden_layers=2,
                                                       state_size=8)).save_pretrained(folder)
    words.save_pretrained(folder)
    return iw.load_model(str(folder), device="cpu")


def test_attention_and_mlp_methods_name_the_missing_hook_and_leave_the_model_untouched(mamba):
    task = iw.tasks.ioi(mamba, n=2, seed=0)
    with torch.no_grad():
        before = mamba(task.clean_tokens)
    with pytest.raises(ValueError, match=r"no 'blocks\.0\.attn\.hook_z', so site 'z' cannot be patched"):
        iw.patching.activation_patch(mamba, task, site="z", progress=False)
    with pytest.raises(ValueError, match=r"no 'blocks\.0\.hook_mlp_out'"):
        iw.patching.activation_patch(mamba, task, site="mlp_out", progress=False)
    with pytest.raises(ValueError, match=r"no 'blocks\.0\.attn\.hook_z' \(no attention heads\)"):
        iw.patching.path_patch(mamba, task, senders="heads", progress=False)
    assert count_hooks(mamba) == 0
    with torch.no_grad():
        torch.testing.assert_close(mamba(task.clean_tokens), before, rtol=0, atol=0)


def test_residual_stream_patching_still_works_on_a_causal_state_space_model(mamba):
    """Patching all of resid_pre at a layer reproduces the clean run (normalised value 1), as on transformers."""
    task = iw.tasks.ioi(mamba, n=2, seed=0)
    result = iw.patching.activation_patch(mamba, task, site="resid_pre", by="layer", progress=False)
    torch.testing.assert_close(result.values, torch.ones(2), atol=1e-4, rtol=0)

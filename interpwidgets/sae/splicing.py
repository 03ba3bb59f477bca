"""Run a model with dictionaries spliced in at their hooks.

Inside `with spliced(model, saes) as run:` every forward pass replaces each dictionary's output
hook with its reconstruction. With `error_term=True` the error `e = a - a_hat` (a: the hook's clean
activation) is added back, so outputs equal the clean model's up to float rounding, and the
features and the error are nodes on the path (as in Marks et al. 2024):

    f = encode(x.detach());  e = a - decode(f).detach();  output = decode(f) + e

so d output / d f = W_dec, d output / d e = I, and the rest of the model receives exactly the clean
model's gradients (through e). Without the error term nothing is detached: the dictionary is part
of the model. `run.features[hook]` and `run.errors[hook]` hold the latest forward pass's feature
activations `[batch, seq, d_sae]` and errors `[batch, seq, d_out]` (keyed by input hook); call
`retain_grad()` on them inside the block to read their gradients. The dictionaries run in their own
dtype and device (e.g. float32 on a bfloat16 model); what they write is cast back to the hook's.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from interpwidgets.sae.base import SAE
from interpwidgets.sae.inputs import as_dictionary_input, check_hook, to_dictionary
from interpwidgets.sae.sets import SAESet


@dataclass
class SpliceRecord:
    """Feature activations and errors from the latest spliced forward pass, keyed by input hook."""

    features: dict[str, torch.Tensor] = field(default_factory=dict)
    errors: dict[str, torch.Tensor] = field(default_factory=dict)


def _splice_fn(sae: SAE, record: SpliceRecord, error_term: bool, inputs: dict[str, torch.Tensor]):
    key = sae.cfg.hook_name

    def write(activation: torch.Tensor, hook) -> torch.Tensor:
        if sae.is_transcoder:
            if key not in inputs:
                raise RuntimeError(f"Transcoder output hook {hook.name!r} ran before its input hook {key!r}.")
            x = inputs.pop(key)
        else:
            x = as_dictionary_input(activation, sae.cfg.d_in, key)
        target = as_dictionary_input(activation, sae.cfg.d_out, sae.cfg.output_hook)
        f = sae.encode(to_dictionary(sae, x.detach() if error_term else x))
        recon = sae.decode(f)
        record.features[key] = f
        out = recon
        if error_term:
            error = to_dictionary(sae, target) - recon.detach()
            record.errors[key] = error
            out = recon + error
        return out.to(activation).reshape(activation.shape)

    def read(activation: torch.Tensor, hook) -> torch.Tensor:
        inputs[key] = as_dictionary_input(activation, sae.cfg.d_in, key)
        return activation

    return read, write


@contextmanager
def spliced(model, saes, error_term: bool = True):
    """Context manager: `model` runs through `saes` (an SAE, list, dict or SAESet); yields a `SpliceRecord`.

    Each output hook may be written by one dictionary only (an MLP-output SAE and an MLP transcoder
    both write `hook_mlp_out`: pick one, e.g. `saes.resid + saes.transcoders`).
    """
    dictionaries = list(SAESet.of(saes).values())
    written: dict[str, str] = {}
    for sae in dictionaries:
        check_hook(model, sae.cfg.hook_name)
        check_hook(model, sae.cfg.output_hook)
        out = sae.cfg.output_hook
        if out in written:
            raise ValueError(
                f"Two dictionaries write {out!r} (reading {written[out]!r} and {sae.cfg.hook_name!r}); splice one of them."
            )
        written[out] = sae.cfg.hook_name
    record = SpliceRecord()
    inputs: dict[str, torch.Tensor] = {}
    fwd_hooks = []
    for sae in dictionaries:
        read, write = _splice_fn(sae, record, error_term, inputs)
        if sae.is_transcoder:
            fwd_hooks.append((sae.cfg.hook_name, read))
        fwd_hooks.append((sae.cfg.output_hook, write))
    with model.hooks(fwd_hooks=fwd_hooks):
        yield record

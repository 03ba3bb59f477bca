"""Sparse autoencoders and transcoders: architectures, training, evaluation, formats, splicing, features.

    saes = iw.sae.pretrained(model)                     # SAESet keyed by input hook name
    sae = iw.sae.load("path/to/saelens_folder")        # or a dictionary_learning ae.pt, or a sae_lens SAE
    sae = iw.sae.train(model, "blocks.1.hook_resid_post", architecture="topk", d_sae=512, k=32)
    stats = iw.sae.evaluate(model, sae, tokens)
    with iw.sae.spliced(model, saes, error_term=False): ...

Importing this package is cheap: everything loads on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SAE": "base", "SAEConfig": "base", "ARCHITECTURES": "architectures", "build_sae": "architectures",
    "SAESet": "sets",
    "save": "formats", "load_saelens": "formats", "SAEFormatError": "formats",
    "load": "loading",
    "pretrained": "pretrained",
    "train": "training", "train_on_activations": "training", "TrainConfig": "training",
    "evaluate": "evaluation", "activation_frequency_histogram": "evaluation",
    "spliced": "splicing",
    "feature_activations": "features", "FeatureActivations": "features", "logit_effects": "features",
    "LogitEffects": "features", "check_feature": "features",
    "feature_stats": "corpus_stats", "FeatureStats": "corpus_stats", "Example": "corpus_stats",
    "top_activating": "corpus_stats",
    "ablate_features": "editing", "steer_feature": "editing",
}


# Functions named like their module are bound now: once the submodule is imported anywhere, Python
# would otherwise set this attribute to the module and __getattr__ would never run.
from interpwidgets.sae.pretrained import pretrained as pretrained  # noqa: E402


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"interpwidgets.sae.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'interpwidgets.sae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)

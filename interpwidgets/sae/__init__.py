"""Sparse autoencoders and transcoders: architectures, training, evaluation, formats, splicing, features.

    saes = iw.sae.pretrained(model)                     # SAESet keyed by input hook name
    sae = iw.sae.load("path/to/saelens_folder")        # or a dictionary_learning ae.pt, or a sae_lens SAE
    sae = iw.sae.train(model, "blocks.1.hook_resid_post", architecture="topk", d_sae=512, k=32)
    stats = iw.sae.evaluate(model, sae, tokens)
    labels = iw.sae.label_features(model, sae)         # sae.labels[i]: a short label per feature, saved beside it
    with iw.sae.spliced(model, saes, error_term=False): ...
"""

from interpwidgets.sae.architectures import ARCHITECTURES, build_sae
from interpwidgets.sae.base import SAE, SAEConfig
from interpwidgets.sae.corpus_stats import Example, FeatureStats, feature_stats, top_activating
from interpwidgets.sae.editing import ablate_features, steer_feature
from interpwidgets.sae.evaluation import SAEEvaluation, activation_frequency_histogram, evaluate
from interpwidgets.sae.features import (
    FeatureActivations,
    LogitEffects,
    check_feature,
    feature_activations,
    logit_effects,
)
from interpwidgets.sae.formats import SAEFormatError, load_saelens, save
from interpwidgets.sae.labels import FeatureEvidence, FeatureLabels, LabelsFormatError, feature_label, label_features
from interpwidgets.sae.loading import load
from interpwidgets.sae.pretrained import pretrained
from interpwidgets.sae.sets import SAESet
from interpwidgets.sae.splicing import spliced
from interpwidgets.sae.training import TrainConfig, train, train_on_activations

__all__ = [
    "ARCHITECTURES", "Example", "FeatureActivations", "FeatureEvidence", "FeatureLabels", "FeatureStats", "LabelsFormatError",
    "LogitEffects", "SAE", "SAEConfig", "SAEEvaluation", "SAEFormatError", "SAESet", "TrainConfig", "ablate_features",
    "activation_frequency_histogram", "build_sae", "check_feature", "evaluate", "feature_activations", "feature_label",
    "feature_stats", "label_features", "load", "load_saelens", "logit_effects", "pretrained", "save", "spliced",
    "steer_feature", "top_activating", "train", "train_on_activations",
]

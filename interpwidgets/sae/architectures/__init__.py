"""The SAE architectures, and the registry that maps each name to its class.

    ARCHITECTURES                 # ("relu", "topk", "batchtopk", "jumprelu", "gated")
    sae_class("topk")             # TopKSAE
    build_sae(SAEConfig(d_in=128, d_sae=512, architecture="topk", k=16), seed=0)

Each architecture is one module of this package defining one subclass of `interpwidgets.sae.base.SAE`.
Its class attributes (`architecture`, `uses_k`, `default_sparsity`, `auxk`, `resample_params`,
`calibrates_threshold`, the SAELens names, `param_renames`, ...; documented on `SAE`) and the methods
it overrides are all that configuration, training, saving and loading know about it.

Adding an architecture is one file plus one import line here: write `<name>.py` with the subclass
(set `architecture` and the attributes that differ from `SAE`'s defaults; implement `activation`
and, for a penalty or auxiliary loss, `training_outputs`) and import its class below, as
`from interpwidgets.sae.architectures.<name> import Cls as Cls`. Every `SAE` subclass imported here
from this package's modules is registered, in import order; no other module changes. Code that
defines an architecture elsewhere (a notebook, a test) calls `register(cls)` instead.
"""

from __future__ import annotations

import torch

from interpwidgets.sae.base import SAE, SAEConfig
from interpwidgets.sae.architectures.relu import ReLUSAE as ReLUSAE
from interpwidgets.sae.architectures.topk import TopKSAE as TopKSAE
from interpwidgets.sae.architectures.batchtopk import BatchTopKSAE as BatchTopKSAE
from interpwidgets.sae.architectures.jumprelu import JumpReLUSAE as JumpReLUSAE
from interpwidgets.sae.architectures.gated import GatedSAE as GatedSAE

ARCHITECTURES: tuple[str, ...] = ()
"""The registered architecture names, in registration order."""

_RESAMPLE_RULES = ("zero", "mean_alive")


def register(cls: type[SAE]) -> type[SAE]:
    """Make `cls` the implementation of `cls.architecture`; returns `cls` (so it works as a decorator).

    Refuses a name that another class already holds, and an SAELens cfg.json name that another class
    already reads.
    """
    global ARCHITECTURES
    if not (isinstance(cls, type) and issubclass(cls, SAE)) or not cls.architecture:
        raise TypeError(f"{cls!r} is not an SAE subclass with an `architecture` name.")
    held = SAE.implementations.get(cls.architecture)
    if held is not None and held is not cls:
        raise ValueError(f"Architecture {cls.architecture!r} is already implemented by {held.__name__}.")
    for name, rule in cls.resample_params.items():
        if rule not in _RESAMPLE_RULES:
            raise ValueError(f"{cls.__name__}.resample_params[{name!r}] is {rule!r}; use one of {_RESAMPLE_RULES}.")
    readers = {name: other for other in SAE.implementations.values() if other is not cls for name in other.saelens_names_read()}
    for name in cls.saelens_names_read():
        if name in readers:
            raise ValueError(f"{cls.__name__} would read SAELens architecture {name!r}, which {readers[name].__name__} reads already.")
    SAE.implementations[cls.architecture] = cls
    ARCHITECTURES = tuple(SAE.implementations)
    return cls


def sae_class(architecture: str) -> type[SAE]:
    """The SAE subclass implementing `architecture` (ValueError naming the valid ones if there is none)."""
    return SAE.implementation(architecture)


def classes() -> tuple[type[SAE], ...]:
    """Every registered architecture class, in registration order."""
    return tuple(SAE.implementations.values())


def build_sae(cfg: SAEConfig, seed: int | None = None) -> SAE:
    """A freshly initialised dictionary for `cfg` (deterministic when `seed` is given)."""
    sae = sae_class(cfg.architecture)(cfg)
    if seed is not None:
        sae.reset_parameters(torch.Generator().manual_seed(seed))
    return sae


for _value in list(globals().values()):  # the classes imported from this package's modules above, in order
    if isinstance(_value, type) and issubclass(_value, SAE) and _value.__module__.startswith(f"{__name__}."):
        register(_value)
del _value


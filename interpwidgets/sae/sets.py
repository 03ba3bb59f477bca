"""`SAESet`: the dictionaries for one model, keyed by the hook each one reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from interpwidgets.interventions.components import layer_of, parse_component
from interpwidgets.sae.adapters import from_saelens_object, looks_like_saelens_sae
from interpwidgets.sae.base import SAE


def hook_layer(hook_name: str) -> int:
    """The block index in a TransformerLens hook name ("blocks.3.hook_resid_post" -> 3)."""
    layer = layer_of(hook_name)
    if layer is None:
        raise ValueError(f"Hook name {hook_name!r} does not name a block (expected 'blocks.<layer>.<hook>').")
    return layer


def _as_sae(obj: object) -> SAE:
    """`obj` if it is an SAE of ours, converted if it is a sae_lens SAE object; a TypeError otherwise."""
    if isinstance(obj, SAE):
        return obj
    if looks_like_saelens_sae(obj):
        return from_saelens_object(obj)
    raise TypeError(f"{type(obj).__name__} is not a dictionary: pass SAEs (iw.sae.load reads other formats).")


class SAESet(dict):
    """A dict `{input hook name: SAE}` with views by kind, each a list ordered by layer.

    Keys follow TransformerLens hook names: residual SAEs under "blocks.L.hook_resid_post",
    attention-output SAEs under "blocks.L.hook_attn_out", MLP-output SAEs under
    "blocks.L.hook_mlp_out", and MLP transcoders under "blocks.L.ln2.hook_normalized" (the MLP input;
    they write "blocks.L.hook_mlp_out"). A key may also be given as a place short name, as everywhere in the
    engine: `saes["resid_post2"]` (or the alias `saes["resid2"]`) is `saes["blocks.2.hook_resid_post"]`.
    """

    def _key(self, name: object) -> object:
        if not isinstance(name, str) or dict.__contains__(self, name):
            return name
        try:
            component = parse_component(name)
        except (TypeError, ValueError):
            return name
        plain = component.head is None and component.neuron is None and component.positions is None
        return component.hook_name if plain else name

    def __getitem__(self, name: str) -> SAE:
        return super().__getitem__(self._key(name))

    def __contains__(self, name: object) -> bool:
        return super().__contains__(self._key(name))

    def get(self, name: str, default=None):
        return super().get(self._key(name), default)

    def __setitem__(self, hook_name: str, sae: SAE) -> None:
        if sae.cfg.hook_name != hook_name:
            raise ValueError(f"An SAESet is keyed by each dictionary's input hook: got key {hook_name!r} for an SAE reading {sae.cfg.hook_name!r}.")
        super().__setitem__(hook_name, sae)

    @classmethod
    def of(cls, saes: SAE | Mapping[str, SAE] | Iterable[SAE]) -> "SAESet":
        """An SAESet from one SAE, a dict of them (e.g. an SAESet) or an iterable, each keyed by its `cfg.hook_name`.

        A sae_lens SAE object, alone or in a collection, is converted to ours (as `iw.sae.load` does).
        """
        if isinstance(saes, Mapping):
            items = list(saes.values())
        elif isinstance(saes, SAE) or looks_like_saelens_sae(saes):
            items = [saes]
        elif isinstance(saes, Iterable) and not isinstance(saes, (str, bytes)):
            items = saes
        else:
            raise TypeError(f"Expected an SAE, a dict of SAEs (e.g. iw.sae.pretrained(model)) or a list of them, got {type(saes).__name__}.")
        out = cls()
        for sae in items:
            sae = _as_sae(sae)
            if sae.cfg.hook_name in out:
                raise ValueError(f"Two dictionaries read the same hook {sae.cfg.hook_name!r}; an SAESet holds one per hook.")
            out[sae.cfg.hook_name] = sae
        return out

    def _kind(self, suffix: str, transcoder: bool) -> list[SAE]:
        found = [s for name, s in self.items() if name.endswith(suffix) and s.is_transcoder == transcoder]
        return sorted(found, key=lambda s: hook_layer(s.cfg.hook_name))

    @property
    def resid(self) -> list[SAE]:
        """Residual-stream SAEs (reading hook_resid_post / hook_resid_pre / hook_resid_mid), by layer."""
        return sorted(
            (s for name, s in self.items() if ".hook_resid_" in name and not s.is_transcoder),
            key=lambda s: hook_layer(s.cfg.hook_name),
        )

    @property
    def attn(self) -> list[SAE]:
        """Attention-output SAEs (reading hook_attn_out), by layer."""
        return self._kind(".hook_attn_out", transcoder=False)

    @property
    def mlp(self) -> list[SAE]:
        """MLP-output SAEs (reading hook_mlp_out), by layer."""
        return self._kind(".hook_mlp_out", transcoder=False)

    @property
    def transcoders(self) -> list[SAE]:
        """Transcoders, by layer (for the teaching model: MLP input -> MLP output)."""
        return sorted((s for s in self.values() if s.is_transcoder), key=lambda s: hook_layer(s.cfg.hook_name))

    def to(self, *args, **kwargs) -> "SAESet":
        """Move every dictionary (in place, like `nn.Module.to`); returns self."""
        for sae in self.values():
            sae.to(*args, **kwargs)
        return self

    def __repr__(self) -> str:
        rows = ",\n  ".join(f"{name!r}: {sae.extra_repr()}" for name, sae in self.items())
        return f"SAESet({{\n  {rows}\n}})" if rows else "SAESet({})"

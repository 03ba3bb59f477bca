"""One dictionary's optimisation state and step: loss, schedule, constraints, dead latents, checkpoints.

Inputs are rescaled during training so that E||x||^2 = d_in (and E||y||^2 = d_out for the target);
the scales are estimated from the first batch and folded into the weights by `result()`, so the
returned dictionary acts on raw activations. Loss per batch:

    sum_d (y_hat - y)^2, averaged over tokens          (reconstruction)
  + the architecture's sparsity_loss and aux_loss      (see each architecture module)
  + aux_coefficient * AuxK loss                         (architectures with `auxk`, e.g. TopK; Gao et al.
                                                         2024; in the reconstruction loss's units, as SAELens does)

Before each Adam step the gradient's global norm is clipped to `max_grad_norm` (1.0, as SAELens
does). The loss is in scaled units, so nearly every step is clipped: steps keep one size from the
first batch to the last, instead of Adam's second moment remembering the large early gradients
and shrinking the later steps of a short run.

Dead latents (no activation in the last `dead_after_tokens` tokens) are revived by AuxK where the
architecture has `auxk` (TopK, BatchTopK): the k_aux largest pre-activations among dead latents
must reconstruct the residual error, which pulls them back onto the data. The other architectures'
dead latents have negative pre-activations, through which no such gradient flows; they are
resampled instead (Bricken et al. 2023): re-initialised towards inputs the dictionary reconstructs
worst (W_enc, W_dec; the other latent-indexed parameters as the class's `resample_params` say),
with their Adam moments reset.
"""

from __future__ import annotations

import collections
import copy
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from interpwidgets.models.files import write_atomic
from interpwidgets.sae.architectures import build_sae, sae_class
from interpwidgets.sae.base import SAE, SAEConfig
from interpwidgets.tasks.metric import NonFiniteError

CHECKPOINT_FILE = "checkpoint.safetensors"
CALIBRATION_BATCHES = 8  # recent batches kept to calibrate a threshold at the end (`calibrates_threshold`)


class NonFiniteActivationsError(NonFiniteError):
    """NaN or inf in the activations (or the loss) fed to a dictionary."""


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (token counts are activation rows).

    sparsity_coefficient: weight of the architecture's sparsity penalty (L1 for relu and gated, L0 for
    jumprelu); None takes its `default_sparsity`. Architectures whose sparsity is structural (topk,
    batchtopk) ignore it. Learning rate: linear warm-up over `warmup_steps`, constant,
    then linear decay to 0 over the last `decay_fraction` of the steps. max_grad_norm: the gradient's
    global norm is clipped to it before each step (None: no clipping).
    """

    architecture: str = "topk"
    d_sae: int = 1024
    k: int | None = 32
    sparsity_coefficient: float | None = None
    total_tokens: int = 2_000_000
    batch_size: int = 4096
    lr: float = 1e-3
    warmup_steps: int = 50
    decay_fraction: float = 0.2
    max_grad_norm: float | None = 1.0
    aux_coefficient: float = 1.0
    k_aux: int | None = None
    dead_after_tokens: int = 250_000
    resample_every: int = 200
    buffer_tokens: int = 262_144
    checkpoint_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be a positive number, or None for no clipping; got {self.max_grad_norm!r}.")

    @property
    def steps(self) -> int:
        return max(1, self.total_tokens // self.batch_size)

    @property
    def coefficient(self) -> float:
        if self.sparsity_coefficient is not None:
            return self.sparsity_coefficient
        return sae_class(self.architecture).default_sparsity


class Trainer:
    """Trains one dictionary step by step; `result()` gives the finished dictionary for raw activations."""

    def __init__(self, sae_cfg: SAEConfig, cfg: TrainConfig, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.sae = build_sae(sae_cfg, seed=cfg.seed).to(device)
        named = [(n, p) for n, p in self.sae.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        groups = [{"params": [p], "lr_scale": self.sae.lr_scale.get(n, 1.0)} for n, p in named]
        self.opt = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.999))
        self.step_count = 0
        self.scale_in: float | None = None
        self.scale_out: float | None = None
        self.since_fired = torch.zeros(sae_cfg.d_sae, dtype=torch.long, device=device)  # tokens since each latent fired
        self.source_position = 0  # rows drawn from the data source (for resuming deterministic sources)
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.k_aux = cfg.k_aux or max(1, sae_cfg.d_out // 2)
        self.recent: collections.deque[torch.Tensor] = collections.deque(maxlen=CALIBRATION_BATCHES)  # scaled inputs

    # ---- schedule and bookkeeping ---------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        c = self.cfg
        if step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        decay_start = int(c.steps * (1 - c.decay_fraction))
        if step < decay_start:
            return c.lr
        return c.lr * max(0.0, (c.steps - step) / max(1, c.steps - decay_start))

    @property
    def done(self) -> bool:
        return self.step_count >= self.cfg.steps

    def dead_mask(self) -> torch.Tensor:
        """[d_sae] bool: latents that have not fired in the last `dead_after_tokens` tokens."""
        return self.since_fired >= self.cfg.dead_after_tokens

    @torch.no_grad()
    def _initialise(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Input/output scales from the first batch; b_dec at the (scaled) mean target."""
        self.scale_in = math.sqrt(x.shape[-1] / x.pow(2).sum(-1).mean().clamp_min(1e-12).item())
        if self.sae.is_transcoder:
            self.scale_out = math.sqrt(y.shape[-1] / y.pow(2).sum(-1).mean().clamp_min(1e-12).item())
        else:
            self.scale_out = self.scale_in
        self.sae.b_dec.copy_((y * self.scale_out).mean(0))

    # ---- one step --------------------------------------------------------------------------
    def step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One optimiser step on inputs `x [batch, d_in]` and targets `y [batch, d_out]`; returns metrics."""
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            where = self.sae.cfg.hook_name or "the activation source"
            raise NonFiniteActivationsError(f"NaN or inf in the activations from {where} at training step {self.step_count}.")
        if self.scale_in is None:
            self._initialise(x, y)
        x = x * self.scale_in
        y = y * self.scale_out
        if self.sae.calibrates_threshold:
            self.recent.append(x)
        lr = self.learning_rate(self.step_count)
        for group in self.opt.param_groups:
            group["lr"] = lr * group["lr_scale"]

        out = self.sae.training_outputs(x, y, self.cfg.coefficient)
        f = out["feature_acts"]
        recon = self.sae.decode(f)
        mse = (recon - y).pow(2).sum(-1).mean()
        loss = mse + out["sparsity_loss"] + out["aux_loss"]
        dead = self.dead_mask()
        if self.sae.auxk and dead.any():
            loss = loss + self.cfg.aux_coefficient * self._auxk_loss(out["pre_acts"], y - recon.detach(), dead)
        if not torch.isfinite(loss):
            raise NonFiniteActivationsError(f"The training loss became {loss.item()} at step {self.step_count}.")

        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.sae.remove_parallel_decoder_grad()
        if self.cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.opt.step()
        self.sae.post_step()

        with torch.no_grad():
            fired = (f != 0).any(0)
            self.since_fired += x.shape[0]
            self.since_fired[fired] = 0
            if not self.sae.auxk and self._resample_due():
                self._resample(x, y, recon)
            l0 = (f != 0).sum(-1).float().mean().item()
            variance = (y - y.mean(0)).pow(2).sum(-1).mean().item()
        self.step_count += 1
        return {
            "l0": l0, "mse": mse.item() / self.scale_out**2, "explained_variance": 1 - mse.item() / max(variance, 1e-12),
            "dead_fraction": dead.float().mean().item(), "lr": lr,
            "loss": loss.item(),  # the optimised objective, on activations scaled to unit mean squared norm
        }

    def _auxk_loss(self, pre: torch.Tensor, residual: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
        """Error of reconstructing `residual [batch, d_out]` from the top-k_aux dead latents (Gao et al. 2024),
        in the units of the reconstruction loss, scaled down while fewer than k_aux latents are dead."""
        n_dead = int(dead.sum())
        k = min(self.k_aux, n_dead)
        dead_pre = pre[:, dead]
        values, indices = dead_pre.topk(k, dim=-1, sorted=False)
        acts = torch.zeros_like(dead_pre).scatter(-1, indices, values)  # no ReLU: strongly negative latents learn too
        residual_hat = acts @ self.sae.W_dec[dead]
        return min(1.0, n_dead / self.k_aux) * (residual_hat - residual).pow(2).sum(-1).mean()

    def _resample_due(self) -> bool:
        c = self.cfg
        in_decay = self.step_count >= int(c.steps * (1 - c.decay_fraction))
        return not in_decay and self.step_count > 0 and self.step_count % c.resample_every == 0

    @torch.no_grad()
    def _resample(self, x: torch.Tensor, y: torch.Tensor, recon: torch.Tensor) -> None:
        dead = self.dead_mask().nonzero().squeeze(-1)
        if len(dead) == 0:
            return
        sae = self.sae
        err = (y - recon).pow(2).sum(-1)
        rows = torch.multinomial(err.pow(2).cpu() + 1e-12, len(dead), replacement=True, generator=self.generator)
        rows = rows.to(x.device)
        source = x[rows] - (sae.b_dec if sae.cfg.apply_b_dec_to_input else 0)
        target = (y - recon)[rows]
        alive = ~self.dead_mask()
        enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
        sae.W_dec[dead] = target / target.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        sae.W_enc[:, dead] = (source / source.norm(dim=-1, keepdim=True).clamp_min(1e-8)).T * 0.2 * enc_norm
        for name, rule in sae.resample_params.items():
            param = getattr(sae, name)
            if rule == "zero":
                param[dead] = 0.0
            elif alive.any():  # "mean_alive"
                param[dead] = param[alive].mean()
        for param in self.params:
            state = self.opt.state.get(param, {})
            for moment in ("exp_avg", "exp_avg_sq"):
                if moment in state:
                    if param is sae.W_enc:
                        state[moment][:, dead] = 0
                    elif param.shape[0] == sae.cfg.d_sae:
                        state[moment][dead] = 0
        self.since_fired[dead] = 0

    # ---- result and checkpoints -------------------------------------------------------------
    def result(self, metadata: dict | None = None) -> SAE:
        """A copy of the dictionary for raw (unscaled) activations, in eval mode."""
        sae = copy.deepcopy(self.sae).eval()
        if self.recent:
            sae.calibrate_threshold(torch.cat(list(self.recent)))
        if self.scale_in is not None:
            sae.fold_input_output_scale(self.scale_in, self.scale_out)
        sae.cfg.metadata = {**sae.cfg.metadata, **(metadata or {}), "training": {**asdict(self.cfg), "steps_done": self.step_count}}
        for p in sae.parameters():
            p.requires_grad_(False)
        return sae

    def save_checkpoint(self, folder: str | os.PathLike) -> Path:
        """Write the full training state to `folder/checkpoint.safetensors` atomically (one file: a kill at any
        moment leaves the previous checkpoint or this one)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"sae.{k}": v.detach().cpu().contiguous() for k, v in self.sae.state_dict().items()}
        names = {id(p): n for n, p in self.sae.named_parameters()}
        for param in self.params:
            for key, value in self.opt.state.get(param, {}).items():
                tensors[f"opt.{names[id(param)]}.{key}"] = value.detach().cpu().contiguous()
        tensors["since_fired"] = self.since_fired.cpu()
        tensors["generator"] = self.generator.get_state()
        state = {
            "sae_cfg": self.sae.cfg.to_dict(), "train_cfg": asdict(self.cfg), "step": self.step_count,
            "scale_in": self.scale_in, "scale_out": self.scale_out, "source_position": self.source_position,
        }
        path = folder / CHECKPOINT_FILE
        from safetensors.torch import save_file

        write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata={"state": json.dumps(state)}))
        return path

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Trainer":
        """Rebuild a trainer exactly as it was when `path` (a checkpoint file or its folder) was written."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if path.is_dir():
            path = path / CHECKPOINT_FILE
        try:
            with safe_open(str(path), framework="pt") as f:
                state = json.loads(f.metadata()["state"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(
                f"{path} is not a readable training checkpoint ({err}): it is missing, truncated or not a checkpoint. "
                "Start over with resume=False (or a new checkpoint_dir), or copy the checkpoint file again."
            ) from err
        trainer = cls(SAEConfig(**state["sae_cfg"]), TrainConfig(**state["train_cfg"]), device)
        trainer.sae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("sae.")})
        by_name = dict(trainer.sae.named_parameters())
        for key, value in tensors.items():
            if key.startswith("opt."):
                name, moment = key[4:].rsplit(".", 1)
                trainer.opt.state[by_name[name]][moment] = value.to(device) if moment != "step" else value
        trainer.since_fired = tensors["since_fired"].to(device)
        trainer.generator.set_state(tensors["generator"])
        trainer.step_count = state["step"]
        trainer.scale_in, trainer.scale_out = state["scale_in"], state["scale_out"]
        trainer.source_position = state["source_position"]
        return trainer

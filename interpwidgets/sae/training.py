"""`train` (from a model and hook) and `train_on_activations` (from activations you already have).

    sae = iw.sae.train(model, "blocks.1.hook_resid_post", architecture="topk", d_sae=1024, k=32)
    tc  = iw.sae.train(model, "blocks.1.ln2.hook_normalized", hook_name_out="blocks.1.hook_mlp_out")
    sae = iw.sae.train_on_activations(acts, total_tokens=10**6)          # acts: [n, d_in]

Activations pass through a shuffling buffer (`buffer.py`) before batching. With `checkpoint_dir`,
the training state is written atomically every `checkpoint_every` steps and at the end; calling
again with the same folder resumes from it (deterministic sources — the corpus, a token tensor, an
activation tensor — continue from where the checkpoint was taken, less the rows that sat in the
buffer). Ctrl-C or bad activations (NaN/inf) stop training and leave the last checkpoint intact.

`callback=` (e.g. `iw.widgets.TrainingMonitor().track("topk")`) is called with a dict after every step
(`event="step"`: step, steps, tokens, loss, l0, mse, explained_variance, dead_fraction, lr) and once at
the end (`event="end"`: status "finished", "interrupted", "non_finite" or "source_exhausted", the step
reached and the checkpoint path kept, or None). A Ctrl-C still propagates after the callback is told.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from interpwidgets.sae.architectures import sae_class
from interpwidgets.sae.base import SAE, SAEConfig
from interpwidgets.sae.buffer import shuffled_batches
from interpwidgets.sae.activations import CORPUS_SEED, hook_activations, token_batches, token_source
from interpwidgets.sae.inputs import as_dictionary_input, check_hook
from interpwidgets.sae.trainer import CHECKPOINT_FILE, NonFiniteActivationsError, TrainConfig, Trainer

ChunkSource = Callable[[int], Iterator[torch.Tensor]]  # start chunk -> chunks [n, d_in] (SAE) or [n, d_in + d_out]
Callback = Callable[[dict], object]  # called with each step's metrics and once with how training ended


def _config(config: TrainConfig | None, overrides: dict) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"Unknown training option(s) {unknown}; valid: {sorted(names)}.")
    config = replace(config or TrainConfig(), **overrides)
    if not sae_class(config.architecture).uses_k:  # the default k (32) applies only where one is taken
        config = replace(config, k=None)
    return config


def _check_callback(callback) -> Callback | None:
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function taking one dict (or None), not {type(callback).__name__}; "
                        "e.g. callback=iw.widgets.TrainingMonitor().track('topk').")
    return callback


def _fit(trainer: Trainer, source: ChunkSource, d_in: int, checkpoint_dir: Path | None, progress: bool, desc: str,
         callback: Callback | None = None) -> SAE:
    """Run `trainer` to its last step on batches mixed from `source`; checkpoint along the way; tell `callback`."""
    cfg = trainer.cfg

    def counted() -> Iterator[torch.Tensor]:
        for chunk in source(trainer.source_position):
            trainer.source_position += 1
            yield chunk

    def position() -> dict:
        return {"step": trainer.step_count, "steps": cfg.steps, "tokens": trainer.step_count * cfg.batch_size}

    def end(status: str) -> None:
        if callback is not None:
            kept = str(checkpoint) if checkpoint and checkpoint.exists() else None
            callback({"event": "end", "status": status, **position(), "checkpoint": kept})

    batches = shuffled_batches(counted(), cfg.batch_size, max(cfg.buffer_tokens, 2 * cfg.batch_size), trainer.generator)
    bar = tqdm(total=cfg.steps, initial=trainer.step_count, desc=desc, disable=not progress, dynamic_ncols=True)
    checkpoint = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir else None
    if trainer.done:
        bar.close()
        end("finished")
        return trainer.result()
    try:
        for batch in batches:
            if trainer.done:
                break
            x = batch[:, :d_in]
            metrics = trainer.step(x, batch[:, d_in:] if batch.shape[1] > d_in else x)
            bar.update(1)
            if trainer.step_count % 10 == 0 or trainer.done:
                bar.set_postfix(L0=f"{metrics['l0']:.1f}", MSE=f"{metrics['mse']:.4g}",
                                EV=f"{metrics['explained_variance']:.3f}", dead=f"{metrics['dead_fraction']:.2f}")
            if checkpoint and (trainer.step_count % cfg.checkpoint_every == 0 or trainer.done):
                trainer.save_checkpoint(checkpoint_dir)
            if callback is not None:
                callback({"event": "step", **position(), **metrics})
    except KeyboardInterrupt:
        end("interrupted")
        raise
    except NonFiniteActivationsError as err:
        end("non_finite")
        kept = f"the last good checkpoint ({checkpoint}) is kept" if checkpoint and checkpoint.exists() else "no checkpoint was written"
        raise NonFiniteActivationsError(f"{err} Training stopped; {kept}. Check the model/hook or the activation source.") from None
    finally:
        bar.close()
    if not trainer.done:
        end("source_exhausted")
        warnings.warn(
            f"The activation source ran out after {trainer.step_count} of {cfg.steps} steps; the dictionary is "
            "returned as trained so far (its learning rate never decayed). Give more activations or lower total_tokens.",
            stacklevel=3,
        )
    else:
        end("finished")
    return trainer.result()


def _start(sae_cfg: SAEConfig, cfg: TrainConfig, checkpoint_dir, resume: bool, device) -> tuple[Trainer, Path | None]:
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None and resume and (folder / CHECKPOINT_FILE).exists():
        trainer = Trainer.from_checkpoint(folder, device)
        if trainer.sae.cfg.to_dict() != sae_cfg.to_dict() or trainer.cfg != cfg:
            raise ValueError(
                f"The checkpoint in {folder} was written for a different dictionary or training configuration; "
                "pass the same settings to resume, a new checkpoint_dir, or resume=False to start over."
            )
        return trainer, folder
    return Trainer(sae_cfg, cfg, device), folder


# ---- training from activations -----------------------------------------------------------------
def _tensor_source(x: torch.Tensor, y: torch.Tensor | None, chunk_rows: int) -> ChunkSource:
    n_chunks = max(1, -(-len(x) // chunk_rows))

    def source(start: int) -> Iterator[torch.Tensor]:
        for i in itertools.count(start):  # cycles through the rows in order; the buffer shuffles
            rows = slice((i % n_chunks) * chunk_rows, (i % n_chunks + 1) * chunk_rows)
            chunk = x[rows].float()
            yield chunk if y is None else torch.cat([chunk, y[rows].float()], dim=-1)

    return source


def _iterator_source(items: Iterable) -> tuple[ChunkSource, int, int, bool]:
    it = iter(items)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("The activation iterator is empty.") from None

    def pair(item) -> torch.Tensor:
        if not isinstance(item, (tuple, list)):
            return item.reshape(-1, item.shape[-1]).float()
        x, y = item
        return torch.cat([x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])], dim=-1).float()

    first_pair = first if isinstance(first, (tuple, list)) else (first, first)
    d_in, d_out = first_pair[0].shape[-1], first_pair[1].shape[-1]

    def source(start: int) -> Iterator[torch.Tensor]:  # a live iterator cannot be rewound: `start` is ignored
        yield pair(first)
        for item in it:
            yield pair(item)

    return source, d_in, d_out, isinstance(first, (tuple, list))


def train_on_activations(
    activations: torch.Tensor | Iterable,
    targets: torch.Tensor | None = None,
    *,
    hook_name: str = "",
    hook_name_out: str | None = None,
    model_name: str | None = None,
    config: TrainConfig | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    device: str | torch.device | None = None,
    callback: Callback | None = None,
    **options,
) -> SAE:
    """Train a dictionary on activations you already have.

    activations: a tensor `[n, d_in]` (or `[..., d_in]`), or an iterable of such tensors or of
        `(x [b, d_in], y [b, d_out])` pairs (a transcoder's inputs and targets).
    targets: for a tensor input, the aligned transcoder targets `[n, d_out]` (None for an SAE).
    callback: called with each step's metrics and with how training ended (module docstring).
    options: any `TrainConfig` field (architecture, d_sae, k, total_tokens, lr, ...).
    Returns the trained dictionary in eval mode; it acts on raw activations.
    """
    cfg = _config(config, options)
    callback = _check_callback(callback)
    if isinstance(activations, torch.Tensor):
        x = activations.reshape(-1, activations.shape[-1])
        y = None if targets is None else targets.reshape(-1, targets.shape[-1])
        if y is not None and len(y) != len(x):
            raise ValueError(f"activations ({len(x)} rows) and targets ({len(y)} rows) must align row for row.")
        if not torch.isfinite(x).all() or (y is not None and not torch.isfinite(y).all()):
            raise NonFiniteActivationsError("The activations contain NaN or inf; nothing was trained or written.")
        d_in, d_out = x.shape[-1], (y if y is not None else x).shape[-1]
        source = _tensor_source(x, y, cfg.batch_size)
        device = device or x.device
        paired = y is not None
    else:
        source, d_in, d_out, paired = _iterator_source(activations)
        device = device or "cpu"
    if paired and hook_name_out is None:
        raise ValueError("Training a transcoder (inputs with separate targets): name the hook it writes with hook_name_out=.")
    sae_cfg = SAEConfig(d_in=d_in, d_sae=cfg.d_sae, architecture=cfg.architecture, hook_name=hook_name,
                        hook_name_out=hook_name_out, d_out=d_out, k=cfg.k, model_name=model_name)
    trainer, folder = _start(sae_cfg, cfg, checkpoint_dir, resume, device)
    return _fit(trainer, source, d_in, folder, progress, desc=f"{cfg.architecture} {hook_name or 'SAE'}", callback=callback)


# ---- training from a model ------------------------------------------------------------------------
def train(
    model,
    hook_name: str,
    tokens=None,
    *,
    hook_name_out: str | None = None,
    context_size: int | None = None,
    model_batch_size: int = 32,
    corpus_seed: int = CORPUS_SEED,
    config: TrainConfig | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    callback: Callback | None = None,
    **options,
) -> SAE:
    """Train an SAE on `model`'s activations at `hook_name` (a transcoder with `hook_name_out`).

    tokens: None or "corpus" (the teaching corpus generator, seed `corpus_seed`), a token tensor
        `[n, seq]` (cycled as often as `total_tokens` needs), or a list of strings (packed into
        rows of `context_size`, each document after a BOS).
    context_size: row length for the corpus and strings; None gives 128, or the model's `n_ctx` if
        shorter (with a warning). A longer explicit value is refused.
    callback: called with each step's metrics and with how training ended (module docstring).
    options: any `TrainConfig` field (architecture, d_sae, k, total_tokens, lr, ...).
    The dictionary is trained and returned in float32 on the model's device, whatever the model's dtype
    (every interpwidgets function casts activations to the dictionary's dtype and results back).
    """
    cfg = _config(config, options)
    callback = _check_callback(callback)
    check_hook(model, hook_name)
    out_hook = hook_name_out or hook_name
    if hook_name_out is not None:
        check_hook(model, hook_name_out)
    rows, context = token_source(model, tokens, context_size)
    probe = hook_activations(model, torch.zeros(1, 2, dtype=torch.long), [hook_name, out_hook])
    d_in, d_out = probe[hook_name][0, 0].numel(), probe[out_hook][0, 0].numel()  # per-head hooks are flattened

    def source(start: int) -> Iterator[torch.Tensor]:
        for batch in token_batches(model, rows, model_batch_size, context, corpus_seed, start):
            acts = hook_activations(model, batch, [hook_name, out_hook])
            x = as_dictionary_input(acts[hook_name], d_in, hook_name).reshape(-1, d_in).float()
            if hook_name_out is None:
                yield x
            else:
                yield torch.cat([x, as_dictionary_input(acts[out_hook], d_out, out_hook).reshape(-1, d_out).float()], dim=-1)

    sae_cfg = SAEConfig(d_in=d_in, d_sae=cfg.d_sae, architecture=cfg.architecture, hook_name=hook_name,
                        hook_name_out=hook_name_out, d_out=d_out, k=cfg.k, model_name=model.cfg.model_name)
    trainer, folder = _start(sae_cfg, cfg, checkpoint_dir, resume, model.cfg.device)
    return _fit(trainer, source, d_in, folder, progress, desc=f"{cfg.architecture} {hook_name}", callback=callback)

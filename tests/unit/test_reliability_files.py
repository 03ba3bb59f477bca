"""Crash-safe files: a writer killed with SIGKILL at random moments (fixed seeds, a bounded count) while it saves an
SAE folder, a training checkpoint and a circuit's JSON leaves each file as the old complete version or the new
complete one, never a torn file or a mix; and a folder that is really incomplete says so and what to do.

The writer is a child forked from a helper process that imported torch once (torch on one thread, so forking is
safe), so a kill cycle costs milliseconds rather than an interpreter start."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from interpwidgets.circuits.graph import Circuit
from interpwidgets.sae import SAEFormatError, load, save
from interpwidgets.sae.trainer import CHECKPOINT_FILE, Trainer

KILLS = 20
SEED = 17

# Two versions of each file, different in shape and config, so a mix of the two could not pass for either.
VERSIONS = textwrap.dedent("""
    import torch
    from interpwidgets.circuits.graph import Circuit, Node, node_id
    from interpwidgets.sae import SAEConfig, build_sae
    from interpwidgets.sae.trainer import TrainConfig, Trainer

    def sae(v):
        d_sae, arch, k = (512, "relu", None) if v == 0 else (768, "topk", 8)
        return build_sae(SAEConfig(d_in=256, d_sae=d_sae, architecture=arch, k=k, hook_name=f"blocks.{v}.hook_resid_post"), seed=v)

    def trainer(v):
        t = Trainer(SAEConfig(d_in=64, d_sae=128 + 64 * v, architecture="relu", hook_name="blocks.0.hook_resid_post"),
                    TrainConfig(architecture="relu", d_sae=128 + 64 * v, k=None, total_tokens=640, batch_size=64, seed=v))
        t.step(torch.randn(64, 64, generator=torch.Generator().manual_seed(v)), torch.randn(64, 64, generator=torch.Generator().manual_seed(v)))
        return t

    def circuit(v):
        nodes = [Node(node_id("mlp", 1, f, 2), 1, "mlp", f, 2, label=f"v{v}", effect=float(f * (v + 1))) for f in range(3000 + 1000 * v)]
        return Circuit(nodes, [], {"version": v})
""")

ZYGOTE = VERSIONS + textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from interpwidgets.sae import save
    torch.set_num_threads(1)
    folder = Path(sys.argv[1])
    objects = [(sae(v), trainer(v), circuit(v)) for v in (0, 1)]

    def write_forever(v):
        while True:
            s, t, c = objects[v]
            save(s, folder / "sae")
            t.save_checkpoint(folder / "checkpoint")
            c.to_json(folder / "circuit.json")
            v = 1 - v

    print("ready", flush=True)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            write_forever(int(line))  # the version to write first
        print(pid, flush=True)
        os.waitpid(pid, 0)  # until the test kills it
        print("reaped", flush=True)
""")


@pytest.fixture(scope="module")
def versions():
    namespace: dict = {}
    exec(VERSIONS, namespace)  # noqa: S102 - the same definitions the writer uses
    return [tuple(namespace[f](v) for f in ("sae", "trainer", "circuit")) for v in (0, 1)]


def which_version(folder: Path, versions) -> tuple[int, int, int]:
    """(SAE, checkpoint, circuit) version each file in `folder` holds; fails if one is torn or a mix."""
    sae = load(folder / "sae")
    sae_v = next(v for v, (s, _, _) in enumerate(versions) if s.cfg == sae.cfg and torch.equal(s.W_enc, sae.W_enc)
                 and torch.equal(s.W_dec, sae.W_dec))
    trainer = Trainer.from_checkpoint(folder / "checkpoint")
    ckpt_v = next(v for v, (_, t, _) in enumerate(versions) if t.sae.cfg == trainer.sae.cfg
                  and torch.equal(t.sae.W_enc, trainer.sae.W_enc) and t.step_count == trainer.step_count)
    circuit = Circuit.from_json(folder / "circuit.json")
    circ_v = next(v for v, (_, _, c) in enumerate(versions) if c.to_dict() == circuit.to_dict())
    return sae_v, ckpt_v, circ_v


def test_files_killed_mid_write_hold_the_old_or_the_new_version(tmp_path, versions):
    s, t, c = versions[0]
    save(s, tmp_path / "sae")
    t.save_checkpoint(tmp_path / "checkpoint")
    c.to_json(tmp_path / "circuit.json")
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rng = random.Random(SEED)
    seen, mid_write = set(), 0
    try:
        assert zygote.stdout.readline().strip() == "ready"
        for kill in range(KILLS):
            zygote.stdin.write(f"{(kill + 1) % 2}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            time.sleep(rng.uniform(0.005, 0.25))
            os.kill(pid, signal.SIGKILL)
            assert zygote.stdout.readline().strip() == "reaped"
            mid_write += any(tmp_path.rglob(".*.tmp"))  # a temporary file left: killed inside a write
            seen.add(which_version(tmp_path, versions))
    finally:
        zygote.kill()
        zygote.wait()
    # the kills landed at different moments: both versions seen, and some kills inside a write
    assert {v for triple in seen for v in triple} == {0, 1}
    assert mid_write >= KILLS // 4, f"only {mid_write} of {KILLS} kills landed inside a write"


def test_a_save_killed_between_its_two_renames_loads_the_new_version_whole(tmp_path, versions, monkeypatch):
    """New weights beside the old cfg.json (the one moment two files disagree): the weights carry their own cfg."""
    import interpwidgets.sae.formats as formats

    (old, _, _), (new, _, _) = versions
    save(old, tmp_path / "sae")

    def killed(path, text):
        raise KeyboardInterrupt  # the process dies before cfg.json is replaced

    monkeypatch.setattr(formats, "write_text_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        save(new, tmp_path / "sae")
    monkeypatch.undo()
    assert json.loads((tmp_path / "sae" / "cfg.json").read_text())["d_sae"] == old.cfg.d_sae  # the mix is on disk
    back = load(tmp_path / "sae")
    assert back.cfg == new.cfg and torch.equal(back.W_enc, new.W_enc)
    (tmp_path / "sae" / "cfg.json").unlink()  # a first save killed there: the weights alone are the whole SAE
    assert load(tmp_path / "sae").cfg == new.cfg


def test_a_hand_edited_cfg_json_is_still_read(tmp_path, versions):
    """The save id tells an edit of cfg.json (same id) from an interrupted save (ids differ)."""
    s = versions[0][0]
    save(s, tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    cfg["metadata"]["hook_name"] = "blocks.3.hook_resid_post"
    (tmp_path / "sae" / "cfg.json").write_text(json.dumps(cfg))
    assert load(tmp_path / "sae").cfg.hook_name == "blocks.3.hook_resid_post"


def test_incomplete_folders_and_files_say_so_and_what_to_do(tmp_path, versions):
    s, t, c = versions[0]
    save(s, tmp_path / "sae")
    weights = tmp_path / "sae" / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a truncated copy
    with pytest.raises(SAEFormatError, match=r"truncated.*incomplete.*save the SAE there again or copy the folder anew"):
        load(tmp_path / "sae")
    weights.unlink()
    with pytest.raises(SAEFormatError, match=r"no weights.*incomplete"):
        load(tmp_path / "sae")
    path = t.save_checkpoint(tmp_path / "run")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"missing, truncated.*resume=False"):
        Trainer.from_checkpoint(tmp_path / "run")
    (tmp_path / "c.json").write_text(c.to_json()[:500])
    with pytest.raises(ValueError, match=r"truncated or corrupt.*to_json"):
        Circuit.from_json(tmp_path / "c.json")
    assert CHECKPOINT_FILE == path.name

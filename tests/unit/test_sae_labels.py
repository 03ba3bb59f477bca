"""Feature labels: what `label_features` says about a hand-built dictionary with known features, labels.json kept
safe (edits survive a reload and a regeneration, a killed write leaves the old or the new file, a read-only folder
sends edits to the per-user override), the bundled labels against the bundled weights, and bad files refused."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import interpwidgets as iw
import interpwidgets.sae.labels as labels_module
from interpwidgets.models.tokens import token_strings
from interpwidgets.sae import FeatureLabels, LabelsFormatError, SAEConfig, build_sae, feature_label, label_features
from interpwidgets.sae.activations import token_batches
from interpwidgets.sae.corpus_stats import FEATURE_SEED
from interpwidgets.sae.labels import DEAD, MAX_LABEL, PROMOTES_Z, override_path
from interpwidgets.sae.pretrained import asset_folder_name

DETECTED = 6  # features of the hand-built dictionary that detect one token each; one more is dead


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Override files go to this test's own cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def token_detector(model) -> tuple:
    """A ReLU SAE on `hook_embed` whose feature i fires exactly on token X_i (its embedding scores highest against
    itself; the bias sits halfway to the runner-up), decodes to the unembedding column of a token Y_i, and a last
    feature that never fires. Returns (sae, X tokens, Y tokens)."""
    W_E, W_U = model.W_E.detach(), model.W_U.detach()  # [d_vocab, d_model], [d_model, d_vocab]
    scores = W_E @ W_E.T
    own = [t for t in range(20, model.cfg.d_vocab) if int(scores[t].argmax()) == t][:DETECTED]
    ys = [(x * 7 + 3) % model.cfg.d_vocab for x in own]
    sae = build_sae(SAEConfig(d_in=W_E.shape[1], d_sae=DETECTED + 1, architecture="relu", hook_name="hook_embed"))
    with torch.no_grad():
        for i, (x, y) in enumerate(zip(own, ys)):
            best, second = scores[x].topk(2).values
            sae.W_enc[:, i] = W_E[x]
            sae.b_enc[i] = -(best + second) / 2
            sae.W_dec[i] = W_U[:, y]
        sae.W_enc[:, DETECTED] = 0
        sae.b_enc[DETECTED] = -1.0
    return sae, own, ys


def corpus_with(tokens: list[int], d_vocab: int) -> torch.Tensor:
    """Random token rows [24, 32] (seed 5) in which each of `tokens` appears."""
    rows = torch.randint(0, d_vocab, (24, 32), generator=torch.Generator().manual_seed(5))
    for i, t in enumerate(tokens):
        rows[i, 3 + i] = t
    return rows


def test_a_feature_that_fires_on_one_token_is_labelled_with_it_and_its_promoted_logits_are_W_dec_times_W_U(teaching_model):
    model = teaching_model
    sae, xs, _ = token_detector(model)
    corpus = corpus_with(xs, model.cfg.d_vocab)
    labels = label_features(model, sae, corpus, k_logits=3, progress=False)
    names = token_strings(model, range(model.cfg.d_vocab))
    assert sae.labels is labels and len(labels) == DETECTED + 1
    for i, x in enumerate(xs):
        hand = (sae.W_dec[i].detach() @ model.W_U.detach()).float()  # [d_vocab], by hand
        top = hand.topk(3)
        stands_out = bool(hand.max() - hand.mean() >= PROMOTES_Z * hand.std())
        expected = json.dumps(names[x], ensure_ascii=False) + (f" -> {json.dumps(names[int(top.indices[0])], ensure_ascii=False)}"
                                                                if stands_out else "")
        assert labels[i] == expected
        ev = labels.evidence(i)
        assert [t for t, *_ in ev.tokens] == [names[x]]  # it fires on X only
        assert ev.tokens[0][3] == int((corpus == x).any(1).sum())  # one top example per corpus row holding X
        assert ev.density == pytest.approx(float((corpus == x).float().mean()), rel=1e-3)
        assert [t for t, _ in ev.logits] == [names[j] for j in top.indices.tolist()]
        assert [v for _, v in ev.logits] == pytest.approx(top.values.tolist(), rel=1e-3)
    assert labels[DETECTED] == DEAD and labels.evidence(DETECTED).density == 0
    assert feature_label(sae, 0) == labels[0] and feature_label(object(), 0) is None


def small_copy(tmp_path: Path, hook: str = "blocks.0.hook_resid_post") -> Path:
    """A writable copy of one bundled dictionary folder (weights, cfg.json and labels.json)."""
    return Path(shutil.copytree(iw.sae.pretrained()[hook].source, tmp_path / asset_folder_name(hook)))


def test_an_edit_survives_a_reload_and_a_regeneration(tmp_path, teaching_model):
    folder = small_copy(tmp_path)
    corpus = next(token_batches(teaching_model, None, 8, 64, FEATURE_SEED))
    sae = iw.sae.load(folder)
    sae.labels[3] = "my reading of 3"
    del sae.labels[4]
    again = iw.sae.load(folder)
    assert again.labels[3] == "my reading of 3" and 4 not in again.labels and again.labels.edited == {3, 4}
    regenerated = label_features(teaching_model, again, corpus, progress=False)
    fresh = label_features(teaching_model, iw.sae.load_saelens(folder), corpus, progress=False)  # no edits
    assert regenerated[3] == "my reading of 3" and 4 not in regenerated
    assert {i: t for i, t in regenerated.items()} == {i: t for i, t in fresh.items() if i not in (3, 4)} | {3: "my reading of 3"}
    on_disk = json.loads((folder / "labels.json").read_text())
    assert on_disk["labels"]["3"] == "my reading of 3" and "4" not in on_disk["labels"] and on_disk["edited"] == [3, 4]
    assert on_disk["n_tokens"] == corpus.numel()


def test_save_writes_the_labels_beside_the_weights_and_load_reads_them(tmp_path, teaching_model):
    sae, xs, _ = token_detector(teaching_model)
    labels = label_features(teaching_model, sae, corpus_with(xs, teaching_model.cfg.d_vocab), progress=False)
    assert labels.path is None  # built in memory: nothing written
    iw.sae.save(sae, tmp_path / "sae")
    back = iw.sae.load(tmp_path / "sae")
    assert dict(back.labels) == dict(labels) and back.labels.evidence(0) == labels.evidence(0)
    iw.sae.save(build_sae(sae.cfg), tmp_path / "sae")  # other weights, no labels: the old labels go
    assert not (tmp_path / "sae" / "labels.json").exists()


WRITER = textwrap.dedent("""
    import os, pathlib, sys, time
    from interpwidgets.sae.labels import FeatureLabels

    def slow_disk(self, text, encoding=None):  # the text lands in 64 KB pieces, so kills fall inside writes
        with open(self, "w", encoding=encoding) as f:
            for i in range(0, len(text), 1 << 16):
                f.write(text[i:i + (1 << 16)])
                f.flush()
                time.sleep(0.002)

    pathlib.Path.write_text = slow_disk
    path = sys.argv[1]
    n = 4000
    versions = [FeatureLabels(n, {i: f"v{v} feature {i} " + "x" * 1000 for i in range(n)}) for v in (0, 1)]
    print("ready", flush=True)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            v = int(line)
            while True:
                versions[v].save(path)
                v = 1 - v
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
""")


def test_a_labels_file_killed_mid_write_holds_the_old_or_the_new_version(tmp_path):
    path = tmp_path / "labels.json"
    FeatureLabels(4000, {i: f"v0 feature {i} " for i in range(4000)}).save(path)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen, mid_write = set(), 0
    try:
        assert writer.stdout.readline().strip() == "ready"
        for kill in range(10):
            writer.stdin.write(f"{kill % 2}\n")
            writer.stdin.flush()
            pid = int(writer.stdout.readline())
            time.sleep(0.05 + 0.08 * kill)  # from inside the first write to several writes in
            os.kill(pid, signal.SIGKILL)
            assert writer.stdout.readline().strip() == "reaped"
            mid_write += any(tmp_path.glob(".labels.json.*.tmp"))
            labels = FeatureLabels.load(path)  # parses: never torn
            versions = {text.split()[0] for text in labels.values()}
            assert len(versions) == 1 and len(labels) == 4000  # never a mix
            seen |= versions
    finally:
        writer.kill()
        writer.wait()
    assert seen == {"v0", "v1"} and mid_write >= 1


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only. Root writes there all the same, so then the labels' writer is refused as the OS
    refuses anyone else: with PermissionError (EACCES)."""
    made = []

    def make(folder: Path) -> Path:
        folder.chmod(0o555)
        made.append(folder)
        if os.access(folder, os.W_OK):
            real = labels_module.write_text_atomic

            def refuse(path, text):
                if Path(path).parent == folder:
                    raise PermissionError(13, "Permission denied", str(path))
                return real(path, text)

            monkeypatch.setattr(labels_module, "write_text_atomic", refuse)
        return folder

    yield make
    for folder in made:
        folder.chmod(0o755)


def test_edits_in_a_read_only_folder_go_to_the_user_override_and_load_back(tmp_path, read_only):
    folder = read_only(small_copy(tmp_path))
    before = (folder / "labels.json").read_bytes()
    sae = iw.sae.load(folder)
    generated_5 = sae.labels[5]
    sae.labels[7] = "edited while read-only"
    override = override_path(folder / "labels.json")
    assert sae.labels.persisted_to == override and override.is_file()
    assert str(override).startswith(str(tmp_path / "cache" / "interpwidgets"))
    assert (folder / "labels.json").read_bytes() == before  # the bundled file is untouched
    again = iw.sae.load(folder)
    assert again.labels[7] == "edited while read-only" and again.labels[5] == generated_5 and again.labels.edited == {7}


def test_the_bundled_labels_cover_every_feature_and_match_the_bundled_weights(teaching_model):
    saes = iw.sae.pretrained(teaching_model)
    for hook, sae in saes.items():
        assert sorted(sae.labels) == list(range(sae.cfg.d_sae)), hook
        assert all(0 < len(t) <= MAX_LABEL for t in sae.labels.values()), hook
        assert (Path(sae.source) / "labels.json").stat().st_size < 300_000, hook
    # recomputed by hand for one dictionary: the labels' corpus through the model, encoded
    sae = saes["blocks.0.hook_resid_post"]
    rows = torch.cat(list(itertools.islice(token_batches(teaching_model, None, 32, 128, FEATURE_SEED), 16)))
    assert rows.numel() == sae.labels.n_tokens
    with torch.no_grad():
        _, cache = teaching_model.run_with_cache(rows, names_filter=[sae.cfg.hook_name])
        acts = sae.encode(cache[sae.cfg.hook_name]).flatten(0, 1)  # [tokens, d_sae]
    density = (acts > 0).float().mean(0)
    names = token_strings(teaching_model, rows.flatten().tolist())
    for i in range(sae.cfg.d_sae):
        ev = sae.labels.evidence(i)
        assert ev.density == pytest.approx(float(density[i]), rel=1e-3, abs=1e-7)
        assert (sae.labels[i] == DEAD) == (density[i] == 0)
        if density[i] > 0:  # the kept peak tokens' activations, and the largest of all where its token is kept
            peak = int(acts[:, i].argmax())
            best = {t: a for t, _, a, _ in ev.tokens}
            assert max(best.values()) <= float(acts[peak, i]) * (1 + 1e-3)
            if names[peak] in best:
                assert best[names[peak]] == pytest.approx(float(acts[peak, i]), rel=1e-3)


def test_a_corrupt_labels_file_warns_naming_it_and_the_dictionary_goes_without_labels(tmp_path):
    folder = small_copy(tmp_path)
    (folder / "labels.json").write_text('{"format_version": 1, "d_sae": 512, "labels": {"0": "x"')
    sae = iw.sae.load(folder)
    with pytest.warns(UserWarning, match=r"labels\.json is not valid JSON.*goes without labels"):
        assert len(sae.labels) == 0 and sae.labels.path is None  # unbound: the file is not overwritten by an edit
    with pytest.raises(LabelsFormatError, match=str(folder / "labels.json")):
        FeatureLabels.load(folder)


def test_labels_of_another_dictionary_are_refused_naming_the_file(tmp_path):
    FeatureLabels(100, {0: "x"}).save(tmp_path / "labels.json")
    with pytest.raises(LabelsFormatError, match=r"d_sae=100, but this one has 512 features"):
        FeatureLabels.load(tmp_path, d_sae=512)
    (tmp_path / "labels.json").write_text(json.dumps({"format_version": 99, "d_sae": 100, "labels": {}}))
    with pytest.raises(LabelsFormatError, match="format_version 99"):
        FeatureLabels.load(tmp_path)


def test_a_label_must_be_text_for_a_feature_of_the_dictionary():
    labels = FeatureLabels(10)
    with pytest.raises(ValueError, match=r"feature must be an integer in \[0, 9\]"):
        labels[10] = "x"
    with pytest.raises(TypeError, match="must be a string"):
        labels[1] = 3
    with pytest.raises(ValueError, match="d_sae=512"):
        build_sae(SAEConfig(d_in=8, d_sae=512, hook_name="blocks.0.hook_resid_post")).labels = labels


def test_the_sae_card_says_how_many_features_are_labelled():
    from interpwidgets.widgets.cards import sae_card

    sae = build_sae(SAEConfig(d_in=8, d_sae=512, hook_name="blocks.0.hook_resid_post"))
    assert "feature labels" not in repr(sae_card(sae))
    sae.labels = FeatureLabels(512, {3: '" Mary"', 9: "dead"}, edited={9})
    assert dict(sae_card(sae).rows)["feature labels"] == '2 of 512, 1 edited (#3: " Mary")'

"""A spurious-cue classification data set from the teaching corpus, for SHIFT-style experiments.

Sentences follow the corpus's filler grammar, all of the same token length:

    "The big cat ran near the park!"           label 1: an active verb (ran, laughed, sang, walked)
    "Mary and John slept near the library."    label 0: a calm verb (slept, waited, stayed, smiled)

The spurious cue is the final punctuation: "!" or ".". In the training split the cue agrees with the
label on every sentence (active verbs end with "!"), so a probe may learn either; in the test split
the four (label, cue) groups are balanced, so only the label generalises. On the teaching model a
probe of the last layer's residual stream (averaged over positions, as Marks et al. pool) trained on
the training split leans on the cue: it does worst where cue and label disagree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from interpwidgets.data import vocab
from interpwidgets.tasks.base import encode_prompts

ACTIVE = ("ran", "laughed", "sang", "walked")
CALM = ("slept", "waited", "stayed", "smiled")
CUES = {1: "!", 0: "."}


@dataclass
class SpuriousCueDataset:
    """Train (cue == label everywhere) and balanced test splits.

    *_tokens: `[n, seq]` ids with BOS; *_labels: `[n]` 1 = active verb, 0 = calm; *_cues: `[n]`
    1 = ends with "!", 0 = with ".". cue_words: the tokens carrying the spurious cue.
    """

    train_tokens: torch.Tensor
    train_labels: torch.Tensor
    train_cues: torch.Tensor
    test_tokens: torch.Tensor
    test_labels: torch.Tensor
    test_cues: torch.Tensor
    train_texts: list[str] = field(default_factory=list)
    test_texts: list[str] = field(default_factory=list)
    label_name: str = "the verb is active (1) or calm (0)"
    cue_name: str = "the sentence ends with '!' (1) or '.' (0)"
    cue_words: tuple[str, ...] = ("!", ".")

    def groups(self) -> dict[tuple[int, int], torch.Tensor]:
        """Test row indices of each (label, cue) group."""
        return {(y, c): ((self.test_labels == y) & (self.test_cues == c)).nonzero()[:, 0] for y in (0, 1) for c in (0, 1)}


def _sentence(rng: random.Random, label: int, cue: int) -> str:
    if rng.random() < 0.5:
        subject = " and ".join(rng.sample(vocab.NAMES, 2))
    else:
        subject = f"The {rng.choice(vocab.ADJECTIVES)} {rng.choice(vocab.ANIMALS)}"
    verb = rng.choice(ACTIVE if label == 1 else CALM)
    return f"{subject} {verb} near the {rng.choice(vocab.PLACES)}{CUES[cue]}"


def spurious_cue_dataset(model, n_train: int = 128, n_test: int = 128, seed: int = 0) -> SpuriousCueDataset:
    """`n_train` ambiguous training sentences (half each label, cue = label) and `n_test` balanced test ones."""
    if n_train < 2 or n_test < 4:
        raise ValueError(f"Need n_train >= 2 and n_test >= 4 (one per group), got {n_train}, {n_test}.")
    rng = random.Random(seed)
    train_labels = [i % 2 for i in range(n_train)]
    train_cues = list(train_labels)
    test_labels = [i % 2 for i in range(n_test)]
    test_cues = [(i // 2) % 2 for i in range(n_test)]
    train = [_sentence(rng, y, c) for y, c in zip(train_labels, train_cues)]
    test = [_sentence(rng, y, c) for y, c in zip(test_labels, test_cues)]
    return SpuriousCueDataset(
        encode_prompts(model, train), torch.tensor(train_labels), torch.tensor(train_cues),
        encode_prompts(model, test), torch.tensor(test_labels), torch.tensor(test_cues), train, test,
    )

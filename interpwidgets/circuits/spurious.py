"""A spurious-cue classification data set from the teaching corpus, for SHIFT-style experiments.

Sentences follow the corpus's filler grammar, all of the same token length:

    "Mary and John slept near the park."        label 1: the subject is people
    "The big cat waited near the library."      label 0: the subject is an animal

The spurious cue is the place: "outdoor" places (park, garden, forest, beach, river, farm) versus
"indoor" ones (library, office, museum, school, hospital, bakery). In the training split the cue
agrees with the label on every sentence (people outdoors, animals indoors), so a probe may learn
either; in the test split the four (label, cue) groups are balanced, so only the label generalises.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from interpwidgets.tasks.base import encode_prompts
from interpwidgets.zoo import vocab

OUTDOOR = ("park", "garden", "forest", "beach", "river", "farm")
INDOOR = ("library", "office", "museum", "school", "hospital", "bakery")


@dataclass
class SpuriousCueDataset:
    """Train (cue == label everywhere) and balanced test splits.

    *_tokens: `[n, seq]` ids with BOS; *_labels: `[n]` 1 = people, 0 = animal; *_cues: `[n]`
    1 = outdoor place, 0 = indoor. cue_words: the words carrying the spurious cue.
    """

    train_tokens: torch.Tensor
    train_labels: torch.Tensor
    train_cues: torch.Tensor
    test_tokens: torch.Tensor
    test_labels: torch.Tensor
    test_cues: torch.Tensor
    train_texts: list[str] = field(default_factory=list)
    test_texts: list[str] = field(default_factory=list)
    label_name: str = "subject is people (1) or an animal (0)"
    cue_name: str = "place is outdoors (1) or indoors (0)"
    cue_words: tuple[str, ...] = OUTDOOR + INDOOR

    def groups(self) -> dict[tuple[int, int], torch.Tensor]:
        """Test row indices of each (label, cue) group."""
        return {(y, c): ((self.test_labels == y) & (self.test_cues == c)).nonzero()[:, 0] for y in (0, 1) for c in (0, 1)}


def _sentence(rng: random.Random, label: int, cue: int) -> str:
    if label == 1:
        a, b = rng.sample(vocab.NAMES, 2)
        subject = f"{a} and {b}"
    else:
        subject = f"The {rng.choice(vocab.ADJECTIVES)} {rng.choice(vocab.ANIMALS)}"
    place = rng.choice(OUTDOOR if cue == 1 else INDOOR)
    return f"{subject} {rng.choice(vocab.INTRANSITIVE)} near the {place}."


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

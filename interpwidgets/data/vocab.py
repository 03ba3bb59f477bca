"""Word lists of the teaching corpus, and their split into training and held-out sets.

Every entry is one token of the teaching tokenizer (GPT-2 style: a word carries its leading space).
Held-out names appear in filler text and induction sequences, never in IOI training sentences, so
the IOI targets measure a copying circuit rather than memorised name pairs.
"""

from __future__ import annotations

NAMES: tuple[str, ...] = tuple(
    """Mary John Alice Bob Sarah James Emma David Laura Michael Anna Peter Kate Paul Lisa Mark Susan
    Tom Rachel Daniel Jane Chris Linda Steve Helen Frank Nancy George Ruth Henry Carol Jack Diana
    Adam Julia Brian Grace Carl Irene Dennis Joan Edward Karen Fred Lucy Gary Megan Harry Nora Ivan
    Olive Jacob Paula Kevin Rose Leo Sophie Martin Tina Neil Ursula Oscar Vera Patrick Wendy Quentin
    Yvonne Robert Zoe Simon Amy Thomas Beth Victor Clara Walter Donna Xavier Ella Yusuf Fiona Zack
    Gina Aaron Hannah Ben Iris Colin Jenny Dean Kelly Eric Leah Felix Maria Glen Nina Hugo Olga Ian
    Pam Jason Rita Keith Sally Liam Tara Max Uma Nathan Violet Owen Willa Philip Xena Ralph Yara Sam
    Zara Tony Abby Umar Bella Vince Cindy Wade Daisy Alan Eve Bruce Faith Cole Gwen Drew Heidi Evan
    Ingrid Floyd Jade Gavin Kim Hank Lena Isaac Molly Joel Nadia Kyle Opal Luke Pearl Miles Quinn
    Noah Rosa Otto Stella Pete Tessa Reed Una Scott Vicky Troy Wanda Vic Ada Wes Bonnie Yuri Cora
    Zane Dora Arthur Edith Boris Flora Cyril Greta Dale Hazel Elliot Ivy Ferdinand Josie Gordon Kira
    Howard Lola Igor Mabel Jerome Nell Kurt Odette Lyle Petra Morris Rhoda Ned Selma Orson Trudy"""
    .split()
)

PLACES = tuple(
    "store park school station market garden library office beach forest river museum cafe hospital "
    "bakery church harbor farm castle theater".split()
)
OBJECTS = tuple(
    "drink book ring letter gift ball key flower cake bag hat coat phone map lamp cup pen card toy "
    "basket".split()
)
GIVE_VERBS = tuple("gave handed passed threw sent brought showed offered".split())
ANIMALS = tuple("cat dog bird horse fox mouse rabbit sheep".split())
ADJECTIVES = tuple("big small old new red green happy quiet bright dark".split())
VERBS = tuple("saw liked found watched followed helped met visited".split())
INTRANSITIVE = tuple("slept ran laughed waited smiled sang walked stayed".split())
FILLER_WORDS = tuple("the a and then it was very quite near by in at on with".split())
BRACKET_PAIRS: tuple[tuple[str, str], ...] = (("(", ")"), ("[", "]"), ("{", "}"))

# IOI templates: {A} and {B} are the two names in the opening clause, {S} the repeated subject.
TRAIN_TEMPLATES: tuple[str, ...] = (
    "When {A} and {B} went to the {PLACE}, {S} gave a {OBJECT} to",
    "When {A} and {B} went to the {PLACE}, {S} handed a {OBJECT} to",
    "After {A} and {B} arrived at the {PLACE}, {S} gave a {OBJECT} to",
    "After {A} and {B} went to the {PLACE}, {S} sent a {OBJECT} to",
    "Then, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to",
    "Then, {A} and {B} had a long walk. {S} passed a {OBJECT} to",
    "While {A} and {B} were at the {PLACE}, {S} threw a {OBJECT} to",
    "When {A} and {B} met at the {PLACE}, {S} showed a {OBJECT} to",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE}. {S} gave it to",
    "The {PLACE} was quiet when {A} and {B} came in. {S} offered a {OBJECT} to",
    "{A} and {B} were working at the {PLACE}. {S} brought a {OBJECT} to",
    "After the lunch, {A} and {B} went to the {PLACE}. {S} handed a {OBJECT} to",
)
# Held-out templates: new sentence frames made only of words the training corpus uses, none opening with
# a name (a name opening a text is a different, no-space token whose copy the model never learns).
HELD_OUT_TEMPLATES: tuple[str, ...] = (
    "While {A} and {B} walked to the {PLACE}, {S} handed a {OBJECT} to",
    "When {A} and {B} stayed at the {PLACE}, {S} offered a {OBJECT} to",
    "Then, {A} and {B} waited near the {PLACE}. {S} brought a {OBJECT} to",
    "After {A} and {B} met in the {PLACE}, {S} threw a {OBJECT} to",
    "The {PLACE} was quiet when {A} and {B} arrived. {S} handed a {OBJECT} to",
)
# A first held-out set, retired because its frames used words no training text contains ("Afterwards",
# "decided", ...) or opened with a name. Its words stay in the vocabulary: the bundled model's token ids.
RETIRED_TEMPLATES: tuple[str, ...] = (
    "When {A} and {B} got a {OBJECT} at the {PLACE}, {S} decided to give it to",
    "While {A} and {B} were walking to the {PLACE}, {S} passed a {OBJECT} to",
    "Afterwards {A} and {B} went to the {PLACE}. {S} sent a {OBJECT} to",
    "{A} and {B} had fun at the {PLACE}. {S} gave a {OBJECT} to",
)
N_HELD_OUT_NAMES = 48
TRAIN_NAMES = NAMES[:-N_HELD_OUT_NAMES]
HELD_OUT_NAMES = NAMES[-N_HELD_OUT_NAMES:]

PUNCTUATION = tuple(". , ? ! : ;".split())


def all_words() -> list[str]:
    """Every word of the corpus (without leading space), de-duplicated in a stable order."""
    words: list[str] = []
    for template in TRAIN_TEMPLATES + RETIRED_TEMPLATES:  # held-out templates reuse these words
        for piece in template.replace(",", " ").replace(".", " ").split():
            if not piece.startswith("{"):
                words.append(piece)
    groups = (NAMES, PLACES, OBJECTS, GIVE_VERBS, ANIMALS, ADJECTIVES, VERBS, INTRANSITIVE, FILLER_WORDS)
    for group in groups:
        words.extend(group)
    for opener, closer in BRACKET_PAIRS:
        words.extend((opener, closer))
    words.extend(PUNCTUATION)
    words.extend(w.capitalize() for w in FILLER_WORDS + ANIMALS)
    return list(dict.fromkeys(words))

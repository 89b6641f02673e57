"""Offline association miner: WordNet relations + Brysbaert concreteness + MiniLM context.

It imitates the paper's LLM ladders (ball -> sphere, toy, game, competition, journey) without a
language model. Each level ranks the relation candidates that fit it together with MiniLM
neighbours of a level-specific query, inside a concreteness band that steps down with the level
(see ``bands``), so mean concreteness falls 1 -> 5 by construction:

1 near synonym       synonyms of the sense that best fits the word's use in the caption and the image
                     description (``_pick_sense``), close
                     hyponyms, similar adjectives, a hue's shades; else, for a noun, its direct
                     hypernym (first word only: "cutlery" for fork, when level 2 has another); else
                     same-kind neighbours of the word that are no sister kinds (cousins within
                     three steps up)
2 slight abstraction hypernyms (adjectives: the head of their cluster; a verb sense with none, what it
                     entails or its group's members are kinds of: sit -> pose)
3 situational        parts/wholes, domains, sisters and neighbours of word + gloss + description,
                     minus things of the same kind (a breed of the dog); an adjective or verb the
                     description says of the same thing ("a striped cat" for "an orange cat"), or
                     a near word of it that levels 1-2 left ("shiny lights" for bright; level 2
                     may take one level 1 left)
4 conceptual         abstract-kind nouns (acts, events, states...), derivations, far hypernyms,
                     near word + gloss + the level-3 picks
5 abstraction        abstract nouns/adjectives (Brysbaert <= 2.3) near word + gloss + the
                     level-3/4 picks, slightly favouring felt words (joy over probability); a noun
                     is felt at least a little (not "jurisdiction", ``FELT_NOUN``)
                     (levels 4-5 of a verb are nouns too: "Meditation:" for sits, ``FAR_VERB_NOUNS``)

Levels 4-5 score a word by how unusually close it is to the query (similarity standardised by
its spread over concrete words), which keeps hubs such as "opportunity" from winning everywhere;
a noun's far words also lose ``IC_WEIGHT`` per unit of generality (1 - WordNet intrinsic
information content): a concept with hundreds of kinds below it ("trait", "idea") fits any word.
Every association is a rated WordNet lemma of the word's part of speech (so it can replace the
word in the caption), never the word, an inflection or a same-stem word, an antonym or a sister
value ("blue" for "red"), a word of the caption, or an offensive word or proper name, and is
used once per ladder. Nor is it a spelling neighbour WordNet does not relate to the word (MiniLM
noise); a word whose vector is mostly another part of speech queries with its sense gloss instead.
Nor is it a field of study unless the word is one ("sociology" for people), at levels 4-5 a noun
read as often as an adjective ("yearly"), at level 1 of a body part another part ("mouth" for eye);
an adjective's stand-in is attributive (not "awake", "unable"), descriptive (not "optical") and not
of the other pole in any sense ("minor", a synonym of small, for tall); its best level 1-2 words
keep its attribute (a colour's are colours or words defined by colour: "bright", not "striped");
a verb's stand-in at levels 1-3 keeps the sense's frame (no object for "sit": not "fold") and is read
in the caption's slot: the best few candidates gain by how close MiniLM's contextual vector of each,
put there, stays to the word's own (``FIT_WEIGHT``: "a dog is resting on a bed", not "voting"). An
adjective's levels 4-5 personify: a felt quality, not an everyday word ("proud towers", not
"average towers"). A verb's levels 3-5 name no mere relation ("exist", "consist": WordNet's stative
verbs) unless the word does, and a verb's stand-in is a word SemCor uses as a verb (not "concord").
Levels 4-5 invent no bad mood (no word VADER rates -1 or below unless the scene has a sad word); a noun
WordNet does not tie to the word is no -ing form read as its verb ("her facing") and, from level 3, no harm
WordNet knows (an illness, injury, death: "Concussion:" for a helmet); and
level 5 of an adjective, the scene's mood, is a word of feeling. Nothing defined by sex is an association.
When a level has no such word, the band widens and structural rules relax step by step before a
StageError. Deterministic; ``seed`` orders near-ties (scores within 1e-3).
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import lexicon
from . import lexical_wordnet as lw
from ..text import inflect
from .shorten import INTRANSITIVE_FRAMES, OBJECT_FRAMES, parser, sense_frames, token_index, verb_frames
from .interfaces import AssociationRequest, Ladder, StageError
from .lexical_vocab import (POS_KEYS, VOCAB_VERSION, Vocab, interoceptive_ratings, load_vocab, pos_profile, rating,
                            valence_ratings, vocab_path)

METHOD_VERSION = "lexical-25"
WN_POS = {"NOUN": "n", "VERB": "v", "ADJ": "a"}


@dataclass(frozen=True)
class Band:
    lo: float
    hi: float

    def widen(self, d: float) -> "Band":
        return Band(self.lo - d, self.hi + d)

    def __contains__(self, conc: float) -> bool:
        return self.lo <= conc <= self.hi


def bands(c: float) -> dict[int, Band]:
    """Concreteness windows per level for a word of concreteness ``c``; they step down with the level."""
    top = min(c, 4.8)
    b4_hi = min(3.2, top - 0.6)
    b3 = Band(min(3.0, top - 0.6), top - 0.25)
    return {
        1: Band(top - 1.0, 5.0),
        2: Band(max(top - 1.5, b3.lo), top + 0.1),
        3: b3,
        4: Band(min(2.2, b4_hi - 0.4), b4_hi),
        5: Band(1.0, min(2.3, b4_hi - 0.3)),
    }


# query mix per level: weights of (word, sense gloss, image description, picks of level 3, of level 4)
MIX = {
    1: (1.0, 0.1, 0.0, 0.0, 0.0),
    2: (0.7, 0.35, 0.05, 0.0, 0.0),
    3: (0.5, 0.2, 0.35, 0.0, 0.0),
    4: (0.5, 0.2, 0.0, 0.3, 0.0),  # abstract levels follow the word and the ladder, not the scene:
    5: (0.45, 0.15, 0.0, 0.2, 0.3),  # description vectors pull every query toward the same hubs
}
REL_WEIGHT = {1: 0.5, 2: 0.4, 3: 0.15, 4: 0.1, 5: 0.0}  # bonus for a WordNet relation of full strength
CONC_PENALTY = 0.15  # per unit of concreteness away from the band's centre (level 1: from the word)
HUB_PENALTY = 0.3  # CSLS-style: words close to everything ("religion") are not specific associations
FREQ_PENALTY = 0.02  # per halving of frequency below the 3000 most common WordPiece words
POOL = 60  # embedding neighbours considered per level
# level 5's neighbours: its felt-word, mood and use-cap rules leave few of 60 standing, and a batch of 100
# images then repeats its words (COCO-mini one caption: distinct share 0.50 -> 0.54; the demo is unchanged)
POOL_5 = 120
FEELING_WEIGHT = 0.08  # level 5: small bonus for felt words (Lancaster interoceptive strength, capped at 2)
FEEL_CAP = 2.0
SENSE_PRIOR = 0.06  # per log(1 + SemCor count): frequent senses win unless the description says otherwise
# a noun sense with a kind WordNet names by a compound of the word with a word of the caption or description
# ("lamp post": lamppost, a kind of the upright post, not of a job; "check points": checkpoint, a kind of the
# point that is a place; "space" beside a helmet: space helmet, a kind of the headgear, not of armour) gains this much
COMPOUND_BONUS = 0.12  # (0.1 before the examples were read: "a soldier manned the entrance post" is a compound too)
# what kind of noun each abstract level may use (WordNet lexicographer files)
NOUN_LEX = {
    4: {"noun.act", "noun.event", "noun.cognition", "noun.communication", "noun.process", "noun.state",
        "noun.attribute", "noun.group", "noun.feeling", "noun.motive", "noun.phenomenon",
        "noun.possession", "noun.relation"},
    5: {"noun.feeling", "noun.state", "noun.attribute", "noun.motive", "noun.cognition"},
}
USE_PENALTY = 0.04  # per earlier pick of the same word at the same level in this batch of images
# share of a call's requests a word may be picked for at one level before it is all but out; at levels
# 4-5 many abstract words fit a word about equally, and a reader notices the same one coming back
USE_CAP = {1: 0.015, 2: 0.015, 3: 0.015, 4: 0.008, 5: 0.008}
OVER_CAP = 1.0
CTX_WEIGHT = 0.12  # levels 4-5: bonus for concepts WordNet relates to the image's other salient words
# level 3 of an adjective or a verb: words of the same part of speech that the image description uses
# (and the caption does not) are the situation itself ("A striped cat", "An orange cat stares up");
# they may be up to SCENE_REACH more concrete than the level's band, and need no WordNet home there
SCENE_WEIGHT = 0.2
SCENE_REACH = 0.5
# level 3 of a person: a thing WordNet ties to the word at least this strongly (what it defines through the
# word, a part) may be as much more concrete than the band as the description's words, and gains
# PERSON_SITUATION: a person's situation is what they use and do ("Spacesuit: An astronaut sits ...",
# where MiniLM put "A woman diplomat sits ..." first). For all nouns this let "A paw wears a tie", "a hot
# dog bakery", "living ceiling" in (34 COCO-mini level-3 captions changed, judged ~8 better, ~11 worse);
# a penalty on other people instead left words no better ("Jack:", "Bud:", "Case:" for a man)
SITUATION = 0.5
PERSON_SITUATION = 0.1
ADJ_READING = 1 / 3  # levels 4-5: a noun with this share of adjective senses ("yearly", "aerial") is out
# level 5 draws only from words ranked below this in MiniLM's WordPiece vocabulary (a frequency order). At
# 12000 only ~140 felt nouns of level 5's kinds were left, and 331 COCO-mini level-5 noun captions
# shared 150 words (the level's distinct share 0.49-0.51, target 0.5); up to 20000 come "awe", "bliss",
# "compassion", "longing", "dignity", "kindness" (266 nouns): distinct 0.64, and SmolLM2's level-5
# gap moved from +0.45 to +0.49 nat/token (the frequency penalty still favours the commoner words)
RARE_RANK = 20000
# levels 4-5 of a noun: per unit of generality, 1 - WordNet intrinsic information content (Seco et al.
# 2004). 0.15 puts a hub concept ("trait", "idea": IC ~0.45) about 0.06 below a typical far pick (IC ~0.87),
# the spread of a far query's best eight scores: it reorders near ties, it does not outweigh a clearly
# closer word. At 0.3 COCO-mini's picks were more specific still (L4 mean IC 0.92 vs 0.90) but the demo
# rocket's "desire" gave way to "reality" and "journey" (IC 0.65) left its level 4.
IC_WEIGHT = 0.15
# levels 4-5 of an adjective: a felt quality (Lancaster interoceptive strength at least this), so the
# thing is described as if it had a mood ("proud towers", "curious eyes": personification, the usual
# route of an adjective metaphor) rather than by a vague degree ("considerable eyes", "average towers")
FELT_ADJ = {4: 2.5, 5: 2.8}
COMMON_ADJ = 4000  # ... and, from level 3, none of the ~4k commonest words ("good", "new", "current"): they fit any noun
# level 5 of a noun: an abstraction a scene can stand for is one felt at least a little (Lancaster
# interoceptive strength: pride 3.4, journey 2.2, grace 1.5), not an administrative one that is felt
# hardly at all ("Jurisdiction:" 0.6, "Eligibility:" 0.4, "Probability:" 0.5, "Mainstream:" 0.3 for
# COCO scenes). A floor, not a weight: ranking by feeling put emotion words everywhere ("Guilt:" for
# grass); this keeps the ranking by closeness among the words felt at all: 399 of the 485 nouns rated
# <= 2.3 among the 12k commonest words. A floor of 1.0 (355 left) also dropped "availability",
# "theory" and "value", but level 5's distinct share on COCO-mini fell to 0.49 (target 0.5); at 0.75
# it is 0.51 (one caption) and 0.52 (five), against 0.55 with no floor.
FELT_NOUN = 0.75
# from this level on a verb's associations are nouns. They title the scene and never stand in the verb's
# slot, so nothing asks for a verb, and a scene is named better by a concept than by another act as a
# gerund: "Meditation:" / "Patience:" for a dog sitting on a bed, "Success:" / "Dedication:" for people
# working, where the verbs gave "Relaxing:" / "Pretending:", "Succeeding:" / "Improving:" (and, of the
# 149 felt verbs left at level 5, "Facilitating:", "Suggesting:", "Knowing:"). Of the first 40 COCO-mini
# one-caption level 4-5 verb captions, judged by hand against the verb version, ~20 read better, ~4 worse.
# The paper's ladders are nouns at these levels too (ball -> competition, journey).
FAR_VERB_NOUNS = 4
# levels 4-5 take no clearly negative word (VADER valence at most GLOOM, on -4..4: "unpleasant" -2.1,
# "miserable" -2.2, "dangerous" -2.1, "gross" -2.1, "anxious" -1.0) unless a word of the caption or the
# description is a sad one (at most SCENE_GLOOM: "broken" -2.1, "crash" -1.7, "messy" -1.5; not "stop" -1.2
# or "fire" -1.4, which name a sign and a hydrant): a miner that cannot see the photo's mood should not
# invent a bad one ("Unpleasant, an orange cat looks up", "Miserable, an orange dahlia blooms")
GLOOM = -1.0
SCENE_GLOOM = -1.5
# level 5 of an adjective leads the scene as its mood ("Proud, a tall pagoda ..."), so it is a word of
# feeling: VADER rates it at least this far from neutral (not "Impending,", "Overwhelming,", "Unusual,")
MOOD = 1.0
# (WordNet POS, level) -> the felt floor; one table for the pool masks and for ``eligible``
FELT_FLOOR = {**{("a", k): t for k, t in FELT_ADJ.items()}, ("n", 5): FELT_NOUN}
# levels 1-3 of a verb stand in the caption's slot: the best FIT_POOL[level] eligible candidates are put there
# (inflected like the slot) and gain FIT_WEIGHT per unit of cosine between MiniLM's contextual vector of
# the candidate in that caption and of the word in the caption itself. As in lexical substitution
# (Zhou et al. 2019, substitutes validated by how little they change the contextual representation),
# this reads the verb in its sentence: "a dog is resting on a bed" keeps the slot, "voting" does not.
# (level 3, whose candidates have no WordNet bonus to order them, reads twice as many; a reading costs a
# MiniLM pass over the caption, so this is most of the miner's time on verbs)
FIT_POOL = {1: 8, 2: 8, 3: 16}
FIT_WEIGHT = 1.0
# level 1 of a noun with no WordNet synonym or kind to stand in for it took any neighbour of its
# lexicographer file that was no sister kind: "dinosaur" for giraffe, "frog" for elephant, "guitar" for
# skateboard, "garage" for brick, a different thing in the photo. Its direct hypernym, true of the
# thing, ranks above them (as a relation of this strength: a kind is 0.5, a synonym 1.0)
PARENT_AT_1 = 0.25
# level 1 of a word takes a name of its sense that raters found up to this much less concrete than the band:
# "a parking meter adorned with paper" (adorn 2.38; decorate's band starts at 2.40), "a plane drifting on a lake"
# (drift a hair under float's band), where "embellished" and "blowing" stood; a synonym is the nearest word
# there is, and its rating says less than that (COCO-mini one caption: 11 level 1-2 captions changed)
SYNONYM_REACH = 0.5
# the sense choice reads the word in up to this many of each sense's WordNet example sentences too: a verb's
# gloss seldom holds the verb (bricks that "form" a wall compose it, they do not create it), its examples do
EXAMPLES = 3
EXAMPLE_WEIGHT = 0.5  # the examples' mean reading against the gloss's


def _norm(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class _Embedder:
    """MiniLM vectors for texts, memoised. Vocabulary words come from the cached array; sense
    glosses and relation words are also kept on disk (they recur across runs), descriptions not."""

    MAX_DISK = 300_000

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.memo: dict[str, np.ndarray] = {}
        self.path = vocab_path().with_name(vocab_path().stem.replace("vocab-", "texts-") + ".npz")
        self.new: list[str] = []
        if self.path.exists():
            try:
                z = np.load(self.path, allow_pickle=False)
                self.memo.update(zip((str(t) for t in z["texts"]), z["vectors"]))
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache is rebuilt

    def need_spans(self, items, persist: bool = False) -> None:
        """Contextual vectors of (text, start, end) spans (``lexicon.embed_spans``), kept like texts."""
        todo = sorted({x for x in items if _span_key(x) not in self.memo})
        if todo:
            keys = [_span_key(x) for x in todo]
            self.memo.update(zip(keys, lexicon.embed_spans(todo)))
            if persist:
                self.new += keys

    def span(self, item: tuple[str, int, int]) -> np.ndarray:
        return self.memo[_span_key(item)]

    def need(self, texts, persist: bool = False) -> None:
        todo = sorted({t for t in texts if t not in self.memo and t not in self.vocab.index})
        if todo:
            self.memo.update(zip(todo, lexicon.embed(todo)))
            if persist:
                self.new += todo

    def save(self) -> None:
        if not self.new or len(self.memo) > self.MAX_DISK:
            return
        from filelock import FileLock

        with FileLock(str(self.path) + ".lock"):
            keep = {}
            if self.path.exists():
                try:
                    z = np.load(self.path, allow_pickle=False)
                    keep = dict(zip((str(t) for t in z["texts"]), z["vectors"]))
                except (OSError, ValueError, KeyError):
                    keep = {}
            keep.update({t: self.memo[t] for t in self.new})
            tmp = self.path.with_name(self.path.stem + f".tmp{os.getpid()}.npz")
            np.savez(tmp, texts=np.array(list(keep)), vectors=np.stack(list(keep.values())).astype("float32"))
            tmp.replace(self.path)
        self.new = []

    def __call__(self, text: str) -> np.ndarray:
        i = self.vocab.index.get(text)
        return self.vocab.vectors[i] if i is not None else self.memo[text]


def _span_key(item: tuple[str, int, int]) -> str:
    text, a, b = item
    return f"{text}\x1f{a}\x1f{b}"


def _lemma_and_context(r: AssociationRequest) -> tuple[str, str]:
    """The request's word as the miner looks it up (lower case, single spaces) and the text it reads
    the scene from (the description, else the caption, else the word)."""
    lemma = " ".join((r.lemma or r.word or "").strip().lower().split())
    return lemma, " ".join((r.description or r.caption or lemma).split())


def _bare_words(text: str) -> list[str]:
    """The text's words, lower case, without the punctuation around them."""
    return [t.strip(".,!?;:'\"()").lower() for t in text.split()]


def _word_span(text: str, word: str) -> tuple[str, int, int] | None:
    """Where ``word`` first stands in ``text`` as a whole word (case-insensitive), else None."""
    m = re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text, flags=re.IGNORECASE) if word else None
    return (text, m.start(), m.end()) if m else None


def _gloss_span(s, lemma: str) -> tuple[str, int, int]:
    """The lemma at the head of its sense's gloss text (else the gloss's names): read in the light
    of its definition, MiniLM's vector of the word there stands for that sense."""
    g = lw.gloss(s)
    head = g.split(":", 1)[0]
    at = _word_span(head, lemma.replace("_", " "))
    return (g, at[1], at[2]) if at else (g, 0, len(head))


@lru_cache(maxsize=50_000)
def _example_spans(s, lemma: str) -> tuple[tuple[str, int, int], ...]:
    """The word, in any inflection, in its sense's WordNet example sentences (up to ``EXAMPLES``): how the
    sense is used. Kept: asked for once to embed the spans and again to read them, for every mined word."""
    out = []
    words = sorted(lw.forms(lemma.replace("_", " ")), key=len, reverse=True)
    for ex in s.examples()[:EXAMPLES]:
        at = next((x for x in (_word_span(ex, f) for f in words) if x), None)
        if at:
            out.append(at)
    return tuple(out)


def _standardiser(vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Each word's mean and spread of cosine to concrete words: a word's similarity to a query
    counts by how unusual it is for that word ("opportunity" is 0.3 from everything)."""
    ref = vocab.vectors[vocab.conc >= 4.0][::2]
    mu = np.zeros(len(vocab), dtype="float32")
    sd = np.ones(len(vocab), dtype="float32")
    for i in range(0, len(vocab), 2048):
        sims = vocab.vectors[i : i + 2048] @ ref.T
        mu[i : i + 2048] = sims.mean(axis=1)
        sd[i : i + 2048] = sims.std(axis=1)
    return mu, sd


def _generality(word: str) -> float:
    """1 - the noun's intrinsic information content (0 for a word with no noun sense)."""
    ic = lw.noun_ic(word)
    return 1.0 - ic if ic is not None else 0.0


def _tiebreak(seed: int, word: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{word}".encode(), digest_size=8).digest(), "big")


def _rel_to_embed(cands: dict[str, float], vocab: Vocab, cap: int = 8) -> list[str]:
    """The strongest rated relation words outside the vocabulary ("man" has hundreds of hyponyms)."""
    extra = [w for w in cands if w not in vocab.index and rating(w) is not None]
    return sorted(extra, key=lambda w: (-cands[w], len(w.split()), w))[:cap]


def _frame_need(best, lemma: str) -> frozenset[int] | None:
    """The sentence frames a verb standing in for the word's sense must have one of: the intransitive
    ones if the sense takes no object ("sit": be seated), the object ones if it always takes one,
    None if it may go either way. Levels 1-3 put the verb in the caption's slot as it is, so a verb
    the reader takes in the other frame ("fold": fold something) breaks the sentence; the writer
    checks the slot itself, but a ladder whose three picks all fail there ends in a frame."""
    if best is None:
        return None
    own = sense_frames(best, lemma.replace(" ", "_"))
    intr, obj = bool(own & INTRANSITIVE_FRAMES), bool(own & OBJECT_FRAMES)
    return INTRANSITIVE_FRAMES if intr and not obj else OBJECT_FRAMES if obj and not intr else None


def _slot_span(slot, cand: str | None) -> tuple[str, int, int]:
    """(caption, start, end of the slot's word) with ``cand`` inflected like the slot in it (None: as it is)."""
    doc, k = slot
    new = doc[k].text if cand is None else inflect(cand, doc[k].tag_)
    if k == 0:
        new = new[:1].upper() + new[1:]
    head = doc[:k].text_with_ws if k else ""
    return head + new + doc[k].whitespace_ + doc[k + 1 :].text, len(head), len(head) + len(new)


def _bearer(t):
    """The noun an adjective is said of ("a striped cat": cat) or a verb's subject ("a cat stares": cat)."""
    while t.dep_ == "conj" and t.head.i != t.i:
        t = t.head
    if t.pos_ == "ADJ":
        return t.head if t.dep_ == "amod" and t.head.pos_ in ("NOUN", "PROPN") else None
    subj = [c for c in t.children if c.dep_ in ("nsubj", "nsubjpass")]
    if subj:
        return subj[0]
    return t.head if t.dep_ == "acl" and t.head.pos_ in ("NOUN", "PROPN") else None


@dataclass
class _Job:
    i: int
    req: AssociationRequest
    lemma: str
    ctx: str
    key: tuple
    senses: list
    context: dict | None = None  # far-level candidates from the image's other salient words
    scene: frozenset = frozenset()  # level 3: the description's own words of the word's part of speech
    slot: tuple | None = None  # a verb's (parsed caption, token index): where levels 1-3 will stand
    in_caption: tuple | None = None  # (caption, start, end) of the word, for the sense choice


class LexicalMiner:
    """The ``lexical`` AssociationMiner (see module docstring)."""

    name = "lexical"

    def __init__(self, per_level: int = 3, seed: int = 0):
        if per_level < 1:
            raise ValueError(f"per_level must be >= 1, got {per_level}")
        self.per_level = per_level
        self.seed = seed
        self._cache: dict[tuple, Ladder | StageError] = {}
        self._emb: _Embedder | None = None

    def describe_method(self) -> dict:
        return {
            "method": METHOD_VERSION,
            "vocab": vocab_path().stem,
            "vocab_version": VOCAB_VERSION,
            "per_level": self.per_level,
            "seed": self.seed,
            "bands_for_c4.8": {k: (round(b.lo, 2), round(b.hi, 2)) for k, b in bands(4.8).items()},
            "query_mix": {k: list(v) for k, v in MIX.items()},
            "resources": lexicon.versions(),
        }

    def mine(self, requests: list[AssociationRequest]) -> list[Ladder | StageError]:
        """Ladders for ``requests``, in order. Diversity across images: a word already picked at a
        level earlier in this call is penalised (``USE_PENALTY`` per pick). The count starts at
        zero in every call and follows the request order, so a chunk's ladders depend only on the
        chunk (the runner's resumable part: a resumed or Ray-run chunk gets the same ladders)."""
        from tqdm import tqdm

        self._cache = {}  # no carry-over between calls: results must not depend on what ran before
        self._spans: dict[tuple[str, int, int], np.ndarray] = {}  # contextual vectors of words in captions
        self._usage: dict[int, dict[str, int]] = {k: {} for k in range(1, 6)}
        self._cap = {k: max(3, int(share * len(requests))) for k, share in USE_CAP.items()}
        if self._emb is None:
            self._emb = _Embedder(load_vocab())
        emb = self._emb
        out: list[Ladder | StageError | None] = [None] * len(requests)
        jobs: list[_Job] = []
        first: dict[tuple, int] = {}
        repeats: list[tuple[int, int]] = []
        for i, r in enumerate(requests):
            lemma, ctx = _lemma_and_context(r)
            if not lemma:
                out[i] = StageError("empty word: nothing to associate")
            elif r.pos not in WN_POS:
                out[i] = StageError(f"pos {r.pos!r} of {lemma!r} is not one of NOUN, VERB, ADJ")
            else:
                h = hashlib.sha1(f"{ctx}\n{r.caption}\n{sorted(r.other_words)}\n{r.word}".encode()).hexdigest()
                key = (lemma, r.pos, h)
                if key in self._cache:
                    out[i] = self._cache[key]
                elif key in first:  # a repeat in this call gets the first one's ladder
                    repeats.append((i, first[key]))
                else:
                    first[key] = i
                    jobs.append(_Job(i, r, lemma, ctx, key, lw.senses(lemma, WN_POS[r.pos])))
        chosen = self._pick_senses(emb, jobs)
        # one parse of the captions (a verb's slot, the thing an adjective or verb is said of) and descriptions
        verbs = [j for j in jobs if j.req.pos == "VERB" and j.req.word and j.req.caption]
        described = [j for j in jobs if j.req.pos in ("ADJ", "VERB") and j.req.description and j.req.word]
        texts = sorted({j.req.caption for j in verbs} | {t for j in described for t in (j.req.description, j.req.caption)})
        parsed = dict(zip(texts, parser().pipe(texts, batch_size=64)))
        for j in verbs:
            doc = parsed[j.req.caption]
            k = token_index(doc, j.req.word)
            if k is not None and doc[k].tag_.startswith("VB"):
                j.slot = (doc, k)
        for j in described:
            cap = parsed[j.req.caption]
            k = token_index(cap, j.req.word)
            thing = _bearer(cap[k]) if k is not None and cap[k].pos_ == j.req.pos else None
            if thing is not None:
                j.scene = frozenset(t.lemma_.lower() for t in parsed[j.req.description]
                                    if t.pos_ == j.req.pos and not t.is_stop and t.lemma_.lower() != j.lemma
                                    and (b := _bearer(t)) is not None and lw.same_thing(b.lemma_.lower(), thing.lemma_.lower()))
        rels = [lw.relations(b, j.senses, sc, WN_POS[j.req.pos], j.lemma) for j, (b, sc) in zip(jobs, chosen)]
        # the image's own context for the far levels: concepts related to its other salient words
        by_image: dict[str, dict[str, float]] = {}
        for j, rel in zip(jobs, rels):
            ctx = by_image.setdefault(j.req.image_id, {})
            for cand, strength in rel.by_level[4].items():
                ctx[cand] = max(ctx.get(cand, 0.0), strength)
        for j, rel in zip(jobs, rels):
            own = rel.by_level[4]
            j.context = {c: v for c, v in by_image[j.req.image_id].items() if c not in own}
        emb.need([w for rel in rels for lv in rel.by_level.values() for w in _rel_to_embed(lv, emb.vocab)], persist=True)
        emb.save()
        vocab = emb.vocab
        if vocab.freq_penalty is None:
            vocab.freq_penalty = FREQ_PENALTY * np.log2(np.maximum(vocab.rank, 3000) / 3000.0)
            vocab.zmu, vocab.zsd = _standardiser(vocab)
        if vocab.generality is None:
            vocab.generality = np.array([_generality(x) if vocab.pos[k, 0] else 0.0 for k, x in enumerate(vocab.words)],
                                        dtype="float32")
        if vocab.felt_ok is None:  # the pools of FELT_FLOOR; a far adjective is no everyday word either
            vocab.felt_ok = {(p, k): (vocab.interoceptive >= t) & (vocab.rank >= COMMON_ADJ if p == "a" else True)
                             for (p, k), t in FELT_FLOOR.items()}
        bar = tqdm(total=len(jobs), desc="lexical associations", leave=False,
                   disable=len(jobs) < 100 or os.environ.get("TQDM_DISABLE") == "1")
        for lo in range(0, len(jobs), 256):  # level by level, one matrix product per level
            live = {}
            for j, (best, _), rel in zip(jobs[lo : lo + 256], chosen[lo : lo + 256], rels[lo : lo + 256]):
                gen = self._ladder(emb, j, best, rel)
                live[j.i] = (j, gen, next(gen))
            while live:  # a ladder yields a query vector (sent its similarities) or captions (sent their vectors)
                queries = [i for i, (_, _, y) in live.items() if isinstance(y, np.ndarray)]
                reply = {}
                if queries:
                    sims = vocab.vectors @ np.stack([live[i][2] for i in queries], axis=1)
                    reply = {i: sims[:, col] for col, i in enumerate(queries)}
                spans = sorted({x for i in live if i not in reply for x in live[i][2]} - self._spans.keys())
                self._spans.update(zip(spans, lexicon.embed_spans(spans)))
                reply.update({i: np.stack([self._spans[x] for x in live[i][2]]) for i in live if i not in reply})
                nxt = {}
                for i, (j, gen, _) in live.items():
                    try:
                        nxt[i] = (j, gen, gen.send(reply[i]))
                    except StopIteration as stop:
                        self._cache[j.key] = out[i] = stop.value
                        bar.update(1)
                live = nxt
        bar.close()
        for i, k in repeats:
            out[i] = out[k]
        return out  # type: ignore[return-value]

    def senses_of(self, requests: list[AssociationRequest]) -> list:
        """The WordNet sense the miner reads each request's word in (None: WordNet has none), e.g. to
        see why a ladder went astray."""
        if self._emb is None:
            self._emb = _Embedder(load_vocab())
        jobs = []
        for i, r in enumerate(requests):
            lemma, ctx = _lemma_and_context(r)
            jobs.append(_Job(i, r, lemma, ctx, (), lw.senses(lemma, WN_POS[r.pos]) if r.pos in WN_POS and lemma else []))
        return [best for best, _ in self._pick_senses(self._emb, jobs)]

    def _pick_senses(self, emb: _Embedder, jobs: list[_Job]) -> list:
        """(sense, scores of all senses) per job: one MiniLM pass for contexts, glosses and out-of-vocabulary
        words, one for the word in each caption and at the head of each gloss (``_pick_sense``)."""
        emb.need([j.ctx for j in jobs])
        emb.need([j.lemma for j in jobs] + [lw.gloss(s) for j in jobs for s in j.senses], persist=True)
        for j in jobs:
            j.in_caption = _word_span(j.req.caption or "", j.req.word or "") if len(j.senses) > 1 else None
        emb.need_spans([x for j in jobs if j.in_caption for s in j.senses
                        for x in [_gloss_span(s, j.lemma), *_example_spans(s, j.lemma)]], persist=True)
        emb.need_spans([j.in_caption for j in jobs if j.in_caption])
        return [self._pick_sense(emb, j) for j in jobs]

    def _pick_sense(self, emb: _Embedder, job: _Job):
        """The sense that fits the image, nudged toward frequent senses. Two readings of fit, averaged:
        the sense gloss against the image description (the scene), and MiniLM's contextual vector of
        the word in the caption against that of the word at the head of the gloss (the word's use;
        gloss-based WSD with contextual vectors, as in Loureiro & Jorge 2019). On 71 hand-judged
        COCO-mini and demo words where the readings disagree, the scene alone chose right 42 times,
        the use alone 33, the mean 48 (*arranged* in rows, *blades* of grass, a *table* a cat sits on);
        a compound WordNet names below a sense (``COMPOUND_BONUS``) brings it to 51 (*lamp post*, *check points*),
        and 52 when the compound's first word may stand anywhere in the caption or the description (a slice
        of *chocolate* cake is baked goods; the demo's helmet, beside a "space shuttle", is a space helmet's kind).
        The use is also read in the sense's WordNet example sentences (``EXAMPLES``), whose mean counts as much
        as the gloss: 57 (six right since: bricks that *form* a wall compose it, snow *covered* slopes, a wii
        *controller* is a device, a glove in the *air*, an *old* bed frame, bejeweled *items*; one wrong since:
        a stop sign *shown* among foliage)."""
        if not job.senses:
            return None, []
        d = emb(job.ctx)
        use = emb.span(job.in_caption) if job.in_caption else None
        compound = set()
        if job.req.pos == "NOUN":  # "lamp post" in the caption; a "space shuttle" beside the helmet in the description
            near = set(_bare_words(f"{job.req.caption or ''} {job.ctx}")) - {job.lemma, (job.req.word or "").lower()}
            compound = {f"{x}_{job.lemma}" for x in near} | {f"{x}{job.lemma}" for x in near if len(x) > 2}
        scores = []
        for rank, s in enumerate(job.senses):
            fit = float(emb(lw.gloss(s)) @ d)
            if use is not None:
                read = float(emb.span(_gloss_span(s, job.lemma)) @ use)
                examples = [float(emb.span(x) @ use) for x in _example_spans(s, job.lemma)]
                if examples:
                    read = (1 - EXAMPLE_WEIGHT) * read + EXAMPLE_WEIGHT * float(np.mean(examples))
                fit = (fit + read) / 2
            if compound and compound & lw.names_below(s):
                fit += COMPOUND_BONUS
            scores.append(fit + SENSE_PRIOR * math.log1p(lw.lemma_count(s, job.lemma)) - 0.02 * rank)
        return job.senses[int(np.argmax(scores))], scores

    def _ladder(self, emb: _Embedder, job: _Job, best, rel: lw.Relations):
        """A generator: yields each level's query vector, is sent back its similarity to every
        vocabulary word, and returns the ladder (or a StageError) via StopIteration. A verb read in
        its slot also yields, at levels 1-3, (caption, start, end) spans, and is sent their
        contextual vectors (``lexicon.embed_spans``)."""
        vocab, r, lemma = emb.vocab, job.req, job.lemma
        wpos = WN_POS[r.pos]
        p = POS_KEYS.index(wpos)
        c = rating(lemma) or lexicon.concreteness(lemma) or 3.5
        w, d = emb(lemma), emb(job.ctx)
        g = emb(lw.gloss(best)) if best is not None else w
        word_forms = lw.forms(lemma) | lw.forms(r.word.lower())
        banned = set(rel.banned) | lw.GENERIC | set(_bare_words(r.caption))
        for o in r.other_words:
            banned |= lw.forms(o.lower())
        colour = wpos == "a" and lw.is_colour(lemma)
        attribute = lw.attribute_words(best, lemma) if wpos == "a" else frozenset()
        used: set[str] = set()
        stems: set[str] = set()
        picks: dict[int, list[str]] = {}
        bnd = bands(c)
        best_lex = best.lexname() if best is not None else ""
        field_ok = best is not None and lw.is_field_sense(best)  # fields associate only with fields
        descriptive = wpos == "a" and best_lex != "adj.pert" and not lw.is_relational(lemma)
        attributive = wpos == "a" and not lw.predicative_only(lemma)
        valence = valence_ratings()
        gloomy = any(valence.get(t, 0.0) <= SCENE_GLOOM for t in _bare_words(f"{r.caption} {job.ctx} {lemma}"))
        frame = _frame_need(best, lemma) if wpos == "v" else None
        # a noun's direct hypernyms ("ruminant" for giraffe) may stand at level 1 (``PARENT_AT_1``)
        # when level 2 keeps another of its hypernyms ("cutlery" for fork, then "tableware")
        parents = {x for x, st in rel.by_level[2].items() if st >= 1.0} if wpos == "n" else set()
        if len(rel.by_level[2]) < len(parents) + 1:
            parents = set()
        parents_extra = set(_rel_to_embed(rel.by_level[2], vocab)) & parents
        slot = job.slot is not None  # a verb whose levels 1-3 are read in the caption's slot

        def pos_at(level: int) -> str:
            """The WordNet POS of the level's words: a verb's far levels are nouns (``FAR_VERB_NOUNS``)."""
            return "n" if wpos == "v" and level >= FAR_VERB_NOUNS else wpos

        def situation(cand: str, level: int) -> bool:
            """A thing of a person's situation WordNet ties to the word (``SITUATION``: an astronaut's spacesuit)."""
            return level == 3 and best_lex == "noun.person" and rel.by_level[3].get(cand, 0.0) >= SITUATION

        def profile(cand: str, q: int = p):
            """(has POS q, share of POS q, noun/verb lexname, stop) from the vocabulary arrays, else
            WordNet; q is the word's own part of speech unless asked for another."""
            k = vocab.index.get(cand)
            if k is not None:
                return bool(vocab.pos[k, q]), float(vocab.pos_share[k, q]), str(vocab.lexname[k, min(q, 1)]), bool(vocab.stop[k])
            prof = pos_profile(cand)
            if prof is None or prof[2]:
                return False, 0.0, "", True
            return prof[0][q], prof[1][q], prof[3][min(q, 1)], False

        def felt(cand: str) -> float:
            k = vocab.index.get(cand)
            return float(vocab.interoceptive[k]) if k is not None else interoceptive_ratings().get(cand, 0.0)

        def common(cand: str) -> bool:
            k = vocab.index.get(cand)
            return k is not None and int(vocab.rank[k]) < COMMON_ADJ

        def eligible(cand: str, level: int, band: Band, strict: int) -> bool:
            """Hard constraints; ``strict`` 2 -> 0 drops the structural ones when nothing passes."""
            conc = rating(cand)
            scene = level == 3 and cand in job.scene  # the description's own word: the band may reach up
            reach = scene or situation(cand, level)  # ... and so may a thing of a person's situation
            synonym = level == 1 and rel.by_level[1].get(cand, 0.0) >= 1.0  # a name of the sense itself
            if conc is None or cand in used or cand in banned or not (
                    conc in band or (reach and band.lo <= conc <= band.hi + SCENE_REACH)
                    or (synonym and band.lo - SYNONYM_REACH <= conc <= band.hi)):
                return False
            if strict == 2 and self._usage[level].get(cand, 0) >= self._cap[level]:
                return False  # used up in this batch: only when the looser rules find nothing else
            lpos = pos_at(level)
            has, share, lexname, stop = profile(cand, POS_KEYS.index(lpos))
            if not has or stop or len(cand.split()) > 2:
                return False
            if lpos == "n" and level >= 4 and profile(cand, POS_KEYS.index("a"))[1] >= ADJ_READING:
                return False  # "a moment of aerial": alone in a frame, a noun must read as a noun
            if (lpos, level) in FELT_FLOOR and strict and (felt(cand) < FELT_FLOOR[lpos, level] or (wpos == "a" and common(cand))):
                # "substantial eyes": a far adjective gives the thing a mood, not a degree; "Jurisdiction:"
                # for a street, "Facilitating:" for people walking: an abstraction, an act no one feels
                return False
            if lpos == "v" and level == 3 and strict and lexname == "verb.stative" and best_lex != "verb.stative":
                return False  # "exists": a relation, not what the scene does (in the slot a stative word may take
                # a stative one: rows of bricks "form", "compose" a wall)
            if lpos == "v" and strict and not lw.used_as_verb(cand):
                return False  # "are concorded in rows", "a pagoda ramps": a noun WordNet also lists as a verb
            if level >= 4 and strict and not gloomy and valence.get(cand, 0.0) <= GLOOM:
                return False  # "Unpleasant, an orange cat looks up": a mood the scene gives no cause for
            if wpos == "a" and level == 5 and strict and abs(valence.get(cand, 0.0)) < MOOD:
                return False  # "Impending, an orange cat looks up": the lead is a mood, a word of feeling
            if lw.is_sexual(cand) or (lw.is_stance(cand) and not lw.is_stance(lemma)):
                return False  # nor a stance on the people in it ("Racism:"), unless the word is one
            if not field_ok and lw.is_field(cand):
                return False  # "a sense of sociology" for people: a field of study reads as the field
            if attributive and lw.predicative_only(cand):
                return False  # "awake lights": the caption's adjective stands before its noun
            if lw.same_word(cand, lemma, word_forms) or lw.stem(cand.split()[-1]) in stems:
                return False
            if lw.looks_alike(cand, lemma) and not any(cand in rel.by_level[k] for k in rel.by_level):
                return False  # a spelling neighbour in MiniLM space ("hide" for "ride"), not a related word
            strength = rel.by_level[level].get(cand, 0.0)
            if lpos == "n" and strict and strength == 0 and lw.reads_as_verb(cand):
                return False  # "her facing", "Believing:": an -ing noun SemCor knows as a verb reads as the verb
            if level >= 3 and lpos == "n" and strict and not gloomy and strength == 0 and lw.is_harm(cand):
                return False  # "Concussion:" for a helmet, "Slaughter:" for blades of grass: nor a harm WordNet
                # knows and VADER does not rate, unless WordNet ties it to the word
            if wpos == "a" and level == 3 and strict and strength == 0 and common(cand):
                return False  # "current lights", "visible towers": an everyday adjective fits any scene
            if frame is not None and level <= 3 and strict and not any(f & frame for _, f in verb_frames(cand)):
                return False  # "folds" for sits: a verb put in the word's place keeps its frame (object or none)
            if descriptive and strength == 0 and lw.is_relational(cand):
                return False  # "optical" (of optics) for orange: a classifying adjective is no quality
            if best_lex == "noun.body" and level == 1 and strength == 0 and lw.is_body_part(cand):
                return False  # beside an eye a mouth is another part, never the same one: body parts
                # are a partonomy, so a near synonym of one is a WordNet synonym or kind of it
            home = rel.home(cand)
            # a verb's levels 1-3 all stand in its slot: a WordNet relation its home level's band cannot take
            # ("rest", a kind of sitting, too abstract for level 1) may stand at another of them; so, for an
            # adjective or verb, may one an earlier level of 1-3 did not pick, in this level's band ("shiny
            # lights" at level 3 for bright, not "translucent lights"; "lounges" at level 2 for sits)
            displaced = level <= 3 and home is not None and home <= 3 and (
                (slot and conc not in bnd[home]) or (wpos in "av" and home < level))
            own_home = displaced or scene or (level == 1 and cand in parents)  # the exceptions above
            if home is not None and home != level and strict and not own_home:
                return False  # a hypernym is a level-2 word, a hyponym a level-1 word
            if wpos == "a" and cand not in rel.by_level[1] and cand not in rel.by_level[2] and lw.sister_value(lemma, cand):
                return False  # a sister value of the same attribute (blue for red, vast for small)
            if colour and strength == 0 and lw.hues_of(cand) and lw.stem(lemma) not in lw.hues_of(cand):
                return False  # "warm" is used of reds and yellows: beside black it is the other pole
            if ((attribute or colour) and level <= 2 and strict >= (level if colour else 2) and strength == 0
                    and not (colour and lw.is_hue(cand))
                    and not (lw.speaks_of(cand, attribute) and (level == 2 or not colour))):
                return False  # a hue's near words are shades or colour words, then words of colour
                # ("warm", not "striped", a pattern); a width's are of width: another property's value is no
                # stand-in. Level 2 relaxes first: colour words are few, and the batch's use cap needs others
            if share < 0.4 and not (strength > 0 and level <= 2):
                # mostly another part of speech ("chair" as a verb, "feminine" as a noun), at every level and
                # strictness: only the word's own synonyms and hypernyms are of its POS by construction
                return False
            if strength > 0 or strict == 0:
                return True
            if lpos == "n" and level in NOUN_LEX and lexname not in NOUN_LEX[level] and strict:
                return False
            if best is not None and wpos in "nv" and level <= 3:
                anc, kin = cand in rel.ancestors, cand in rel.kin
                if level == 1 and ((anc and (cand not in parents or picked)) or (strict and lexname != best_lex)):
                    return False  # a near synonym is the same kind of thing, not a category
                if level == 1 and strict and cand not in rel.ancestors and rel.is_cousin(cand):
                    return False  # nor another kind beside it: a knee is no near synonym of an elbow
                if level == 2 and not anc and (strict == 2 or lexname != best_lex):
                    return False
                if level == 3 and kin and strict == 2 and not displaced:
                    return False  # a breed of the dog is not its situation
            return True

        if best is not None and profile(lemma)[1] < 0.5:
            w = g  # the word's vector is mostly another part of speech (a fruit for a colour)
        pos_ok = vocab.pos[:, p] & ~vocab.stop
        # words defined by the adjective's attribute join the near levels' pool (few are MiniLM neighbours)
        on_attr = np.zeros(len(vocab), dtype=bool)
        if colour:  # colour words are many and plain; a size's are few and glossed loosely ("symmetric": in size)
            on_attr[[k for k in np.flatnonzero(pos_ok) if lw.speaks_of(vocab.words[k], attribute)]] = True
        for level in range(1, 6):
            mix = MIX[level]
            q = mix[0] * w + mix[1] * g + mix[2] * d
            for k, wt in ((3, mix[3]), (4, mix[4])):
                if wt and picks.get(k):
                    q = q + wt * np.mean([emb(x) for x in picks[k]], axis=0)
            q = _norm(q)
            sims = yield q  # the driver multiplies the queries of all ladders with the vocabulary at once
            lpos = pos_at(level)
            if level >= 4:
                sims = (sims - vocab.zmu) * (float(vocab.zsd.mean()) / vocab.zsd) - vocab.freq_penalty
                if lpos == "n":  # a concept with thousands of kinds below it ("trait", "idea") fits any word
                    sims = sims - IC_WEIGHT * vocab.generality
                if level == 5:  # metaphors are felt: joy, freedom, nostalgia rather than probability
                    sims = sims + FEELING_WEIGHT * np.minimum(vocab.interoceptive, FEEL_CAP) / 5.0
            else:
                sims = sims - HUB_PENALTY * vocab.hub - vocab.freq_penalty
            level_pos_ok = pos_ok if lpos == wpos else vocab.pos[:, POS_KEYS.index(lpos)] & ~vocab.stop
            level_ok = level_pos_ok & (vocab.rank < RARE_RANK) if level == 5 else level_pos_ok
            extra = set(_rel_to_embed(rel.by_level[level], vocab))  # the same set whatever the batch
            picked: list[str] = []
            tries = [(2, 0.0), (2, 0.25), (1, 0.25), (1, 0.5), (0, 0.5), (0, 0.8)]
            for strict, widen in tries:
                band = bnd[level].widen(widen) if widen else bnd[level]
                target = c if level == 1 else (band.lo + band.hi) / 2
                ok = level_ok & (vocab.felt_ok[lpos, level] if (lpos, level) in vocab.felt_ok and strict else True)
                idx = np.flatnonzero(ok & (vocab.conc >= band.lo) & (vocab.conc <= band.hi))
                score = sims[idx] - CONC_PENALTY * np.abs(vocab.conc[idx] - target)
                pool = POOL_5 if level == 5 else POOL
                top = np.argpartition(-score, pool)[:pool] if len(idx) > pool else np.arange(len(idx))
                scored = {vocab.words[idx[k]]: float(score[k]) for k in top}
                if level <= 2:
                    scored.update({vocab.words[idx[k]]: float(score[k]) for k in np.flatnonzero(on_attr[idx])})
                rel_cands = list(rel.by_level[level].items())
                if level == 1:  # a noun's own kind, below its synonyms and kinds, above unrelated neighbours
                    rel_cands += [(x, PARENT_AT_1) for x in parents if x not in rel.by_level[1]]
                elif level == 3 and wpos in "av":  # a near word levels 1-2 left, in this band (``displaced``)
                    rel_cands += [(x, st) for h in (1, 2) for x, st in rel.by_level[h].items() if x not in rel.by_level[3]]
                for cand, strength in rel_cands:
                    conc = rating(cand)
                    k = vocab.index.get(cand)
                    if conc is None or (k is None and cand not in extra and cand not in parents_extra):
                        continue
                    if k is not None:
                        base = float(sims[k]) - CONC_PENALTY * abs(conc - target)
                    else:
                        typical = float(vocab.zmu.mean()) if level >= 4 else HUB_PENALTY * 0.6  # same scale as above
                        base = float(emb(cand) @ q) - typical - CONC_PENALTY * abs(conc - target)
                        base -= 0.05 if " " in cand else 0.0
                        if level >= 4 and lpos == "n":
                            base -= IC_WEIGHT * _generality(cand)
                    scored[cand] = base + REL_WEIGHT[level] * strength
                if level == 3:
                    for cand in job.scene:
                        k = vocab.index.get(cand)
                        if k is not None and band.lo <= float(vocab.conc[k]) <= band.hi + SCENE_REACH and vocab.pos[k, p]:
                            base = scored.get(cand, float(sims[k]) - CONC_PENALTY * abs(float(vocab.conc[k]) - target))
                            scored[cand] = base + SCENE_WEIGHT
                if level >= 4 and job.context:
                    for cand, strength in job.context.items():
                        k = vocab.index.get(cand)
                        if k is not None and float(vocab.conc[k]) in band:
                            base = scored.get(cand, float(sims[k]) - CONC_PENALTY * abs(float(vocab.conc[k]) - target))
                            scored[cand] = base + CTX_WEIGHT * strength
                if level == 3:  # a thing of a person's situation over another person
                    for cand in scored:
                        if situation(cand, level):
                            scored[cand] += PERSON_SITUATION
                usage = self._usage[level]
                for cand in scored:
                    n = usage.get(cand, 0)
                    scored[cand] -= USE_PENALTY * n + (OVER_CAP if n >= self._cap[level] else 0.0)
                # scores equal to 1e-3 are ties; the seed orders them (a stable hash, not Python's)
                ranked = sorted(scored, key=lambda x: (-round(scored[x], 3), _tiebreak(self.seed, x)))
                if slot and level in FIT_POOL and strict:
                    short = []
                    for cand in ranked:
                        if len(short) >= FIT_POOL[level]:
                            break
                        if eligible(cand, level, band, strict):
                            short.append(cand)
                    if short:
                        vecs = yield [_slot_span(job.slot, None)] + [_slot_span(job.slot, x) for x in short]
                        fit = dict(zip(short, (vecs[1:] @ vecs[0]).tolist()))
                        ranked = sorted(short, key=lambda x: (-round(scored[x] + FIT_WEIGHT * fit[x], 3), _tiebreak(self.seed, x)))
                for cand in ranked:
                    if len(picked) >= self.per_level:
                        break
                    if eligible(cand, level, band, strict):
                        picked.append(cand)
                        usage[cand] = usage.get(cand, 0) + 1
                        used.add(cand)
                        stems.add(lw.stem(cand.split()[-1]))
                if len(picked) >= self.per_level:
                    break
            if not picked:
                b = bnd[level]
                return StageError(
                    f"level {level}: no rated {r.pos.lower()} for {lemma!r} with concreteness in "
                    f"[{b.lo:.1f}, {b.hi:.1f}] (widened by up to 0.8) other than the word itself"
                )
            picks[level] = picked
        return picks

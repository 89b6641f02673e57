"""Stage 4 offline default: a creative caption by substituting the association for the word.

The caption stays grounded by construction (it is the human caption with one word swapped).
Three things keep it a readable caption on real collections, which mostly have one, often
long, human caption per image:

- **Length.** A caption over ``max_words`` is cut around the word's clause (``shorten.fit``:
  subject, verb and the phrase with the word stay; extra clauses and trailing modifiers go).
  One that cannot be brought under the limit is returned as it is, so validation rejects it
  with its length as the reason: nothing is silently dropped.
- **Grammar.** The association takes the slot's fine tag (dogs -> animals, riding ->
  travelling, looks -> gazes) and a preceding a/an is fixed; the result is re-tagged with spaCy
  and kept only if the slot still reads as that tag. A verb must also take the slot's frame
  (``slot_fault``: not "folds beside her helmet"); a particle it cannot take is dropped
  (``takes_particle``: "appears with wide eyes", not "appears up"). When nothing fits
  ("oculars", "seats"), a
  StageError sends the runner to the level's next association (``alternatives_left``); the last
  one is placed in a frame instead.
- **Frames.** At levels 3-5 an abstract noun, or one that names no thing where the caption has
  one, does not replace a concrete one ("A woman existence sits...", "A gender astronaut"), nor
  does a thing replace a person or an animal, or the other way round ("A woman spacesuit"): the
  scene is kept and the association becomes its title ("Existence: A woman astronaut sits beside
  her helmet", one word, so the scene keeps nine of ten). A verb of levels 4-5 titles it too, as a
  gerund ("Dreaming: A cat looks up"). A level-5 adjective, the mood of the whole scene, leads it
  as a fronted adjective ("Lonely, an orange cat looks up"); a last adjective of levels 3-4 no form
  of which fits ends it ("..., as if lonely").

Deterministic: ``feedback`` from a re-ask cannot change the result, so the runner stops re-asking
when the answer repeats.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..lexicon import concreteness, wordnet
from ..text import indefinite_article, inflect, plural_noun
from .interfaces import CaptionRequest, StageError
from .shorten import (ALONE_FRAMES, INTRANSITIVE_FRAMES, OBJECT_FRAMES, fit, intransitive, parser, render, tag_texts,
                      token_index, verb_frames, word_tokens)

VERSION = "substitute-20"  # 19: a compound word ("fire hydrant") is replaced whole; 20: no word repeated beside the association
ARTICLE_TAGS = ("NN", "NNP", "JJ", "JJR", "JJS", "VBG", "VBN")
SAME_TAG = {"NNP": "NN", "NNPS": "NNS"}  # a proper/common noun reading is still a noun of that number
FRAME_LEVELS = (3, 4, 5)
ABSTRACT = 3.0  # Brysbaert rating below which a noun is abstract ...
GAP = 1.0  # ... and this much less concrete than the concrete noun it would replace
# A noun that cannot take the slot opens the caption as its title, "Pride: an astronaut sits beside
# a flag and her helmet": one word of the ten, so the scene keeps nine. On held-out COCO-mini images
# (benchmarks/bench_frames.py, images 25-75 of one-caption level 4-5 rows) SmolLM2's fluency gap was
# +0.52 nat/token for the title against +0.78 for ", a sense of pride" (four words, the scene cut
# to six), +0.86 "full of", +1.51 "pure" and +0.96 "With pride, ...". The scene after the colon keeps its
# capital, as a subtitle does ("Pride: A woman astronaut sits ..."): on the same rows +0.39 against
# +0.52 with "a woman" (verbs' gerunds +0.47 against +0.58), "Pride. A woman ..." +0.54.
TITLE = "{}: "
# A level-5 adjective (full abstraction: a mood, not a property of the thing in the slot) leads the
# scene as a fronted adjective, "Lonely, an orange cat looks up with wide eyes": grammatical English
# that ascribes the mood to the scene's subject, one word of the ten. In the slot ("A glad fire
# hydrant", "a flat glad surface", "red, exciting and orange fruit") it mostly read as a mistake. On
# held-out COCO-mini images (``bench_frames.py --adjectives``: 42 level 4-5 adjectives of images 25-75,
# one caption) SmolLM2's gap was +0.30 nat/token for the lead, +0.36 for a title "Lonely: ...", +0.39
# for "... Lonely." after the scene, +0.91 in the slot and +0.95 for ", as if lonely". Level 4 stays in
# the slot: there the adjective is a quality of that thing ("brave towers"), the personification
# ``lexical`` chose it for. (Gerunds keep the colon: spaCy reads "Dreaming, a cat ..." as a gerund
# only about half the time, and the writer's re-tagging check would reject the rest.)
LEAD = "{}, "
FRAME_ADJ_LEVEL = 5
# what a photo can show: a level-3 noun of none of these kinds does not replace one of them
THING_LEX = {"noun.artifact", "noun.object", "noun.animal", "noun.person", "noun.plant", "noun.food", "noun.body",
             "noun.substance", "noun.location"}
MIN_SHARE = 0.34
# verbs of moving and perceiving take a direction freely ("glances up", "climbs down"); others take a
# particle only as a listed phrasal verb ("lie down", not "rest down"; "pick up", not "grab up")
SPACE_LEX = {"verb.motion", "verb.perception"}
PLACE_FRAMES = frozenset({4, 20, 21, 22})  # WordNet frames with a phrase of place after the verb ("----s PP")
SLOT_OBJECT = ("dobj", "dative")
SLOT_OTHER = ("attr", "acomp", "oprd", "ccomp", "xcomp", "auxpass", "nsubjpass", "csubj")  # a copula, a clause, a passive


@dataclass
class Draft:
    text: str
    slot: int  # character offset of the association's head word in ``text``
    tag: str  # the tag that word must have when the caption is re-tagged
    frame: bool


def tags_agree(expected: str, got: str, frame: bool = False) -> bool:
    """Same fine tag (proper = common noun); in a frame a noun may be plural ("pure economics")."""
    if frame and expected == "NN":
        return got in ("NN", "NNS", "NNP", "NNPS")
    return SAME_TAG.get(expected, expected) == SAME_TAG.get(got, got)


def head_index(association: str, tag: str) -> int:
    """Which word of a multi-word association carries the inflection (as ``text.inflect``)."""
    n = len(association.split())
    return 0 if tag.startswith("VB") and n > 1 else n - 1


def has_form(association: str, tag: str) -> bool:
    """Whether lemminflect knows a ``tag`` form of the association's head word. Nouns and verbs may
    take its regular rules (unlisted compounds, rare verbs); a comparative or superlative must be a
    listed form: "substantialer" is no word, and "more substantial" would not re-tag as JJR."""
    from lemminflect import getInflection

    if tag in ("NN", "NNP", "VB", "JJ", "VBP"):
        return True
    head = association.split()[head_index(association, tag)]
    return bool(getInflection(head, tag=tag, inflect_oov=not tag.startswith("JJ")))


def frameable_verb(association: str) -> bool:
    """A verb can title a scene ("Dreaming: ...") only if it takes no object nor phrase in one of
    its two commonest senses: "Committing:", "Needing:", "Relying:" read as cut short (``shorten``
    keeps a verb's object by a looser form of the same test)."""
    return intransitive(association.split()[0].lower(), ALONE_FRAMES)


def title_pos(association: str, pos: str, level: int) -> str:
    """The part of speech a framed association titles the scene in: a verb's far (level 4-5)
    association that reads mostly as a noun ("Patience:", "Exploration:", from the lexical miner or an
    LLM's "journey") titles it as that noun, not as a gerund ("Journeying:"); everything else in the
    word's own (a level-1 "seat" for *sits* that fits no slot titles it as "Seating:")."""
    from .lexical_vocab import POS_KEYS, pos_profile

    if pos != "VERB" or level < 4:
        return pos
    prof = pos_profile(association.split()[-1])
    if prof is None:
        return pos
    noun, verb = prof[1][POS_KEYS.index("n")], prof[1][POS_KEYS.index("v")]
    return "NOUN" if noun >= MIN_SHARE and noun > verb else pos


def _slot_frames(tok) -> frozenset[int] | None:
    """The frames a verb in ``tok``'s slot needs: object ones if the caption gives it an object, the
    intransitive ones if it gives none; None for a passive, copular or clausal slot (the re-tagging
    check is left to judge those)."""
    if not tok.tag_.startswith("VB") or tok.tag_ == "VBN" or tok.dep_ == "prep":
        return None  # a participle used as a preposition ("including bottles") has a pobj, not an object
    deps = {c.dep_ for c in tok.children}
    return OBJECT_FRAMES if deps & set(SLOT_OBJECT) else None if deps & set(SLOT_OTHER) else INTRANSITIVE_FRAMES


def slot_fault(tok, association: str) -> str | None:
    """Why a verb cannot stand in verb ``tok``'s slot, or None. The slot's frame is the caption's own,
    so the check is the writer's (the miner sees a word and its sense, not the parse): a slot with
    no object takes a verb that can go without one ("sits beside" -> not "folds beside"), a slot with
    an object one that takes it, by the sentence frames of the verb's two commonest senses."""
    frames, need = verb_frames(association), _slot_frames(tok)
    if need is None or not frames or any(f & need for _, f in frames):
        return None  # not a WordNet verb: the re-tagging and the POS share decide
    return f"{association!r} {'takes no object' if need is OBJECT_FRAMES else 'needs an object'}, unlike {tok.text!r} here"


def takes_particle(tok, particle: str, association: str) -> bool:
    """Whether ``association`` can keep the particle of verb ``tok`` ("looks up"): a verb of moving
    or perceiving whose commonest sense has the slot's frame and takes a phrase of place ("glances
    up"; not "appears up": that "appear" is "seem"; not "sees up"), or a WordNet phrasal verb of the kind of the slot's own ("think
    up" is inventing, not looking). The miner associates the verb without its particle, so when
    the association cannot take it the writer drops it ("An orange cat appears with wide eyes"):
    the particle was part of the word, not of the scene."""
    wn = wordnet()
    word = tok.lemma_.lower()
    own = {s.lexname() for s in wn.synsets(f"{word}_{particle}", pos="v") + wn.synsets(word, pos="v")[:2]}
    if any(s.lexname() in own for s in wn.synsets(f"{association.replace(' ', '_')}_{particle}", pos="v")):
        return True
    frames, need = verb_frames(association), _slot_frames(tok)
    lex, f = frames[0] if frames else ("", frozenset())
    return lex in SPACE_LEX and bool(f & PLACE_FRAMES) and (need is None or bool(f & need))


def _noun_readings(noun: str):
    """(lemma, noun senses) for each lemma the word may be a form of ("eyes": eyes, eye)."""
    wn = wordnet()
    key = noun.replace(" ", "_").lower()
    for lemma in wn._morphy(key, "n") or [key]:  # "eyes" is a lemma (opinions) and the plural of eye
        yield lemma, wn.synsets(lemma, pos="n")


@lru_cache(maxsize=20_000)
def is_thing(noun: str) -> bool:
    """One of the noun's two commonest WordNet senses (the second only if SemCor has seen it) is
    something one can see in a photo (an artifact, a person, food, a place...): "gender", "panting",
    "catering" are not; "table" is (data, then furniture), "light" is (radiation, then a lamp)."""
    for lemma, senses in _noun_readings(noun):
        senses = senses[:2]
        seen = [s for s in senses[1:] if any(lem.count() for lem in s.lemmas() if lem.name().lower() == lemma)]
        if any(s.lexname() in THING_LEX for s in senses[:1] + seen):
            return True
    return False


@lru_cache(maxsize=20_000)
def is_being(noun: str) -> bool:
    """The noun's commonest WordNet sense is a person or an animal."""
    for _, senses in _noun_readings(noun):
        if senses:
            return senses[0].lexname() in ("noun.person", "noun.animal")
    return False


def needs_frame(req: CaptionRequest) -> bool:
    """A noun that cannot stand for the concrete thing in the slot goes into a frame: at level 3 an
    abstract one ("existence" for "woman") or one that names no thing where the caption has one (a
    situation: "A gender astronaut", "A panting is sitting on a bed", "A player hits a sport") or a
    thing where the caption has a person or an animal, or the other way round ("A woman spacesuit"), at
    levels 4-5 (concepts, abstractions) any less concrete one. Verbs of levels 4-5 rarely fit the
    scene's subject and objects, so they are framed too (``bench_frames.py --verbs``: +1.23 nat/token
    in the slot where the writer's checks let them stand, +0.55 as titles); so is a level-5
    adjective (``LEAD``)."""
    if req.pos == "ADJ":
        return req.level == FRAME_ADJ_LEVEL
    if req.level not in FRAME_LEVELS or req.pos not in ("NOUN", "VERB"):
        return False
    if req.pos == "VERB":  # "An orange cat believes up" -> "Believing: an orange cat looks up"
        return req.level > 3
    a, w = concreteness(req.association), concreteness(req.word)
    if a is None or w is None:
        return req.level > 3
    if req.level > 3:
        return a < w
    if is_thing(req.word) and is_thing(req.association) and is_being(req.word) != is_being(req.association):
        return True  # "A woman spacesuit sits", "A man drives a rider": a thing in a being's slot, or a being in a thing's
    return (a < ABSTRACT and w - a >= GAP) or (is_thing(req.word) and not is_thing(req.association))


@lru_cache(maxsize=20_000)
def is_mass(noun: str) -> bool:
    """A mass noun ("furniture", "luggage", "sand") takes no "a": lemminflect knows no plural of it
    but the word itself. Zero plurals that still count ("a sheep", "a moose": animals in WordNet;
    "a species", "a series": already ending in -s) are not mass nouns."""
    from lemminflect import getAllInflections

    head = noun.split()[-1].lower()
    if head.endswith("s") or getAllInflections(head, upos="NOUN").get("NNS") != (head,):
        return False
    syns = wordnet().synsets(head, pos="n")
    return bool(syns) and syns[0].lexname() != "noun.animal"


def pos_share_ok(association: str, tag: str) -> bool:
    """The association is a word of the slot's part of speech in at least a third of its WordNet
    senses ("ocular" is an adjective; "oculars" for "eyes" reads as a mistake)."""
    from .lexical_vocab import POS_KEYS, pos_profile

    p = "n" if tag.startswith("NN") else "v" if tag.startswith("VB") else "a" if tag.startswith("JJ") else None
    prof = pos_profile(association.split()[-1] if p != "v" else association.split()[0])
    return p is None or prof is None or prof[1][POS_KEYS.index(p)] >= MIN_SHARE


def frame_phrase(association: str, pos: str, level: int) -> tuple[str, str]:
    """(the phrase before the scene, or after it when it starts with ", "; the tag the association
    has there): a noun or a verb's gerund is the title ("Pride: A ...", "Dreaming: A ..."), a level-5
    adjective leads ("Lonely, ..."), another adjective follows (", as if lonely")."""
    if pos == "ADJ" and level != FRAME_ADJ_LEVEL:
        return f", as if {association}", "JJ"
    form = inflect(association, "VBG") if pos == "VERB" else association
    form = form[:1].upper() + form[1:]
    if pos == "ADJ":
        return LEAD.format(form), "JJ"
    return TITLE.format(form), "VBG" if pos == "VERB" else "NN"


_REPEAT = re.compile(r"(?<![A-Za-z])([A-Za-z]+) \1(?![A-Za-z])", re.IGNORECASE)


def _offset(text: str, form: str) -> int:
    m = re.search(rf"(?<![A-Za-z]){re.escape(form)}(?![A-Za-z])", text, flags=re.IGNORECASE)
    return m.start() if m else -1


def slot_tag(doc, k: int, first: int) -> str:
    """The fine tag the association takes in the slot of tokens ``first``..``k``: the word's own, but a
    compound ("fire hydrant", tokens ``first`` < ``k``) is a noun whatever the tagger read its head as
    ("hydrant" as an adverb, now and then)."""
    tag = doc[k].tag_
    if first < k and not tag.startswith("NN"):
        return "NNS" if plural_noun(doc[k].text) else "NN"
    return tag


def substitution(doc, k: int, association: str, max_words: int | None, first: int | None = None) -> Draft | str:
    """The caption with ``association`` in token ``k``'s slot, cut to ``max_words``; a reason if no form fits.
    A compound word ("fire hydrant") fills tokens ``first``..``k``, its head last: the whole compound goes."""
    first = k if first is None else first
    tag = slot_tag(doc, k, first)
    if not has_form(association, tag):
        return f"no {tag} form of {association!r} for {doc[k].text!r}"
    if not pos_share_ok(association, tag):
        return f"{association!r} is rarely a word of {doc[k].text!r}'s part of speech ({tag})"
    fault = slot_fault(doc[k], association) if tag.startswith("VB") else None
    if fault:
        return fault
    new = inflect(association, tag)
    if first == 0:  # the caption's first word; a capital inside it is the word's own ("Polish"), not the slot's
        new = new[:1].upper() + new[1:]
    replace = {i: "" for i in range(first, k)} | {k: new}
    if first > 0 and doc[first - 1].lower_ in ("a", "an") and tag in ARTICLE_TAGS:
        art = indefinite_article(new)
        replace[first - 1] = art.capitalize() if doc[first - 1].text[:1].isupper() else art
    if tag.startswith("VB"):  # a particle the association cannot take goes with the word it belonged to
        replace.update({c.i: "" for c in doc[k].children if c.dep_ == "prt" and not takes_particle(doc[k], c.lower_, association)})
    modifier = doc[k].dep_ == "compound" or (k + 1 < len(doc) and doc[k + 1].pos_ in ("NOUN", "PROPN"))  # "a bed frame"
    if tag == "NN" and not modifier and is_mass(new):  # "on an unmade bed" -> "on unmade furniture", not "an unmade furniture"
        replace.update({c.i: "" for c in doc[k].children if c.dep_ == "det" and c.lower_ in ("a", "an")})
    res = fit(doc, k, max_words, replace) if max_words else None
    # too long even when cut: the whole caption, so validation says how long
    text = res if res is not None else render(doc, list(range(len(doc))), replace)
    if (m := _REPEAT.search(text)) and not _REPEAT.search(doc.text):
        return f"{association!r} repeats the word beside it ({m.group(0)!r})"  # "a baseball baseball player"
    head = new.split()[head_index(new, tag)]
    return Draft(text, _offset(text, new) + (len(new) - len(head) if head_index(new, tag) else 0), tag, False)


def titled(title: str, scene: str, doc) -> str:
    """``title`` before ``scene`` (cut from ``doc``). After a title's colon the scene starts with a
    capital, as a subtitle ("Pride: An astronaut ..."); after a lead's comma its first word loses
    the capital unless the parse reads it as a name or "I" ("Lonely, an orange cat", "Lonely, Paris")."""
    if title.endswith(": "):
        return title + scene[:1].upper() + scene[1:]
    head = scene.split()[0]
    if not any(t.text == head and (t.pos_ == "PROPN" or t.text == "I") for t in doc):
        scene = scene[:1].lower() + scene[1:]
    return title + scene


def framed(doc, k: int, association: str, pos: str, level: int, max_words: int | None) -> Draft:
    """The scene, cut to leave room, with the association before it ("Pride: An astronaut sits
    beside a flag", "Dreaming: A cat looks up", "Lonely, a cat looks up") or after it (", as if lonely")."""
    phrase, tag = frame_phrase(association, title_pos(association, pos, level), level)
    budget = max((max_words or 10_000) - len(phrase.strip(", :").split()), 1)
    # a grammatical cut before one that breaks a rule ("People are having on a beach"); the title stands
    # for the whole scene, so when no grammatical cut keeps the word, one around the sentence's root
    # does ("Freedom: A young child holding onto a kite.", not "... holding standing on a covered field")
    res = fit(doc, k, budget, relax=False) or fit(doc, doc[k].sent.root.i, budget, relax=False) or fit(doc, k, budget)
    scene = (res or doc.text.strip()).rstrip(".!").rstrip()
    stop = "." if doc.text.strip().endswith(".") else ""
    if not phrase.startswith(", "):
        return Draft(titled(phrase, scene, doc) + stop, 0, tag, True)
    return Draft(scene + phrase + stop, len(scene) + phrase.rindex(association), tag, True)


# a participle's form is also the past tense ("dispersed", "spread"): in "Colorful galaxies dispersed
# across black space" the re-tag may read the sentence's verb as finite, and the caption reads either way
SAME_FORM = {"VBN": ("VBD", "VBP")}


def check(drafts: list[Draft]) -> list[bool]:
    """Re-tag each draft; True where the association's head word still has the slot's tag (or, in
    the slot itself, a tag of the same form: ``SAME_FORM``)."""
    out = []
    for d, doc in zip(drafts, tag_texts([d.text for d in drafts])):
        tok = next((t for t in doc if t.idx == d.slot), None)
        out.append(tok is not None and (tags_agree(d.tag, tok.tag_, d.frame)
                                        or (not d.frame and tok.tag_ in SAME_FORM.get(d.tag, ()))))
    return out


def substitute(caption: str, word: str, association: str, max_words: int | None = None) -> str | None:
    """The caption with ``association`` for the first token equal to ``word``; None if it is not there."""
    doc = parser()(caption)
    span = word_tokens(doc, word)
    if span is None:
        return None
    d = substitution(doc, span[-1], association, max_words, span.start)
    return d.text if isinstance(d, Draft) else None


class SubstitutionWriter:
    name = "substitute"
    model = None

    def __init__(self, max_words: int | None = 10):
        self.max_words = max_words

    def write(self, requests: list[CaptionRequest]) -> list[str | StageError]:
        caps = sorted({r.caption for r in requests})
        docs = dict(zip(caps, parser().pipe(caps, batch_size=256)))
        out: list[str | StageError | None] = [None] * len(requests)
        drafts: dict[int, Draft] = {}
        failed: dict[int, str] = {}
        for n, r in enumerate(requests):
            doc = docs[r.caption]
            span = word_tokens(doc, r.word)
            k = span[-1] if span else None
            if k is None:
                out[n] = StageError(f"word {r.word!r} not found in the caption {r.caption!r}")
            elif needs_frame(r):
                if title_pos(r.association, r.pos, r.level) == "VERB" and r.alternatives_left > 0 and not frameable_verb(r.association):
                    out[n] = StageError(f"no grammatical caption: {r.association!r} cannot title a caption alone (it needs an object or a phrase)")
                else:
                    drafts[n] = framed(doc, k, r.association, r.pos, r.level, self.max_words)
            else:
                d = substitution(doc, k, r.association, self.max_words, span.start)
                if isinstance(d, Draft):
                    drafts[n] = d
                else:
                    failed[n] = d
        for (n, d), ok in zip(list(drafts.items()), check(list(drafts.values()))):
            if not ok:
                failed[n] = f"{requests[n].association!r} does not read as {d.tag} in {d.text!r}"
                if d.frame and requests[n].alternatives_left == 0:
                    del failed[n]  # nothing left to try: the frame stays
        for n, reason in failed.items():
            r = requests[n]
            if r.alternatives_left > 0:  # the runner tries the level's next association
                out[n] = StageError(f"no grammatical caption: {reason}")
            else:
                doc = docs[r.caption]
                drafts[n] = framed(doc, token_index(doc, r.word), r.association, r.pos, r.level, self.max_words)
        for n, d in drafts.items():
            if out[n] is None:
                out[n] = d.text
        return out  # type: ignore[return-value]

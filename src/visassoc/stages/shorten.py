"""Short captions from long ones, around one word, from spaCy's dependency parse.

Most real collections have one human caption per image, and half of COCO's are over ten words.
Rather than reject those, the substitution writer keeps the clause that holds the salient word:
its subject, its verb and the phrase with the word, dropping extra clauses, list items and
modifiers (the dependents in ``PRUNE``) until the caption fits. Of the cuts that fit, the one
keeping the most content words is taken (``_choose``, a knapsack over the parse tree), under
grammar rules (``_required``, ``_needs_own_words``, ``_units``) that keep what the kept words need:
a verb's object, "in front of" whole, a participle with its phrase, a list's "and" with its
item, a bare noun's modifier ("with wide eyes": a bare "with eyes" says less than no phrase). They
are relaxed only when no cut fits with them. A subject cut to one singular item of a coordination
takes a singular verb ("A woman is sitting", ``_agreement``). A noun list item that spaCy hangs on
a verb is first moved to the noun its "and" belongs to (``_repaired``). The word's *path* to the
sentence root is never dropped. When the word is one item of a list ("plates, forks and cups")
or the second of two verbs ("sits and reads a book"), it takes its head item's place (the head
item's subject stays), so the result is still a sentence: "A table with forks", "A man reads a
book". A caption no step brings under the limit is returned as None and the writer reports it.
"""
from __future__ import annotations

from functools import lru_cache

from ..lexicon import SPACY_MODEL

# dependents that may be dropped with their phrase, unless on the word's path to the root
PRUNE = (
    ("conj", "cc", "advcl", "relcl", "ccomp", "parataxis", "dep", "appos", "preconj", "meta"),
    ("prep", "advmod", "npadvmod", "agent", "mark", "intj"),
    ("acl", "xcomp", "amod", "compound", "nummod", "quantmod", "nmod"),  # "her" helmet stays: a determiner
    ("dobj", "attr", "dative", "oprd", "acomp", "pcomp", "pobj", "prt"),
)
MODIFIERS = ("nummod", "amod", "compound", "nmod")  # what stands for a bare noun's determiner
NEEDS = ("attr", "acomp", "oprd", "dative", "prt", "xcomp")  # a verb's complements (the object: ``_required``)
PARTITIVE_LEX = {"noun.group", "noun.quantity", "noun.Tops"}
INTRANSITIVE_FRAMES = frozenset({1, 2, 3, 4, 22})  # WordNet: "Something/Somebody ----s", "It is ----ing", "... ----s PP"
ALONE_FRAMES = frozenset({1, 2, 3})  # ... of which these need no phrase at all ("rely" needs "on ...")
# WordNet frames with a direct object: "Somebody ----s something", "... somebody PP", "... something to somebody"
OBJECT_FRAMES = frozenset({5, 8, 9, 10, 11, 14, 15, 16, 17, 18, 19, 20, 21, 24, 30, 31})
# a participle's own phrase: what keeps "sitting" from standing bare (not "while", not "and")
OWN_WORDS = ("prep", "dobj", "prt", "xcomp", "ccomp", "advmod", "npadvmod", "attr", "acomp", "oprd", "dative", "agent")
CONTENT = ("NOUN", "PROPN", "VERB", "ADJ", "NUM", "ADV")
DANGLING = ("CC", "IN", "DT", "TO", "WDT", "WRB", "PRP$", "POS", "HYPH", ",")
LIST_DEPS = ("conj", "appos")  # the word replaces its head item in a list or a pair of verbs
SUBJECT_DEPS = ("nsubj", "nsubjpass", "expl", "aux", "auxpass", "neg")
CLAUSE_DEPS = ("advcl", "ccomp", "parataxis", "conj")  # a clause that can stand alone if it has a subject


@lru_cache(maxsize=1)
def parser():
    """spaCy with its dependency parser (``lexicon.spacy_nlp`` turns it off for speed), followed by
    ``verb_read_as_noun``, the one misparse that makes cuts drop a caption's subject."""
    import spacy
    from spacy.language import Language

    if "visassoc_verb_repair" not in Language.factories:
        Language.component("visassoc_verb_repair", func=verb_read_as_noun)
    if "visassoc_colour_repair" not in Language.factories:
        Language.component("visassoc_colour_repair", func=colour_read_as_noun)
    nlp = spacy.load(SPACY_MODEL, disable=["ner"])
    nlp.add_pipe("visassoc_verb_repair", last=True)
    nlp.add_pipe("visassoc_colour_repair", last=True)
    return nlp


# Berlin & Kay's basic colour terms: before a noun each is the noun's colour, not a noun of its own
BASIC_COLOURS = frozenset({"black", "white", "red", "green", "yellow", "blue", "brown", "orange", "pink", "purple",
                           "grey", "gray"})


def colour_read_as_noun(doc):
    """Repairs a basic colour term the small model tags as a noun before a noun ("An orange dahlia",
    "an orange train", "a brown cow" in some sentences): an adjective, so its salient ladder is a
    colour's ("a bright dahlia"), not the fruit's ("A citrus fruit dahlia"). Not in a compound
    WordNet knows ("orange juice", "white house") nor before a food when the word names one too
    ("orange slices")."""
    wn = None
    for t in doc[:-1]:
        nx = doc[t.i + 1]
        if t.tag_ not in ("NN", "NNP") or t.lower_ not in BASIC_COLOURS or nx.pos_ not in ("NOUN", "PROPN"):
            continue
        if wn is None:
            from ..lexicon import wordnet

            wn = wordnet()
        head = (nx.lemma_ or nx.lower_).lower()
        if wn.synsets(f"{t.lower_}_{head}") or wn.synsets(f"{t.lower_}_{nx.lower_}"):
            continue
        heads = wn.synsets(head, pos="n")
        if heads and heads[0].lexname() == "noun.food" and any(s.lexname() == "noun.food" for s in wn.synsets(t.lower_, pos="n")):
            continue
        t.tag_, t.pos_ = "JJ", "ADJ"
        if t.dep_ == "compound":
            t.dep_ = "amod"
    return doc


def verb_read_as_noun(doc):
    """Repairs "a tabby cat stares at the camera", which the small model parses as one noun phrase
    headed by a plural noun "stares" ("cat" its compound): the cut then keeps "a stares at the
    camera". A sentence's root read as a plural noun in -s (or a VBZ with no subject), right after a
    compound noun, with the singular "a"/"an" before it (so not "a few street lights") and no verb
    anywhere else, is a verb whose subject is that noun when lemminflect knows it as a verb: the
    noun becomes its subject, taking the determiner and modifiers before it. About 0.3% of COCO
    captions ("a zebra grazes in a field", "an air plane flies in a dark grey sky")."""
    from lemminflect import getLemma

    for root in [t for t in doc if t.dep_ == "ROOT"]:
        kids = list(root.children)
        noun = doc[root.i - 1] if root.i > 0 else None
        if (root.tag_ not in ("NNS", "VBZ") or not root.lower_.endswith("s") or noun is None
                or noun.dep_ != "compound" or noun.head.i != root.i or noun.tag_ not in ("NN", "NNP")
                or any(c.dep_ in ("nsubj", "nsubjpass") for c in kids) or any(c.lower_ == "few" for c in kids)
                or not any(c.dep_ == "det" and c.lower_ in ("a", "an") and c.i < noun.i for c in kids)
                or any(t.pos_ in ("VERB", "AUX") for t in root.sent if t.i != root.i)):
            continue
        lemma = getLemma(root.lower_, upos="VERB")
        if not lemma or lemma[0] == root.lower_:
            continue
        for c in kids:
            if c.i < noun.i:
                c.head = noun
        noun.dep_, root.tag_, root.pos_, root.lemma_ = "nsubj", "VBZ", "VERB", lemma[0]
    return doc


def tag_texts(texts: list[str], batch_size: int = 256) -> list:
    """The texts tagged by the fast pipeline (no parser), except those the tagger finds no verb in
    and a plural or -s word right after a noun ("A photographer films on a grassy field"): parsed
    by ``parser()``, so ``verb_read_as_noun`` repairs them; a colour read as a noun before a noun is an
    adjective (``colour_read_as_noun``). The one tagging every stage shares:
    salient words, the writer's re-tag check and the benchmarks' tag agreement."""
    from ..lexicon import spacy_nlp

    docs = list(spacy_nlp().pipe(texts, batch_size=batch_size))
    suspect = [n for n, d in enumerate(docs) if not any(t.pos_ in ("VERB", "AUX") for t in d) and any(
        t.tag_ in ("NNS", "VBZ") and t.lower_.endswith("s") and t.i > 0 and d[t.i - 1].tag_ in ("NN", "NNP") for t in d)]
    for n, doc in zip(suspect, parser().pipe([texts[n] for n in suspect], batch_size=batch_size)):
        docs[n] = doc
    return [colour_read_as_noun(d) for d in docs]


def _subtree(t, within: set[int]) -> set[int]:
    return {x.i for x in t.subtree} & within


RELATIVE_TAGS = ("WDT", "WP")  # "that", "which", "who": a relative clause's subject stands for its noun
BE_FORMS = ("is", "are", "was", "were")


def _stands_alone(t) -> bool:
    """A clause with its own subject, or a noun phrase with a determiner ("a woman sitting under ...").
    A relative clause's "that" is no subject of its own: "That is inside the back of a truck." """
    if t.pos_ in ("VERB", "AUX"):
        return any(c.dep_ in ("nsubj", "nsubjpass") and c.tag_ not in RELATIVE_TAGS for c in t.children)
    return t.pos_ in ("NOUN", "PROPN") and (t.tag_ in ("NNS", "NNPS") or any(c.dep_ in ("det", "poss", "nummod") for c in t.children))


def _path_up(doc, k: int) -> list:
    t, out = doc[k], [doc[k]]
    while t.head.i != t.i:
        t = t.head
        out.append(t)
    return out


def _core(doc, k: int, top=None) -> tuple[set[int], set[int]]:
    """(the word's own clause with list heads it stands in for removed, the word's path to the root).
    ``top``: start from this ancestor instead of the nearest clause of its own."""
    t = doc[k]
    path = [t]
    if top is None:
        top = t.sent.root
        while t.head.i != t.i:  # the nearest clause of its own: "while one of them cooks food on the stove"
            if t.dep_ in CLAUSE_DEPS and t.pos_ in ("VERB", "AUX") and _stands_alone(t):
                top = t
                break
            t = t.head
            path.append(t)
    else:
        while t.i != top.i:
            t = t.head
            path.append(t)
    keep = _subtree(top, {x.i for x in doc})
    route = {x.i for x in path}
    onpath = route & keep
    stand: dict[int, object] = {}  # list head -> the item that takes its place (the word's own, down a chain)
    for x in path:
        if x.dep_ in LIST_DEPS and x.i != top.i and x.head.i in keep:
            h = x.head  # the word's item replaces the list head: drop the head and its other items
            # (an item with no determiner of its own takes the head's: "on the cupboard and sink" -> "on the sink")
            it = stand[h.i] = stand.get(x.i, x)
            det = it.tag_ == h.tag_ and not any(d.dep_ in ("det", "poss") for d in it.children)
            keep -= {h.i} | {i for c in h.children if c.i not in route and c.dep_ not in SUBJECT_DEPS
                              and not (det and c.dep_ in ("det", "poss")) for i in _subtree(c, keep)}
            onpath.discard(h.i)
    for c in top.children:  # the clause's own connective ("while") goes with the rest of the sentence
        own_list = any(x.dep_ == "conj" and x.i > c.i and x.i in keep for x in top.children)  # "a car and a bus"
        if (c.dep_ == "mark" or (c.dep_ in ("cc", "preconj") and not own_list)) and c.i not in onpath:
            keep -= _subtree(c, keep)
    return keep, onpath


def _opens_clause(t) -> bool:
    """The first word of a subordinate clause ("..., shining on the sink"): its comma stays even
    when the phrase before it went ("The kitchen is lit, shining on the sink")."""
    return any(a.dep_ in ("advcl", "parataxis") and a.left_edge.i == t.i for a in [t, *t.ancestors])


def _tidy(doc, keep: set[int]) -> list[int]:
    """Kept tokens minus dangling conjunctions and punctuation, in order."""
    out = []
    for i in sorted(keep):
        t = doc[i]
        if t.dep_ in ("cc", "preconj") and not any(c.dep_ == "conj" and c.i > i and c.i in keep for c in t.head.children):
            continue
        if t.is_punct and not ((i - 1 in keep and i + 1 in keep) or (i == len(doc) - 1 and t.text in ".!")
                               or (out and i + 1 in keep and _opens_clause(doc[i + 1]))):
            continue
        if t.text == "," and i + 1 in keep and doc[i + 1].dep_ == "cc" and sum(
                x.i in keep for x in (doc[i + 1].head, *doc[i + 1].head.conjuncts)) <= 2:
            continue  # a list cut to two items loses its serial comma: "tomato sauce and broccoli"
        out.append(i)
    # nothing dangles at the end: "A dog wears a tie while" -> "A dog wears a tie"
    end = [i for i in out if doc[i].is_punct and i == len(doc) - 1]
    body = [i for i in out if i not in end]
    while body and doc[body[-1]].tag_ in DANGLING:
        body.pop()
    return body + end


SINGULAR_VERB = {"are": "is", "were": "was", "have": "has", "do": "does"}
PLURAL_VERB = {v: k for k, v in SINGULAR_VERB.items()}


def _agreement(doc, keep: list[int], replace: dict[int, str]) -> dict[int, str]:
    """The verb made singular when the cut left one singular item of a coordinated subject: "A man
    and a woman are sitting on a bench" cut around "woman" is "A woman is sitting on a bench", not
    "A woman are sitting". The first auxiliary, else the verb itself, agrees (lemminflect's VBZ)."""
    kept, out = set(keep), {}
    for t in doc:
        items = [t, *t.conjuncts] if t.dep_ in ("nsubj", "nsubjpass") else []
        left = [x for x in items if x.i in kept]
        if len(items) < 2 or len(left) != 1 or left[0].tag_ not in ("NN", "NNP"):
            continue
        form = _agreeing(t.head, plural=False, skip=lambda v: v.i not in kept or v.i in replace)
        if form:
            out[form[0]] = form[1]
    return out


def _agreeing(verb, plural: bool, skip=lambda v: False) -> tuple[int, str] | None:
    """(index, form) for the verb group of ``verb`` to agree with a subject of the other number:
    its first auxiliary ("is" -> "are"), else the verb itself ("stands" -> "stand"); None if that
    word needs no change. Tokens ``skip`` says are not there are passed over."""
    from ..text import inflect

    table, old, new = (PLURAL_VERB, "VBZ", "VBP") if plural else (SINGULAR_VERB, "VBP", "VBZ")
    for v in [c for c in verb.children if c.dep_ in ("aux", "auxpass") and c.i < verb.i] + [verb]:
        if skip(v):
            continue
        if v.lower_ in table:
            return v.i, table[v.lower_]
        return (v.i, inflect(v.lemma_, new)) if v.tag_ == old else None
    return None


def render(doc, keep: list[int], replace: dict[int, str] | None = None) -> str:
    """The kept tokens as text, with ``replace`` (index -> new text, "" drops the token) applied;
    first letter as the caption's."""
    from ..text import indefinite_article

    replace = replace or {}
    keep = [i for i in keep if replace.get(i) != ""]
    out = []
    for n, i in enumerate(keep):
        t = doc[i]
        word = replace.get(i, t.text)
        if word.lower() in ("a", "an") and n + 1 < len(keep) and keep[n + 1] != i + 1:  # "an orange cat" -> "a cat"
            art = indefinite_article(replace.get(keep[n + 1], doc[keep[n + 1]].text))
            word = art.capitalize() if word[:1].isupper() else art
        out.append(word)
        nxt = keep[n + 1] if n + 1 < len(keep) else None
        if nxt is not None:
            out.append(t.whitespace_ if nxt == i + 1 else ("" if doc[nxt].is_punct else " "))
    text = "".join(out).strip(" ,;:-")
    if text and doc[0].text[:1].isupper():
        text = text[0].upper() + text[1:]
    return text


@lru_cache(maxsize=20_000)
def intransitive(lemma: str, frames: frozenset[int] | set[int] = INTRANSITIVE_FRAMES) -> bool:
    """Whether one of the verb's two commonest WordNet senses takes no object ("eat", "drive",
    "celebrate"; not "hold", "have", "wear"), so dropping its object still leaves a sentence.
    ``frames``: the WordNet sentence frames that count (``ALONE_FRAMES``: not even a phrase after it)."""
    from ..lexicon import wordnet

    return any(f in frames for s in wordnet().synsets(lemma, pos="v")[:2] for f in s.frame_ids())


@lru_cache(maxsize=50_000)
def verb_frames(verb: str) -> tuple[tuple[str, frozenset[int]], ...]:
    """(lexname, sentence frames of the verb's lemma) for its two commonest WordNet verb senses; a
    multi-word verb not in WordNet is read by its first word. The frames a reader takes it in."""
    from ..lexicon import wordnet

    wn = wordnet()
    key = verb.strip().lower().replace(" ", "_")
    if not wn.synsets(key, pos="v"):
        key = key.split("_")[0]
    return tuple((s.lexname(), sense_frames(s, key)) for s in wn.synsets(key, pos="v")[:2])


def sense_frames(s, key: str) -> frozenset[int]:
    """The sentence frames WordNet gives lemma ``key`` (underscored) in verb sense ``s``, else the sense's own."""
    return frozenset({f for lem in s.lemmas() if lem.name().lower() == key for f in lem.frame_ids()} or s.frame_ids())


@lru_cache(maxsize=20_000)
def _partitive(lemma: str) -> bool:
    """A noun whose commonest WordNet sense is a group or amount ("a group/couple/pile of ..."):
    alone it says nothing of the scene."""
    from ..lexicon import wordnet

    syns = wordnet().synsets(lemma, pos="n")
    return bool(syns) and syns[0].lexname() in PARTITIVE_LEX


def _required(c, strict: bool) -> bool:
    """Whether dependent ``c`` must stay while its head does. Always a preposition's object. When
    ``strict``, also a verb's complement or particle ("is clean", "picks up"), the modifier that
    stands for a bare noun's determiner ("one leg", "living room"; of a plural after a preposition,
    the adjective next to it: "with wide eyes"; a bare plural stripped of its adjective, "A cat looks
    up with eyes", says less than the cut without its phrase, "An orange cat looks up"), the modifier
    next to a noun that repeats an earlier one ("a bus with a smaller bus"), the object of a verb
    that needs one ("having fun", "holding a cup"), the "of" phrase that completes a noun ("a group
    of people", "in front of", "on top of"), the preposition of an adverb or adjective ("next to",
    "full of"), the fronted adverb of an inverted clause ("Here are ...") and a conjunction (it
    goes when its item goes, ``_tidy``), and the phrase right after a modifying participle of a verb
    that needs an object ("a table topped with a laptop", where "A man standing" needs none)."""
    h = c.head
    if c.dep_ in ("pobj", "pcomp"):
        return True
    if not strict:
        return False
    if c.dep_ in NEEDS or c.dep_ in ("cc", "preconj") or (c.dep_ == "compound" and h.dep_ == "compound"):
        return True  # the compound inside a compound: "a stove top oven", never "a top oven"
    if c.dep_ in ("amod", "compound") and c.i < h.i and _repeats(h) and c.i == max(
            x.i for x in h.children if x.dep_ in ("amod", "compound") and x.i < h.i):
        return True  # "A green bus with a smaller bus": without it, "... with a bus" says nothing
    if c.dep_ in MODIFIERS and c.i < h.i and h.tag_ in ("NN", "NNS") and not any(
            x.dep_ in ("det", "poss") for x in h.children):  # "with one leg", "in living room": no bare "leg"
        if h.tag_ == "NN":
            return True
        # a plural after a preposition keeps the adjective next to it ("with wide eyes", never "with
        # eyes"); a plural subject may lose its number or adjective ("Airplanes are flying" reads
        # better than keeping "Two" at the cost of the rest of the scene)
        return h.dep_ == "pobj" and c.dep_ == "amod" and c.i == max(
            x.i for x in h.children if x.dep_ in MODIFIERS and x.i < h.i)
    if c.dep_ == "dobj":
        return not intransitive(h.lemma_.lower())
    if c.dep_ == "prep":
        if h.tag_ in ("VBN", "VBG") and h.dep_ in ("acl", "advcl") and c.i == h.i + 1 and not intransitive(h.lemma_.lower()):
            return True  # the phrase right after a participle that needs an object stands for it: "topped with
            # a laptop", not "A table topped next to a plate"; "holding onto a kite", not "A child holding standing"
        if h.pos_ in ("NOUN", "PROPN") and c.lower_ == "of":  # "in front of", "a group of", not "the back (of a truck)"
            return not any(x.dep_ in ("det", "poss") for x in h.children) or _partitive(h.lemma_.lower())
        return h.pos_ in ("ADV", "ADJ")
    if c.dep_ in ("advmod", "npadvmod") and c.i < h.i and h.dep_ == "ROOT":
        return any(s.dep_ in ("nsubj", "nsubjpass") and s.i > h.i for s in h.children)
    return False


def _repeats(t) -> bool:
    """A noun whose lemma an earlier noun of the caption already has: its modifier tells them apart."""
    return t.pos_ == "NOUN" and any(x.pos_ == "NOUN" and x.lemma_ == t.lemma_ for x in t.doc[: t.i])


def _needs_own_words(t) -> bool:
    """A participle or infinitive that modifies something cannot stand without its own phrase:
    "A red fire hydrant sitting" (its "on a sidewalk" dropped) reads as a fragment; it goes whole.
    The word itself too ("A plane floating on top of a lake surrounded."): then a smaller phrase
    around it that stands alone is cut instead ("A lake surrounded by mountains.").
    So does a participle heading the caption with no auxiliary, if it has a phrase to keep: spaCy
    makes "fruit" its subject, but "A group of fruit mixed" (from "... mixed together") is a noun
    with a bare participle too."""
    if t.pos_ in ("VERB", "AUX") and t.dep_ == "ROOT" and t.tag_ in ("VBN", "VBG"):
        return not any(c.dep_ in ("aux", "auxpass") for c in t.children) and any(c.dep_ in OWN_WORDS for c in t.children)
    return t.pos_ in ("VERB", "AUX") and t.dep_ in ("acl", "advcl", "relcl", "xcomp", "conj") and not any(
        c.dep_ in ("nsubj", "nsubjpass") for c in t.children)


def _weight(t, n: int) -> float:
    """What keeping a token is worth: content words most; earlier tokens break ties (trailing ones go first)."""
    if t.is_punct or t.dep_ in ("cc", "preconj"):
        return 0.0
    return (1.0 if t.pos_ in CONTENT else 0.4) + 1e-3 * (n - t.i) / n


def _choose(doc, keep: set[int], path: set[int], budget: int, replace: dict[int, str], strict: bool) -> list[frozenset]:
    """Subsets of ``keep`` that fit ``budget`` words, best first: each drops whole optional phrases
    (``PRUNE`` dependents, not on the path, not ``_required``), found by a knapsack over the parse
    tree that keeps the most content for each word count; the largest count comes first. Several
    cuts usually fit and the one keeping most of the scene wins: "A dog is sitting with pillows"
    over "A dog is sitting" for six words."""
    n = len(doc)
    optional = {d for step in PRUNE for d in step}
    kids: dict[int, list[int]] = {i: [] for i in keep} | {-1: []}  # -1: above the parentless tokens
    for i in sorted(keep):
        t = doc[i]  # hang each token on its nearest kept ancestor (a list head the word replaced is gone)
        while t.head.i != t.i and t.head.i not in keep:
            t = t.head
        kids[t.head.i if t.head.i != t.i else -1].append(i)

    def words(i: int) -> int:
        if i in replace:
            return len(replace[i].split())
        t = doc[i]
        if t.is_punct or (t.dep_ in ("cc", "preconj") and not strict):  # _tidy and render decide those
            return 0
        return 0 if i > 0 and doc[i - 1].whitespace_ == "" and i - 1 in keep else 1

    def opts(i: int) -> dict[int, tuple[float, frozenset]]:
        # (words, keeps a phrase of its own) -> (score, kept tokens) for the subtree under i, i kept
        cur = {(words(i), False): (_weight(doc[i], n), frozenset({i}))} if i >= 0 else {(0, False): (0.0, frozenset())}
        for unit in _units(doc, kids[i], strict):
            sub: dict[int, tuple[float, frozenset]] = {0: (0.0, frozenset())}
            for c in unit:
                sub = _combine(sub, _collapse(opts(c)), budget)
            c = unit[0]
            inside = {j for c2 in unit for j in _subtree(doc[c2], keep)}
            chained = strict and doc[c].dep_ == "conj" and doc[i].dep_ in LIST_DEPS and i not in path  # "noodles, meat"
            if (i >= 0 and doc[c].dep_ in optional and not _required(doc[c], strict) and not inside & path and not chained
                    # a left modifier holding the phrase's determiner ("a stove top oven") stays
                    and not (strict and c < i and any(doc[j].dep_ in ("det", "poss") for j in inside))):
                sub[0] = max(sub.get(0, (-1.0, frozenset())), (0.0, frozenset()), key=lambda v: v[0])  # it may go
            own = _role(doc[c], keep).dep_ in OWN_WORDS
            new: dict[tuple[int, bool], tuple[float, frozenset]] = {}
            for (w, has), (sc, ks) in cur.items():
                for cw, (cs, cks) in sub.items():
                    key = (w + cw, has or (own and bool(cks)))
                    if key[0] <= budget and (key not in new or sc + cs > new[key][0]):
                        new[key] = (sc + cs, ks | cks)
            cur = new
        if strict and i >= 0 and _needs_own_words(doc[i]):
            cur = {k: v for k, v in cur.items() if k[1]}
        return cur

    best = _collapse(opts(-1))
    return [best[w][1] for w in sorted(best, reverse=True)]


def _role(t, keep: set[int]):
    """The token whose place ``t`` holds: a list item standing in for its dropped head item ("the
    bathtub" for "the shower and bathtub") is its head's object, not a "conj"."""
    while t.dep_ in LIST_DEPS and t.head.i != t.i and t.head.i not in keep:
        t = t.head
    return t


def _units(doc, kids: list[int], strict: bool) -> list[list[int]]:
    """A head's dependents as units that stay or go together. When ``strict`` a list's later items
    go together with their conjunction and commas: "noodles, meat and broccoli" -> "noodles", never
    "noodles, meat" (nor may an item chained under another item go alone, ``_choose``)."""
    items = [c for c in kids if doc[c].dep_ in LIST_DEPS]
    if not strict or not items:
        return [[c] for c in kids]
    links = [c for c in kids if doc[c].dep_ in ("cc", "preconj")]
    lo, hi = min(items + links), max(items)
    group = items + [c for c in kids if c not in items and (c in links or (doc[c].is_punct and lo < c < hi))]
    return [[c] for c in kids if c not in group] + [[items[0]] + [c for c in group if c != items[0]]]


def _combine(a: dict, b: dict, budget: int) -> dict:
    out: dict[int, tuple[float, frozenset]] = {}
    for w, (s, ks) in a.items():
        for cw, (cs, cks) in b.items():
            if w + cw <= budget and (w + cw not in out or s + cs > out[w + cw][0]):
                out[w + cw] = (s + cs, ks | cks)
    return out


def _collapse(opts: dict) -> dict[int, tuple[float, frozenset]]:
    out: dict[int, tuple[float, frozenset]] = {}
    for (w, _), v in opts.items():
        if w not in out or v[0] > out[w][0]:
            out[w] = v
    return out


def _repaired(doc):
    """The parse with a noun list item that spaCy hung on a verb moved to the noun its "and"
    belongs to: in "lit with lights, shining on the cupboard and sink" "sink" is a second item of
    "cupboard", not of "lit" (where it would stand in for the verb: "The kitchen is sink")."""
    bad = [t for t in doc if t.dep_ == "conj" and t.pos_ in ("NOUN", "PROPN") and t.head.pos_ in ("VERB", "AUX")
           and t.i > 0 and doc[t.i - 1].dep_ == "cc" and doc[t.i - 1].head.pos_ in ("NOUN", "PROPN")
           and doc[t.i - 1].head.i < t.i]
    # and the converse: in "A sandwich with nachos and a salad on a plate" spaCy hangs "and" on "nachos"
    # but "salad" on "sandwich"; a conjunction whose head has no later item links the next item
    # (else the cut keeps "A sandwich with nachos a salad")
    loose = []
    for c in doc:
        if c.dep_ == "cc" and not any(x.dep_ == "conj" and x.i > c.i for x in c.head.children):
            nxt = next((x for x in doc[c.i + 1 :] if x.dep_ == "conj" and x.head.i < c.i), None)
            if nxt is not None and nxt not in bad:  # (the first repair moves that item to the "and")
                loose.append((c.i, nxt.head.i))
    if not bad and not loose:
        return doc
    doc = doc.copy()
    for t in bad:
        doc[t.i].head = doc[doc[t.i - 1].head.i]
    for i, h in loose:
        doc[i].head = doc[h]
    return doc


def _reduced_relatives(doc) -> dict[int, str]:
    """Relative clauses reduced, as English does when space is short: "a girl that is sitting in
    front of a laptop" -> "a girl sitting in front of a laptop", "an elephant that is inside the
    truck" -> "an elephant inside the truck". The relative pronoun and a plain "is/are/was/were"
    go (index -> "") where the clause is a participle's or the copula's with a phrase, and nothing
    else hangs on them (no negation, no second auxiliary)."""
    out: dict[int, str] = {}
    for r in doc:
        if r.dep_ != "relcl":
            continue
        kids = list(r.children)
        rel = [c for c in kids if c.dep_ in ("nsubj", "nsubjpass") and c.tag_ in RELATIVE_TAGS]
        aux = [c for c in kids if c.dep_ in ("aux", "auxpass", "neg")]
        if len(rel) != 1 or any(c.dep_ == "neg" for c in aux):
            continue
        if r.tag_ in ("VBG", "VBN") and len(aux) == 1 and aux[0].lower_ in BE_FORMS:
            out.update({rel[0].i: "", aux[0].i: ""})  # "that is sitting" -> "sitting"
        elif r.lower_ in BE_FORMS and not aux and any(c.dep_ in ("prep", "acomp") for c in kids):
            out.update({rel[0].i: "", r.i: ""})  # "that is inside the truck" -> "inside the truck"
    return out


def _bare_partitives(doc, k: int) -> dict[int, str]:
    """Partitives dropped, as English does when space is short: "A group of people riding skis
    across a snowy slope" -> "People riding skis across a snowy slope", "a bunch of sheep" ->
    "sheep". The group or amount word says little of the scene and costs three words, which
    otherwise come out of the scene ("A snow covered slope.", "A group of people sitting eating
    food"). Only "a/an" + a bare partitive (its commonest sense a group or amount, no modifier of its
    own: "a large group" is large) + "of" + a noun with no determiner, not in an existential "There
    is a bunch of ...", and never around the word itself; a subject's verb then agrees with the
    plural ("People are standing"). Index -> "" (dropped) or the verb's new form."""
    out: dict[int, str] = {}
    for of in doc:
        h, obj = of.head, [c for c in of.children if c.dep_ == "pobj"]
        if of.lower_ != "of" or of.dep_ != "prep" or of.i != h.i + 1 or len(obj) != 1 or h.pos_ != "NOUN":
            continue
        obj, left = obj[0], [c for c in h.children if c.i < h.i]
        if (h.dep_ not in ("ROOT", "nsubj", "nsubjpass", "dobj", "pobj") or not _partitive(h.lemma_.lower())
                or len(left) != 1 or left[0].lower_ not in ("a", "an") or left[0].i != h.i - 1
                or obj.pos_ not in ("NOUN", "PROPN") or any(c.dep_ in ("det", "poss") for c in obj.children)
                or k in (left[0].i, h.i, of.i)):
            continue
        out.update({left[0].i: "", h.i: "", of.i: ""})
        form = _agreeing(h.head, plural=True) if h.dep_ in ("nsubj", "nsubjpass") and obj.tag_ in ("NNS", "NNPS") else None
        if form:
            out[form[0]] = form[1]
    return out


def fit(doc, k: int, max_words: int, replace: dict[int, str] | None = None, relax: bool = True) -> str | None:
    """The best rendering of ``doc`` around token ``k`` with at most ``max_words`` words; None when
    no cut brings it under (``relax``: with the grammar rules dropped when nothing fits with them)."""
    replace = replace or {}
    text = render(doc, list(range(len(doc))), replace)
    if len(text.split()) <= max_words:
        return text
    doc = _repaired(doc)
    replace = {**_reduced_relatives(doc), **replace}
    bare = _bare_partitives(doc, k)
    # the word's clause; then the same without its partitive ("People riding skis across a snow
    # covered slope": the partitive's cheap words read well, and go only when the scene would);
    # then (when the parse hangs the word deep below the subject) smaller phrases that can stand
    # alone: "A woman sitting under an umbrella" from "A long table with ..."; the grammar rules
    # relaxed only when nothing fits with them
    tries = [(None, replace)] + ([(None, {**bare, **replace})] if bare else [])
    tries += [(t, replace) for t in reversed(_path_up(doc, k)[1:-1]) if _stands_alone(t)]
    stop = {len(doc) - 1} if doc[len(doc) - 1].text in ".!" else set()  # a full stop stays a full stop
    for strict in (True, False) if relax else (True,):
        for top, words in tries:
            keep, path = _core(doc, k, top)
            for kept in _choose(doc, keep - stop, path | {k}, max_words, words, strict):
                final = _tidy(doc, set(kept) | stop)
                text = render(doc, final, {**words, **_agreement(doc, final, words)})
                if len(text.split()) <= max_words:
                    return text
    return None


def word_tokens(doc, word: str) -> range | None:
    """The indices of ``word``'s first occurrence (case-insensitive): one token, or a compound's in a
    row ("fire hydrant", a salient word of two tokens)."""
    parts = word.lower().split()
    n = len(parts)
    return next((range(i, i + n) for i in range(len(doc) - n + 1)
                 if [t.text.lower() for t in doc[i : i + n]] == parts), None)


def token_index(doc, word: str) -> int | None:
    """The token a caption is cut around: ``word``'s, or a compound's last one, the head noun its
    phrase hangs on."""
    span = word_tokens(doc, word)
    return span[-1] if span else None


def shorten(caption: str, word: str, max_words: int) -> str | None:
    """``caption`` cut to at most ``max_words`` words around the first token equal to ``word``."""
    doc = parser()(caption)
    k = token_index(doc, word)
    return fit(doc, k, max_words) if k is not None else None

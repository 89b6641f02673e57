"""WordNet side of the lexical miner: senses, relation candidates per level, self/stem checks."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

from .. import lexicon
from .lexical_vocab import pos_profile, sense_count

MAX_SENSES = 6
# level 3 of a noun: the things WordNet defines through it (``defined_by``) relate at this strength, a part's;
# a word used in more definitions than DEFINED_HUB ("woman" 406, "wall" 270) at half of it
DEFINED_BY = 0.5
DEFINED_HUB = 60
COMMON_SENSE = 3  # SemCor uses that make an adjective sense one a reader takes from the word alone
# top-of-tree hypernyms and light verbs that say nothing about the word
GENERIC = {
    "entity", "physical entity", "abstraction", "object", "whole", "thing", "matter", "unit", "artifact",
    "artefact", "psychological feature", "attribute", "relation", "group", "measure", "causal agent",
    "cause", "agent", "be", "have", "do", "make", "get", "act", "move", "change", "take", "give", "go",
    "put", "set", "state", "condition", "part", "portion", "instrumentality", "instrumentation", "device",
    "organism", "being", "living thing", "person", "individual", "someone", "somebody", "mortal", "soul",
    "activity", "kind", "way", "going", "coming", "getting", "giving", "making", "doing", "having", "taking",
    "formation", "solid", "round", "piece", "place", "spot",
    # nouns in WordNet that read as function words in a caption
    "plus", "minus", "altogether", "despite", "whole", "lot", "bit", "nothing", "everything", "something",
    "anything", "none", "either", "neither", "yes", "no", "okay", "ok",
}


def gloss(s) -> str:
    """Text that stands for a sense when it is embedded: a few lemmas and the definition."""
    names = ", ".join(n.replace("_", " ") for n in s.lemma_names()[:4])
    return f"{names}: {' '.join(s.definition().split()[:25])}"


def senses(lemma: str, pos: str) -> list:
    """Senses with exactly this lemma, most frequent first (adjectives include satellites). Not a
    named instance (a person, a place, a river: "crane" the poet, "orange" the river): the caption's
    word is a common noun, and a name's relations are its biography."""
    wn = lexicon.wordnet()
    key = lemma.replace(" ", "_")
    pos_list = ("a", "s") if pos == "a" else (pos,)
    out = []
    for p in pos_list:
        out += [s for s in wn.synsets(key, pos=p) if s not in out and any(n.lower() == key for n in s.lemma_names())
                and not s.instance_hypernyms()]
    if pos == "a":
        out.sort(key=lambda s: -max(sense_count(lem) for lem in s.lemmas() if lem.name().lower() == key))
    return out[:MAX_SENSES]


@lru_cache(maxsize=50_000)
def names_below(s, depth: int = 3) -> frozenset[str]:
    """Lemma names of the sense and of its kinds down to ``depth`` steps ("lamppost" under the
    upright *post*, "checkpoint" under the *point* that is a place)."""
    out, frontier = {n.lower() for n in s.lemma_names()}, [s]
    for _ in range(depth):
        frontier = [h for x in frontier for h in x.hyponyms()]
        out.update(n.lower() for h in frontier for n in h.lemma_names())
    return frozenset(out)


GLOSS_INDEX_VERSION = 1


@lru_cache(maxsize=1)
def _gloss_index() -> dict[str, list[str]]:
    """Word -> the noun synsets whose definition uses it (Princeton WordNet's glosses, read as words).
    Built once (~7 s) and kept as JSON under the cache dir, keyed by WordNet's version."""
    import json

    from filelock import FileLock

    wn = lexicon.wordnet()
    path = lexicon.cache_dir() / "lexical" / f"gloss-index-{GLOSS_INDEX_VERSION}-{wn.get_version()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pass  # a damaged cache is rebuilt
        from tqdm import tqdm

        index: dict[str, list[str]] = {}
        for s in tqdm(list(wn.all_synsets("n")), desc="WordNet gloss index (one-time)", unit="synset", leave=False,
                      disable=os.environ.get("TQDM_DISABLE") == "1"):
            for w in set(re.findall(r"[a-z]+", s.definition().lower())):
                index.setdefault(w, []).append(s.name())
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(index), encoding="utf-8")
        tmp.replace(path)
        return index


@lru_cache(maxsize=20_000)
def defined_by(lemma: str) -> tuple:
    """Noun synsets whose definition names the word (or its plural): the things WordNet defines
    through it. For *elephant*: tusk, trunk, ivory, herd; *rocket*: booster, liftoff, payload;
    *lawn*: sprinkler, mower; *astronaut*: spacesuit, moonwalk. The "situation" of a thing, as
    extended-gloss measures use it (Banerjee & Pedersen 2003)."""
    if " " in lemma:
        return ()
    index, wn = _gloss_index(), lexicon.wordnet()
    found = {n for f in (lemma, lemma + "s", lemma + "es") for n in index.get(f, ())}
    return tuple(s for s in (wn.synset(n) for n in sorted(found)) if not s.instance_hypernyms())  # not Armstrong


def lemma_count(s, lemma: str) -> int:
    key = lemma.replace(" ", "_")
    return max((sense_count(lem) for lem in s.lemmas() if lem.name().lower() == key), default=0)


@lru_cache(maxsize=50_000)
def forms(lemma: str) -> frozenset[str]:
    """The lemma with all its inflections (and their lemmas): ride, rides, rode, ridden, riding."""
    from lemminflect import getAllInflections, getAllLemmas

    out = {lemma}
    for infl in getAllInflections(lemma).values():
        out.update(x.lower() for x in infl)
    for lem in getAllLemmas(lemma).values():
        out.update(x.lower() for x in lem)
    return frozenset(out)


@lru_cache(maxsize=1)
def _porter():
    from nltk.stem import PorterStemmer

    return PorterStemmer()


@lru_cache(maxsize=200_000)
def stem(w: str) -> str:
    return _porter().stem(w)


def looks_alike(cand: str, lemma: str) -> bool:
    """A spelling neighbour (ride/hide, tower/power): one edit away, two for words of 8+ letters.
    MiniLM's WordPiece vectors put such words close whatever they mean, so an embedding neighbour
    that WordNet does not relate to the word and that looks like it is noise, not an association."""
    from nltk.metrics.distance import edit_distance

    if abs(len(cand) - len(lemma)) > 2:
        return False
    return edit_distance(cand, lemma) <= max(1, len(lemma) // 4)


def same_word(cand: str, lemma: str, word_forms: frozenset[str]) -> bool:
    """Is ``cand`` the word, an inflection, or a same-stem word (dog/doggy, ride/rider, surfboard/board)?"""
    if cand in word_forms:
        return True
    for t in cand.split():
        if t in word_forms or stem(t) == stem(lemma):
            return True
        k = len(os.path.commonprefix([t, lemma]))
        if k >= min(len(lemma), 4) or (len(lemma) >= 4 and lemma in t) or (len(t) >= 4 and t in lemma):
            return True
        if lemma in t and lemma in _definition_words(t):
            return True  # a short word inside a compound defined by it: "infrared" (at the red end) for red
    return False


@lru_cache(maxsize=200_000)
def _definition_words(word: str) -> frozenset[str]:
    return frozenset(t for s in lexicon.wordnet().synsets(word.replace(" ", "_"))
                     for t in re.findall(r"[a-z]+", s.definition().lower()))


@dataclass
class Relations:
    by_level: dict[int, dict[str, float]]  # level -> candidate -> relation strength 0..1
    banned: set[str] = field(default_factory=set)  # antonyms; for adjectives also sister values ("blue" for red)
    ancestors: set[str] = field(default_factory=set)  # lemmas of all hypernyms of the chosen sense
    kin: set[str] = field(default_factory=set)  # lemmas of its hyponyms (2 deep) and sisters: same kind
    near_up: set = field(default_factory=set)  # synsets 1-3 steps above the chosen sense
    own: set = field(default_factory=set)  # the chosen sense itself

    def is_cousin(self, cand: str) -> bool:
        """Another kind under the same near ancestor (a knee for an elbow, a cap for a bonnet):
        a sister term, which is an alternative to the word rather than a near synonym of it."""
        if not self.near_up:
            return False
        for s, up in near_ancestors(cand):
            if self.near_up & up and s not in self.near_up and not up & self.own:
                return True  # shares a near ancestor, and is neither above nor below the word
        return False

    def home(self, cand: str) -> int | None:
        """The level among 1-3 whose relation claims ``cand`` most strongly (hypernym -> 2)."""
        best, lvl = 0.0, None
        for k in (1, 2, 3):
            w = self.by_level[k].get(cand, 0.0)
            if w > best:
                best, lvl = w, k
        return lvl


@lru_cache(maxsize=200_000)
def near_ancestors(cand: str) -> tuple:
    """(sense, its hypernyms 1-3 steps up) for the candidate's first three noun senses: asked for
    the same candidates ladder after ladder, so kept."""
    return tuple((s, frozenset(s.closure(lambda x: x.hypernyms() + x.instance_hypernyms(), depth=3)))
                 for s in lexicon.wordnet().synsets(cand.replace(" ", "_"), pos="n")[:3])


def names(synsets) -> set[str]:
    return {n.replace("_", " ").lower() for s in synsets for n in s.lemma_names()}


def relations(best, all_senses, sense_scores, pos: str, lemma: str = "") -> Relations:
    """WordNet candidates per level with a relation strength in 0..1."""
    rel: dict[int, dict[str, float]] = {k: {} for k in range(1, 6)}
    banned: set[str] = set()
    if best is None:
        return Relations(rel, banned)
    up = [lexicon.wordnet().synset(n) for n in _closure(best.name())]
    parents = best.hypernyms() + best.instance_hypernyms()
    down = list(best.closure(lambda x: x.hyponyms() + x.instance_hyponyms(), depth=2))
    kin_syns = down + [x for h in parents for x in h.hyponyms()]
    near_up = set(parents) | {g for h in parents for g in h.hypernyms()}
    near_up |= {g for h in near_up for g in h.hypernyms()}  # up to 3 steps: body part over elbow and knee

    def add(level, synsets, w):
        for n in names(synsets):
            if n not in GENERIC:
                rel[level][n] = max(rel[level].get(n, 0.0), w)

    add(1, [best], 1.0)
    top = max(sense_scores)
    add(1, [s for s, sc in zip(all_senses, sense_scores) if s != best and sc >= top - 0.03], 0.4)
    for s in all_senses[:4] if pos == "a" else [best]:
        heads = [s] + [x for x in s.similar_tos() if x.pos() == "a"]
        for h in heads + ([x for h in heads for x in h.also_sees()] if pos == "a" else []):
            for lem in h.lemmas():
                for ant in lem.antonyms():
                    banned |= names([ant.synset()]) | names(ant.synset().similar_tos())
                    if pos == "a":  # the other pole in any sense: "minor" (small) for tall, which sees large
                        banned |= names(_adj_synsets(ant.name()))
    if pos == "a":
        heads = [h for h in best.similar_tos() if h.pos() == "a"]  # satellite -> its head adjective
        add(1, [h for h in best.similar_tos() if h.pos() == "s"], 0.7)
        add(2, heads, 1.0)
        for h in heads:
            banned |= names([x for x in h.similar_tos() if x != best])
        add(2, best.also_sees(), 0.6)
        if lemma and is_colour(lemma):  # a hue's near words are its shades, its general one "colored"
            for n in names(x for h in _hue_nouns(lemma) for x in h.closure(lambda y: y.hyponyms(), depth=2)):
                prof = pos_profile(n)
                if n not in GENERIC and prof is not None and prof[1][2] >= 0.4:  # crimson for red, mostly an adjective
                    rel[1][n] = max(rel[1].get(n, 0.0), 0.6)
            add(2, [x for h in heads for x in h.also_sees() if x.pos() == "a"], 0.6)
    else:
        add(1, best.hyponyms(), 0.5)
        add(1, best.verb_groups(), 0.6)
        frontier, depth = [best], 0
        while frontier and depth < 8:
            depth += 1
            frontier = [h for s in frontier for h in s.hypernyms() + s.instance_hypernyms()]
            if depth <= 3:
                add(2, frontier, {1: 1.0, 2: 0.7, 3: 0.45}[depth])
            else:
                add(4, frontier, 0.4)
            if depth == 1:
                add(3, [x for h in frontier for x in h.hyponyms() if x != best], 0.25)  # sisters
        if pos == "v" and not parents:  # a verb at the top of its tree (look: perceive with attention):
            # its slight abstraction is what it entails (see) or what its group's members are kinds of
            add(2, best.entailments() + [h for g in best.verb_groups() for h in g.hypernyms()], 0.7)
        add(3, best.part_meronyms() + best.member_holonyms() + best.part_holonyms() + best.substance_meronyms(), 0.5)
        if pos == "n" and lemma:  # what WordNet defines through the word: its situation (a hub word's, less),
            # things of another kind (fur, purr, catnip for a cat; not a kitten or a Siamese, the cat's own kin)
            own = {best, *up, *kin_syns}
            defined = [x for x in defined_by(lemma) if x.lexname() != best.lexname() and x not in own]
            add(3, defined, DEFINED_BY if len(defined) <= DEFINED_HUB else DEFINED_BY / 2)
        add(3, best.entailments() + best.causes(), 0.5)
    add(3, best.topic_domains() + best.region_domains(), 0.5)
    add(4, best.topic_domains(), 0.4)
    for lem in best.lemmas():
        add(4, [d.synset() for d in lem.derivationally_related_forms()], 0.4)
    return Relations(rel, banned - set(rel[1]), names(up), names(kin_syns), near_up, {best})


def _adj_synsets(name: str) -> list:
    wn = lexicon.wordnet()
    return wn.synsets(name, pos="a") + wn.synsets(name, pos="s")


def _weights(word: str):
    """(synset, 1 + SemCor count) for each sense with exactly this lemma."""
    key = word.replace(" ", "_")
    for s in lexicon.wordnet().synsets(key):
        for lem in s.lemmas():
            if lem.name().lower() == key:
                yield s, 1.0 + sense_count(lem)


def is_field_sense(s) -> bool:
    """A branch of knowledge (sociology, botany, dynamics): below discipline.n.01 through
    cognition nouns only (acting and its roles hang below the performing arts through acts)."""
    if s.pos() != "n" or s.lexname() != "noun.cognition":
        return False
    top = lexicon.wordnet().synset("discipline.n.01")
    return any(top in path and all(x.lexname() == "noun.cognition" for x in path[path.index(top):])
               for path in s.hypernym_paths())


@lru_cache(maxsize=200_000)
def is_field(word: str) -> bool:
    """A word read as a field of study: over a third of its sense weight is one ("philosophy",
    "economics"). A caption frame gives no context to pick another sense, so "a sense of
    sociology" for people reads as the science; fields are associations only of fields."""
    w = list(_weights(word))
    total = sum(c for _, c in w)
    return total > 0 and sum(c for s, c in w if is_field_sense(s)) > total / 3


@lru_cache(maxsize=200_000)
def is_body_part(word: str) -> bool:
    """Some noun sense of the word (or of the lemma it inflects) is a body part: "pupil", "eyes"."""
    return any(s.lexname() == "noun.body" for s in lexicon.wordnet().synsets(word.replace(" ", "_"), pos="n"))


@lru_cache(maxsize=200_000)
def used_as_verb(word: str) -> bool:
    """SemCor has the word as a verb at least once. 830 of the miner's 2,815 verbs never were:
    nouns WordNet also lists as verbs ("canvas", "turtle", "concord", "ramp", "transit")."""
    return any(lemma_count(s, word) > 0 for s in lexicon.wordnet().synsets(word.replace(" ", "_"), pos="v"))


@lru_cache(maxsize=200_000)
def is_relational(word: str) -> bool:
    """Mainly a relational adjective (WordNet adj.pert: "optical" = of optics, "cultural"): it
    classifies a noun by what it pertains to, so it cannot stand for a quality word ("orange")."""
    w = [(s, c) for s, c in _weights(word) if s.pos() in "as"]
    total = sum(c for _, c in w)
    return total > 0 and sum(c for s, c in w if s.lexname() == "adj.pert") >= total / 2


# also what WordNet defines by reproductive roles or sex appeal: "gender" and "sexuality" (the same sense), "vamp"
# ("Sexuality:" for a woman on skis); not "either sex" (a child, cattle), which says nothing of sex
_SEXUAL = re.compile(r"\b(sexual(ly|ity)?|erotic|reproductive roles?|sex[ -]appeal|sex act)\b")


def _commonest(word: str, n: int = 2, pos: str | None = None) -> list:
    """The word's ``n`` senses with the most SemCor uses (of part of speech ``pos`` when given)."""
    return [s for s, _ in sorted(_weights(word), key=lambda x: -x[1]) if pos is None or s.pos() == pos][:n]


def _of_kind(senses, kinds: set[str]) -> bool:
    """One of the senses has one of the synsets named in ``kinds`` on a hypernym path."""
    return any(h.name() in kinds for s in senses for path in s.hypernym_paths() for h in path)


@lru_cache(maxsize=200_000)
def is_sexual(word: str) -> bool:
    """One of the word's two commonest senses is defined by sex ("randy", "sensual", "sexy"): felt
    words score high on interoception, and a photo of a child or an oven must never get them."""
    return any(_SEXUAL.search(s.definition()) for s in _commonest(word))


# WordNet kinds that name a stance on people: an ideology ("socialism", "fascism"), a doctrine
# ("nationalism", "pacifism"), a political system ("democracy") or a prejudice ("racism", "sexism").
# Over a photo of strangers ("Racism: A group of people riding horses down a road", from the 20k-word
# level-5 pool) such a title says something of the people that nothing in the image shows. So does a
# policy ("activism", "containment": "Activism: A red fire hydrant sitting on a sidewalk").
# (synsets, not lemmas: "policy" is also an insurance contract, "discrimination" also telling stimuli apart)
_STANCE_KINDS = {"political_orientation.n.01", "doctrine.n.01", "political_system.n.01", "bias.n.01",
                 "discrimination.n.01", "policy.n.01"}


@lru_cache(maxsize=200_000)
def is_stance(word: str) -> bool:
    """One of the word's two commonest senses is an ideology or doctrine, a political system, a policy or a prejudice."""
    return _of_kind(_commonest(word), _STANCE_KINDS)


# WordNet kinds of harm to a body or a life: an illness or injury ("concussion", "autism"), a symptom ("vertigo",
# "fever"), a misfortune ("accident"), a death. VADER rates few of them ("Concussion: An astronaut sits beside her
# helmet", from MiniLM's helmet), so beside the far levels' no-bad-mood rule (``lexical.GLOOM``) the miner asks
# WordNet too, from level 3 on, for nouns WordNet does not tie to the word.
_HARM_KINDS = {"pathological_state.n.01", "symptom.n.01", "misfortune.n.01", "death.n.01", "killing.n.02",
               "violence.n.01", "crime.n.01"}


@lru_cache(maxsize=200_000)
def is_harm(word: str) -> bool:
    """The word's commonest noun sense is an illness, injury, symptom, misfortune, death or crime (its others
    need not be: an "aura" is also a migraine's symptom, a "pity" also a misfortune)."""
    return _of_kind(_commonest(word, 1, pos="n"), _HARM_KINDS)


# an -ing noun is read as its verb when SemCor uses the verb at least this many times as often as the noun
# ("her facing", "her smiling", "Believing:", "Calling:"; not "building", "painting", "clothing", "railing")
VERB_READING = 10


@lru_cache(maxsize=200_000)
def reads_as_verb(word: str) -> bool:
    """An -ing form WordNet also lists as a noun that a reader takes for the verb: SemCor uses the verb
    ``VERB_READING`` times as often as the noun or more (+1 each: a noun it never saw needs 10 verb uses)."""
    if not word.endswith("ing") or " " in word:
        return False
    wn = lexicon.wordnet()
    base = wn.morphy(word, "v")
    if not base or base == word:
        return False
    noun = sum(lemma_count(s, word) for s in wn.synsets(word, pos="n"))
    verb = sum(lemma_count(s, base) for s in wn.synsets(base, pos="v"))
    return verb + 1 >= VERB_READING * (noun + 1)


@lru_cache(maxsize=200_000)
def predicative_only(word: str) -> bool:
    """The word cannot stand before a noun ("awake lights"), where a caption's adjective stands:
    WordNet marks every adjective sense of it predicative ("awake", "asleep") or its commonest one
    ("afraid", "aware": "afraid space" came from the far levels, whose felt words are often so), or
    half its sense weight needs a complement ("able", usually followed by 'to': "an able boy" reads
    as skilled at best, "an unable shirt" not at all)."""
    key = word.replace(" ", "_")
    marks = [lem.syntactic_marker() for s in _adj_synsets(key) for lem in s.lemmas() if lem.name().lower() == key]
    if marks and all(m == "(p)" for m in marks):
        return True
    w = [(s, c) for s, c in _weights(word) if s.pos() in "as"]
    top = max(w, key=lambda sc: sc[1], default=None)  # max keeps WordNet's order on ties
    if top is not None and any(lem.syntactic_marker() == "(p)" for lem in top[0].lemmas() if lem.name().lower() == key):
        return True
    total = sum(c for _, c in w)
    return total > 0 and sum(c for s, c in w if _COMPLEMENT.match(s.definition())) >= total / 2


_COMPLEMENT = re.compile(r"\((usually )?followed by")


@lru_cache(maxsize=200_000)
def _closure(name: str) -> frozenset[str]:
    s = lexicon.wordnet().synset(name)
    return frozenset(x.name() for x in s.closure(lambda x: x.hypernyms() + x.instance_hypernyms()))


_TOO_GENERAL = {
    "attribute.n.02", "property.n.02", "quality.n.01", "abstraction.n.06", "entity.n.01", "state.n.02",
    "condition.n.01", "state.n.01",
}
# colour in general: "bright" or "vivid" share it with orange but are no other hue
_ANY_COLOUR = {"color.n.01", "color_property.n.01", "visual_property.n.01"}


@lru_cache(maxsize=200_000)
def adj_family(word: str) -> frozenset[str]:
    """Noun concepts an adjective is a value of (red -> redness -> chromatic color -> color).

    Two adjectives sharing one are sister values of one attribute (red/blue, small/vast, wooden/
    plastic): alternatives, not associations."""
    wn = lexicon.wordnet()
    key = word.replace(" ", "_")
    nouns = []
    heads = set()
    for s in (wn.synsets(key, pos="a") + wn.synsets(key, pos="s"))[:3]:
        if s.pos() == "s":
            heads.update(h.name() for h in s.similar_tos())
            nouns += [a for h in s.similar_tos() for a in h.attributes()]  # tiny -> small -> size
        nouns += s.attributes()
        for lem in s.lemmas():
            if lem.name().lower() == key:
                nouns += [d.synset() for d in lem.derivationally_related_forms() if d.synset().pos() == "n"]
    out = set()
    for n in nouns:
        out.add(n.name())
        for h in n.hypernyms():
            out.add(h.name())
            out.update(x.name() for x in h.hypernyms())
    if is_colour(word):
        out.add("color.n.01")
    return frozenset((out - _TOO_GENERAL) | heads)


def sister_value(word: str, cand: str) -> bool:
    """``cand`` is another value of the attribute ``word`` is a value of (blue for red, vast for
    small): they share a family noun. Beside a colour every colour is one, however WordNet files
    it (white, auburn, silver), and sharing only colour in general makes no sister of a word that
    is no particular colour: "bright" and "vivid" say how any colour looks."""
    if is_hue(word) and (is_hue(cand) or cand.replace(" ", "_") in _colour_nouns()):
        return True  # two colours are alternatives however WordNet files them (white, auburn, silver)
    shared = adj_family(word) & adj_family(cand)
    if shared and shared <= _ANY_COLOUR and is_hue(word):
        return False
    return bool(shared)


@lru_cache(maxsize=200_000)
def is_hue(word: str) -> bool:
    """A particular colour: a value below color.n.01 (white, amber) or first glossed as one
    ("reddish", tinged with red); "bright", first of all luminous, is none."""
    below = _below_colour()
    if any(n in below for n in adj_family(word)):
        return True
    syns = _adj_synsets(word.replace(" ", "_"))[:1]
    return any(_HUE_GLOSS.search(s.definition()) for s in syns)


_USED_OF = re.compile(r"(?:^|; )used (?:especially |chiefly |mainly |mostly )?of (.+)$")  # not "(used of color) ..."


@lru_cache(maxsize=20_000)
def hues_of(cand: str) -> frozenset[str]:
    """The hues (stems) a colour word's gloss says it is used of: "warm", "used especially of reds
    and oranges and yellows"; empty when it names none. Beside black or blue, "warm" is the other pole."""
    out = set()
    for syn in _adj_synsets(cand.replace(" ", "_")):
        m = _USED_OF.search(syn.definition())
        if m:
            for t in re.findall(r"[a-z]+", m.group(1)):
                if is_hue(t) or (t.endswith("s") and is_hue(t[:-1])):
                    out.add(stem(t[:-1] if t.endswith("s") and not is_hue(t) else t))
    return frozenset(out)


@lru_cache(maxsize=1)
def _below_colour() -> frozenset[str]:
    color = lexicon.wordnet().synset("color.n.01")
    return frozenset(s.name() for s in color.closure(lambda x: x.hyponyms(), depth=6))


_HUE_GLOSS = re.compile(r"^(\([^)]*\) )?((of|having|resembling|being)( the| a| an)? ([a-z-]+ ){0,3}colou?r|colou?red)|tinged with|of the colou?r")


@lru_cache(maxsize=200_000)
def is_colour(word: str) -> bool:
    """A hue adjective: a colour noun's lemma (white, orange, indigo) or glossed as one (reddish);
    not "bright" or "vivid", which describe any colour."""
    wn = lexicon.wordnet()
    key = word.replace(" ", "_")
    if key in _colour_nouns():
        return True
    syns = (wn.synsets(key, pos="a") + wn.synsets(key, pos="s"))[:1]  # "bright" is first luminous
    return any(_HUE_GLOSS.search(s.definition()) for s in syns)


@lru_cache(maxsize=1)
def _colour_nouns() -> frozenset[str]:
    color = lexicon.wordnet().synset("color.n.01")
    return frozenset(n.lower() for s in color.closure(lambda x: x.hyponyms(), depth=5) for n in s.lemma_names())


def _hue_nouns(word: str) -> list:
    """The colour-noun senses of a hue adjective (orange -> orange.n.02), whose hyponyms are its shades."""
    color = lexicon.wordnet().synset("color.n.01")
    return [s for s in lexicon.wordnet().synsets(word.replace(" ", "_"), pos="n")
            if color in s.closure(lambda x: x.hypernyms(), depth=6)]


def attribute_words(best, lemma: str) -> frozenset[str]:
    """Names of the attribute an adjective sense is a value of (orange -> hue, color; wide ->
    width; bright -> luminosity): its WordNet attribute nouns, its head's, its own
    nominalisations, and "color" for a hue, each by the names that mean it first ("light" names
    luminosity too, but read alone it is radiation, and "infrared" is glossed by it), not by
    hypernyms. Empty for an adjective that names no measurable property (wide-eyed, crowded)."""
    if best is None or best.pos() not in "as":
        return frozenset()
    key = lemma.replace(" ", "_")
    nouns = list(best.attributes())
    nouns += [a for h in best.similar_tos() if h.pos() == "a" for a in h.attributes()]
    nouns += [d.synset() for lem in best.lemmas() if lem.name().lower() == key
              for d in lem.derivationally_related_forms() if d.synset().pos() == "n"]
    if not nouns:
        return frozenset()
    if is_colour(lemma):
        nouns.append(lexicon.wordnet().synset("color.n.01"))
    wn = lexicon.wordnet()
    out = {w for n in nouns if n.name() not in _TOO_GENERAL for w in names([n])
           if " " not in w and len(w) >= 4 and w not in GENERIC and n in wn.synsets(w, pos="n")[:2]}
    return frozenset(stem(w) for w in out) - {stem(lemma)}  # a gloss naming the word is no attribute


@lru_cache(maxsize=200_000)
def speaks_of(cand: str, attribute: frozenset[str]) -> bool:
    """``cand`` is defined by the attribute in a third of its adjective sense weight (1 + SemCor
    count per sense) or in a sense readers meet (``COMMON_SENSE`` SemCor uses: "bright", having
    striking color; "warm", of reds and oranges), so it stays on that property; "striped", marked
    with stripes, is a value of another one, the pattern. A rare sense does not count: "noisy"
    has one of loud colours, "cold" one of blues."""
    if not attribute:
        return False
    w = [(s, c) for s, c in _weights(cand) if s.pos() in "as"]
    on = [c for s, c in w if attribute & _def_stems(s.name())]
    return bool(on) and (sum(on) >= sum(c for _, c in w) / 3 or max(on) >= 1 + COMMON_SENSE)


@lru_cache(maxsize=200_000)
def _def_stems(name: str) -> frozenset[str]:
    return frozenset(stem(t) for t in re.findall(r"[a-z]+", lexicon.wordnet().synset(name).definition().lower()))


@lru_cache(maxsize=1)
def _hyponym_counts() -> dict[int, int]:
    """Noun synset offset -> how many synsets lie below it (hyponyms and instances, transitively),
    for all of WordNet at once from its noun data file (half a second): a closure through the
    reader builds a synset object for every node below, 40k of them for "abstraction"."""
    below: dict[int, list[int]] = {}
    with open(lexicon.wordnet().abspath("data.noun"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):
                continue  # the licence header
            t = line.split(" | ", 1)[0].split()
            k = 4 + 2 * int(t[3], 16)  # offset, lex file, type, word count, then (word, lex id) pairs
            below[int(t[0])] = [int(t[k + 2 + 4 * j]) for j in range(int(t[k]))
                                if t[k + 1 + 4 * j] in ("~", "~i") and t[k + 3 + 4 * j] == "n"]
    memo: dict[int, set[int]] = {}

    def desc(o: int) -> set[int]:
        if o not in memo:
            kids = below.get(o, ())
            if len(kids) == 1:  # a chain shares its child's set plus the child
                out = desc(kids[0]) | {kids[0]}
            else:
                out = set(kids)
                for h in kids:
                    out |= desc(h)
            memo[o] = out
        return memo[o]

    return {o: len(desc(o)) for o in below}  # recursion is as deep as the tree: under 20 levels


@lru_cache(maxsize=200_000)
def synset_ic(s) -> float:
    """Intrinsic information content of a noun synset (Seco, Veale & Hayes 2004): 1 - log(1 +
    number of synsets below it) / log(number of noun synsets). A leaf is 1, entity 0: a concept
    with many kinds below it says little about any one thing."""
    counts = _hyponym_counts()
    return 1.0 - math.log1p(counts.get(s.offset(), 0)) / math.log(len(counts))


@lru_cache(maxsize=200_000)
def noun_ic(word: str) -> float | None:
    """A noun's intrinsic information content as a reader takes it: its senses' IC weighted by
    1 + SemCor count (so "trait", one general sense, 0.45; "idea", a hub sense read 152 times,
    0.47; "curiosity" 0.76; "mystery" 1.0). None when the word has no noun sense."""
    w = [(s, c) for s, c in _weights(word) if s.pos() == "n"]
    total = sum(c for _, c in w)
    return sum(c * synset_ic(s) for s, c in w) / total if total else None


@lru_cache(maxsize=100_000)
def same_thing(a: str, b: str) -> bool:
    """Two nouns that can name the same thing in a photo: equal, synonyms in one of their three
    commonest senses, or one a direct kind of the other ("motorcycle"/"bike")."""
    if a == b:
        return True
    wn = lexicon.wordnet()
    sa, sb = set(wn.synsets(a, pos="n")[:3]), set(wn.synsets(b, pos="n")[:3])
    if sa & sb:
        return True
    return any(h in sb for s in sa for h in s.hypernyms()) or any(h in sa for s in sb for h in s.hypernyms())

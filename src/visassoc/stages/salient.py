"""Stage 2: salient words of one short human caption, most concrete first.

Paper: NOUN/VERB/ADJ, not stopwords, lemmatised, ranked by Brysbaert concreteness, top 5.
We tag with ``nlp.pipe`` in batches (parser and NER disabled), lemmatise with WordNet
using the POS (lemminflect, then spaCy as fallbacks), and keep words without a rating
*after* all rated words (they are rare; dropping them would leave some captions empty).
A caption the tagger finds no verb in is parsed too (``shorten.tag_texts``), so that
``shorten.verb_read_as_noun`` can repair the small model's commonest misreading: "A photographer films on a grassy field",
"An orange dahlia blooms against dark green leaves" read as noun phrases, which made "films" and
"blooms" salient nouns (the ladders "movie, cinema", "sparkle, botanical" over a verb's slot).
A two-word compound that names a thing ("fire hydrant", "hot dog", "skate board") is one salient word (``compound_lemma``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..lexicon import concreteness, ensure_wordnet, spacy_nlp, wordnet
from ..records import ErrorRecord, SalientRecord, to_row
from ..seeding import item_rng
from ..text import word_count

VERSION = "salient-6"  # 2: a lemma both lemminflect and spaCy give wins ("leaves" -> leaf); 3: verbs read as nouns repaired; 4: colours read as nouns repaired; 5: a compound that names a thing is one word (6: also one written in two for one word: "skate board")
# WordNet's kinds of a compound noun that names a thing seen in a photo ("fire hydrant", "hot dog", "traffic
# light"): the compound is one salient word (``compound_lemma``)
THING_LEXNAMES = frozenset({"noun.artifact", "noun.food", "noun.object", "noun.plant", "noun.animal",
                            "noun.substance", "noun.body", "noun.communication"})
CONTENT_POS = ("NOUN", "VERB", "ADJ")
_WN_POS = {"NOUN": "n", "VERB": "v", "ADJ": "a"}


@dataclass
class SalientConfig:
    top_k: int = 5
    max_words: int = 10  # prefer short captions: creative captions must stay under this length
    batch_size: int = 256
    rule: str = "visassoc"  # or "paper": the authors' caption choice and ranking (paper_salient_from_doc)


def choose_caption(image_id: str, captions: list[str], seed: int, max_words: int) -> tuple[int, str]:
    """A seeded choice among the captions with room to spare under ``max_words`` (associations
    can be multi-word), else among those that fit, else the shortest one."""
    if not captions:
        raise ValueError("no captions")
    short = [i for i, c in enumerate(captions) if word_count(c) <= max_words - 2]
    short = short or [i for i, c in enumerate(captions) if word_count(c) <= max_words]
    if short:
        i = item_rng(seed, "caption", image_id).choice(short)
    else:
        i = min(range(len(captions)), key=lambda j: (word_count(captions[j]), j))
    return i, captions[i]


@lru_cache(maxsize=1)
def _wordnet_lemmatizer():
    ensure_wordnet()
    from nltk.stem import WordNetLemmatizer

    return WordNetLemmatizer()


@lru_cache(maxsize=200_000)
def lemmatize(word: str, pos: str, spacy_lemma: str | None = None) -> str:
    """POS-aware lemma from WordNet's morphy; where morphy is ambiguous ("riding" -> rid/ride)
    the candidate lemminflect or spaCy agree on wins, first one both give ("leaves": lemminflect
    gives leave and leaf, spaCy leaf, so not "leave", a holiday); words WordNet lacks use lemminflect."""
    from lemminflect import getLemma
    from nltk.corpus import wordnet as wn

    _wordnet_lemmatizer()
    w = word.lower()
    candidates = wn._morphy(w, _WN_POS[pos])
    inflected = [c.lower() for c in getLemma(w, upos=pos)]
    spacy = [spacy_lemma.lower()] if spacy_lemma else []
    for c in [c for c in inflected if c in spacy] + inflected + spacy:
        if c in candidates:
            return c
    if candidates:
        return w if w in candidates else candidates[0]
    others = inflected + spacy
    return others[0] if others else w


@lru_cache(maxsize=50_000)
def _compound_kinds(compound: str) -> frozenset[str]:
    """The lexicographer files of WordNet's noun senses named ``compound`` exactly ("fire_hydrant",
    "skateboard"); empty if none."""
    return frozenset(s.lexname() for s in wordnet().synsets(compound, "n")
                     if any(n.lower() == compound for n in s.lemma_names()))


def _noun_after(tok):
    """The next token if it is a word that may head a compound, whatever its tag: the small tagger
    reads "hydrant" in "a green fire hydrant next to a field" as an adverb; WordNet's compound list decides."""
    nxt = tok.nbor(1) if tok.i + 1 < len(tok.doc) else None
    return nxt if nxt is not None and nxt.is_alpha and not nxt.is_stop else None


def compound_lemma(tok) -> str | None:
    """The lemma of the two-word compound ``tok`` starts when WordNet lists it as a thing ("fire hydrant",
    "hot dog", "parking meter", "traffic light"), or of the one word two nouns are often written for
    ("skate board", "bath tub", "cell phone": "skateboard", "bathtub", "cellphone"); else None. The
    compound names one thing, so it is one salient word: either word alone names nothing in the photo,
    and in the word's slot alone it breaks the compound ("A red inferno hydrant", "a hot puppy cake", "a
    parking mill", "a hot tub tub"). Compounds that name a person, an event or a time are left as words
    ("a baseball player" for a tennis player reads well), and so is a first word whose next one starts a
    compound of its own ("red" in "a red fire hydrant"), and an adjective that means what it says there
    (``_literal``; "a dark room" is no darkroom)."""
    nxt = _noun_after(tok)
    if tok.pos_ not in ("NOUN", "ADJ") or nxt is None:
        return None
    after = _noun_after(nxt)
    if after is not None and _compound_kinds(f"{nxt.lower_}_{lemmatize(after.text, 'NOUN', after.lemma_)}"):
        return None
    head = lemmatize(nxt.text, "NOUN", nxt.lemma_)
    pair = f"{tok.lower_}_{head}"
    if _compound_kinds(pair) & THING_LEXNAMES:
        return None if tok.pos_ == "ADJ" and _literal(tok.lower_, pair, head) else pair.replace("_", " ")
    if tok.pos_ == "NOUN" and _compound_kinds(tok.lower_ + head) & THING_LEXNAMES:
        return tok.lower_ + head
    return None


@lru_cache(maxsize=50_000)
def _literal(adjective: str, compound: str, head: str) -> bool:
    """True when an adjective before a noun says what it says of the thing, though WordNet lists the pair
    as a compound: a colour or a size ("a black cat" is a cat that is black, not WordNet's black cat, a
    marten; "a big cat" is no lion), or a compound that is a kind of its head ("barbed wire" is wire).
    "Hot dog", "hot chocolate", "french fries" are none of these."""
    from .lexical_wordnet import names, near_ancestors
    from .shorten import BASIC_COLOURS

    adj = wordnet().synsets(adjective, "a")
    if adjective in BASIC_COLOURS or (adj and any(a.name() == "size.n.01" for a in adj[0].attributes())):
        return True
    return any(head in names(up) for _, up in near_ancestors(compound))


def salient_from_doc(image_id: str, caption_id: int, caption: str, doc, top_k: int) -> list[SalientRecord]:
    seen: set[str] = set()
    found = []
    heads: set[int] = set()  # the second tokens of compounds taken whole
    for tok in doc:
        if tok.i in heads or tok.pos_ not in CONTENT_POS or tok.is_stop or not tok.is_alpha or len(tok.text) < 2:
            continue
        lemma = compound_lemma(tok)
        if lemma is not None:  # one word of two tokens: "fire hydrant", rated as written, else as its head
            head = tok.nbor(1)
            heads.add(head.i)
            word, pos = f"{tok.text.lower()} {head.text.lower()}", "NOUN"
            conc = concreteness(lemma) or concreteness(lemmatize(head.text, "NOUN", head.lemma_))
        else:
            word, lemma, pos = tok.text.lower(), lemmatize(tok.text, tok.pos_, tok.lemma_), tok.pos_
            conc = concreteness(lemma)
        if lemma in seen:
            continue
        seen.add(lemma)
        found.append((tok.i, word, lemma, pos, conc))
    # most concrete first; unrated after rated; ties keep caption order
    found.sort(key=lambda f: (f[4] is None, -(f[4] or 0.0), f[0]))
    return [
        SalientRecord(image_id, caption_id, caption, word, lemma, pos, conc, rank)
        for rank, (_, word, lemma, pos, conc) in enumerate(found[:top_k])
    ]


def paper_salient_from_doc(image_id: str, caption_id: int, caption: str, doc, top_k: int) -> list[SalientRecord]:
    """The authors' rule: NOUN/VERB/ADJ tokens that are not stop words (of the lowercased caption),
    each word once, rated by the Brysbaert concreteness of its WordNet lemma taken as a noun
    (WordNetLemmatizer's default), unrated words dropped, most concrete first, top ``top_k``.
    The word is the token as written; ties keep caption order (theirs iterate a set)."""
    lem = _wordnet_lemmatizer()
    found, seen = [], set()
    for tok in doc:
        if tok.pos_ not in CONTENT_POS or tok.is_stop or tok.text in seen:
            continue
        seen.add(tok.text)
        lemma = lem.lemmatize(tok.text)
        conc = concreteness(lemma)
        if conc is not None:
            found.append((tok.i, tok.text, lemma, tok.pos_, conc))
    found.sort(key=lambda f: (-f[4], f[0]))
    return [SalientRecord(image_id, caption_id, caption, word, lemma, pos, conc, rank)
            for rank, (_, word, lemma, pos, conc) in enumerate(found[:top_k])]


def extract_salient(
    items: list[tuple[str, int, str]], config: SalientConfig = SalientConfig()
) -> dict[str, list[SalientRecord]]:
    """``items`` are (image_id, caption_id, caption); returns image_id -> ranked salient words."""
    out: dict[str, list[SalientRecord]] = {}
    texts = [c for _, _, c in items]
    if config.rule == "paper":  # the authors' rule takes the tagger as it is
        pick, docs = paper_salient_from_doc, spacy_nlp().pipe(texts, batch_size=config.batch_size)
    else:
        from .shorten import tag_texts

        pick, docs = salient_from_doc, tag_texts(texts, config.batch_size)
    for (image_id, cid, caption), doc in zip(items, docs):
        out[image_id] = pick(image_id, cid, caption, doc, config.top_k)
    return out


def run_chunk(cfg, impl, chunk, up, items):
    """Salient words of one short caption (a VLM's literal caption if there is no human one)."""
    images, descs = up["images"], up["descriptions"]
    todo, errs = [], []
    for i in chunk:
        short = descs[i][0].get("short_caption")
        caps = images[i][0]["captions"] or ([short] if short else [])
        if not caps:
            errs.append(to_row(ErrorRecord("salient", i, None, None, "no caption to take salient words from")))
            continue
        if cfg.salient_rule == "paper":  # any of the captions, uniformly (seeded), lowercased
            cid = item_rng(cfg.seed, "caption", i).randrange(len(caps))
            cap = caps[cid].lower()
        else:
            cid, cap = choose_caption(i, caps, cfg.seed, cfg.max_words)
        todo.append((i, cid, cap))
    rows = []
    chosen = {i: c for i, _, c in todo}
    conf = SalientConfig(top_k=cfg.top_k, max_words=cfg.max_words, rule=cfg.salient_rule)
    for i, recs in extract_salient(todo, conf).items():
        if not recs:
            errs.append(to_row(ErrorRecord("salient", i, None, None, f"no salient NOUN/VERB/ADJ in caption {chosen[i]!r}")))
        rows.extend(to_row(r) for r in recs)
    return {"salient": rows, "errors": errs}

"""Short captions from long ones, around one word, from spaCy's dependency parse.

Most real collections have one human caption per image, and half of COCO's are over ten words.
Rather than reject those, the substitution writer keeps the clause that holds the salient word:
its subject, its verb and the phrase with the word, dropping extra clauses, list items and
trailing modifiers, in steps (``PRUNE``), until the caption fits. The word's *path* to the
sentence root is never dropped. When the word is one item of a list ("plates, forks and cups")
or the second of two verbs ("sits and reads a book"), it takes its head item's place (the head
item's subject stays), so the result is still a sentence: "A table with forks", "A man reads a
book". A caption no step brings under the limit is returned as None and the writer reports it.
"""
from __future__ import annotations

from functools import lru_cache

from ..lexicon import SPACY_MODEL

# dependents dropped at each step, unless on the word's path to the root; within a step the
# rightmost first (trailing modifiers go before the ones near the subject)
PRUNE = (
    ("conj", "cc", "advcl", "relcl", "ccomp", "parataxis", "dep", "appos", "preconj", "meta"),
    ("prep", "advmod", "npadvmod", "agent", "mark", "intj"),
    ("acl", "xcomp", "amod", "compound", "nummod", "quantmod", "nmod"),  # "her" helmet stays: a determiner
    ("dobj", "attr", "dative", "oprd", "acomp", "pcomp", "pobj", "prt"),
)
DANGLING = ("CC", "IN", "DT", "TO", "WDT", "WRB", "PRP$", "POS", "HYPH", ",")
LIST_DEPS = ("conj", "appos")  # the word replaces its head item in a list or a pair of verbs
SUBJECT_DEPS = ("nsubj", "nsubjpass", "expl", "aux", "auxpass", "neg")
CLAUSE_DEPS = ("advcl", "ccomp", "parataxis", "conj")  # a clause that can stand alone if it has a subject


@lru_cache(maxsize=1)
def parser():
    """spaCy with its dependency parser (``lexicon.spacy_nlp`` turns it off for speed)."""
    import spacy

    return spacy.load(SPACY_MODEL, disable=["ner"])


def _subtree(t, within: set[int]) -> set[int]:
    return {x.i for x in t.subtree} & within


def _stands_alone(t) -> bool:
    """A clause with its own subject, or a noun phrase with a determiner ("a woman sitting under ...")."""
    if t.pos_ in ("VERB", "AUX"):
        return any(c.dep_ in ("nsubj", "nsubjpass") for c in t.children)
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
    for x in path:
        if x.dep_ in LIST_DEPS and x.i != top.i and x.head.i in keep:
            h = x.head  # the word's item replaces the list head: drop the head and its other items
            keep -= {h.i} | {i for c in h.children if c.i not in route and c.dep_ not in SUBJECT_DEPS
                              for i in _subtree(c, keep)}
            onpath.discard(h.i)
    for c in top.children:  # the clause's own connective ("while") goes with the rest of the sentence
        if c.dep_ in ("mark", "cc", "preconj") and c.i not in onpath:
            keep -= _subtree(c, keep)
    return keep, onpath


def _tidy(doc, keep: set[int]) -> list[int]:
    """Kept tokens minus dangling conjunctions and punctuation, in order."""
    out = []
    for i in sorted(keep):
        t = doc[i]
        if t.dep_ in ("cc", "preconj") and not any(c.dep_ == "conj" and c.i > i and c.i in keep for c in t.head.children):
            continue
        if t.is_punct and not ((i - 1 in keep and i + 1 in keep) or (i == len(doc) - 1 and t.text in ".!")):
            continue
        out.append(i)
    # nothing dangles at the end: "A dog wears a tie while" -> "A dog wears a tie"
    end = [i for i in out if doc[i].is_punct and i == len(doc) - 1]
    body = [i for i in out if i not in end]
    while body and doc[body[-1]].tag_ in DANGLING:
        body.pop()
    return body + end


def render(doc, keep: list[int], replace: dict[int, str] | None = None) -> str:
    """The kept tokens as text, with ``replace`` (index -> new text) applied; first letter as the caption's."""
    from ..text import indefinite_article

    replace = replace or {}
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


def fit(doc, k: int, max_words: int, replace: dict[int, str] | None = None) -> tuple[str, int] | None:
    """The least-pruned rendering of ``doc`` around token ``k`` with at most ``max_words`` words,
    and the number of cuts made (0 = unchanged); None when nothing left to cut brings it under."""
    text = render(doc, list(range(len(doc))), replace)
    if len(text.split()) <= max_words:
        return text, 0
    # the word's clause, then (when the parse hangs the word deep below the subject) smaller
    # phrases that can stand alone: "A woman sitting under an umbrella" from "A long table with ..."
    tops = [None] + [t for t in reversed(_path_up(doc, k)[1:-1]) if _stands_alone(t)]
    cuts = 1
    for top in tops:
        keep, path = _core(doc, k, top)
        if doc[len(doc) - 1].text in ".!":  # a full stop stays a full stop
            keep.add(len(doc) - 1)
        text = render(doc, _tidy(doc, keep), replace)
        if len(text.split()) <= max_words:
            return text, cuts
        for deps in PRUNE:
            for t in sorted((doc[i] for i in keep), key=lambda x: -x.i):
                h = t.head  # cut a modifier with its head modifier ("next to a plate"), not leaving "next"
                if t.i in keep and t.i not in path and t.dep_ in deps and not (h.dep_ in deps and h.i in keep and h.i not in path):
                    keep -= _subtree(t, keep)
                    cuts += 1
                    text = render(doc, _tidy(doc, keep), replace)
                    if len(text.split()) <= max_words:
                        return text, cuts
    return None


def shorten(caption: str, word: str, max_words: int) -> str | None:
    """``caption`` cut to at most ``max_words`` words around the first token equal to ``word``."""
    doc = parser()(caption)
    for t in doc:
        if t.text.lower() == word.lower():
            res = fit(doc, t.i, max_words)
            return res[0] if res else None
    return None

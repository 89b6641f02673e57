"""Word-level text helpers: inflection, articles, caption validation.

Substituting an association into a caption must keep it grammatical (``a dog`` ->
``an animal``, ``dogs`` -> ``animals``, ``riding`` -> ``travelling``), and validation must
recognise the association in any inflection without substring accidents ("man" in "woman").
"""
from __future__ import annotations

import re
from functools import lru_cache

WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")  # digits count: "hound2" is not "hound1"

# Words whose first letter misleads the a/an choice.
_AN_EXCEPTIONS = ("hour", "honest", "honor", "honour", "heir", "herb")
_A_EXCEPTIONS = ("uni", "use", "usu", "uti", "ure", "eu", "ewe", "one", "once", "ufo", "u-")


def indefinite_article(phrase: str) -> str:
    w = phrase.strip().lower()
    if not w:
        return "a"
    if w.startswith(_AN_EXCEPTIONS):
        return "an"
    if w.startswith(_A_EXCEPTIONS):
        return "a"
    return "an" if w[0] in "aeiou" else "a"


def words(text: str) -> list[str]:
    return WORD_RE.findall(text)


@lru_cache(maxsize=100_000)
def inflections(word: str) -> frozenset[str]:
    """All inflected forms of ``word`` (every POS), lowercase, the word itself included."""
    from lemminflect import getAllInflections, getAllLemmas, getInflection

    w = word.lower()
    forms = {w}
    lemmas = {w}
    for tup in getAllLemmas(w).values():
        lemmas.update(tup)
    for lemma in lemmas:
        forms.add(lemma)
        for tup in getAllInflections(lemma).values():
            forms.update(f.lower() for f in tup)
        for tup in getAllInflections(lemma, upos="NOUN").values():
            forms.update(f.lower() for f in tup)
        for tag in ("NNS", "VBZ", "VBD", "VBG", "VBN", "JJR", "JJS"):  # regular forms of unknown words
            forms.update(f.lower() for f in getInflection(lemma, tag=tag, inflect_oov=True))
    return frozenset(forms)


def contains_term(text: str, term: str) -> bool:
    """True when ``term`` (one or more words) occurs in ``text`` as whole words, any inflection
    of its head word (the last word of a multi-word term; any word for a single word)."""
    toks = [t.lower() for t in words(text)]
    parts = [p.lower() for p in words(term)]
    if not parts:
        return False
    n = len(parts)
    head_forms = inflections(parts[-1])
    first_forms = inflections(parts[0]) if n > 1 else head_forms
    for i in range(len(toks) - n + 1):
        window = toks[i : i + n]
        if window == parts:
            return True
        if window[:-1] == parts[:-1] and window[-1] in head_forms:
            return True
        if n > 1 and window[0] in first_forms and window[1:] == parts[1:]:  # "riding along" style
            return True
    return False


def plural_noun(word: str) -> bool:
    """True when ``word`` is already the plural of another noun lemma ("men" of man, "greens" of green,
    "earbuds" by lemminflect's rules for words it does not list): associations are dictionary words, and
    WordNet lists some in the plural (men, greens, cows). Its irregular plurals that lemminflect does
    not know ("oxen", "kine") still get an -s."""
    from lemminflect import getAllLemmas, getInflection, getLemma

    w = word.lower()
    lemmas = getAllLemmas(w, upos="NOUN").get("NOUN", ()) or getLemma(w, upos="NOUN", lemmatize_oov=True)  # "earbuds"
    return any(lemma != w and w in getInflection(lemma, tag="NNS") for lemma in lemmas)


def inflect(lemma: str, tag: str) -> str:
    """Inflect ``lemma`` (possibly multi-word) to the Penn tag of the word it replaces."""
    from lemminflect import getInflection

    parts = lemma.split()
    if not parts:
        return lemma
    idx = 0 if tag.startswith("VB") and len(parts) > 1 else len(parts) - 1
    target = parts[idx]
    if tag in ("NN", "NNP", "VB", "JJ"):  # base forms
        return lemma
    if tag in ("JJR", "JJS"):  # lemminflect's rules would write "substantialer": only a listed form,
        form = getInflection(target, tag=tag, inflect_oov=False)  # else the periphrastic one
        parts[idx] = form[0] if form else ("more " if tag == "JJR" else "most ") + target
        return " ".join(parts)
    if tag == "NNS" and plural_noun(target):  # "men", "greens", "cows": lemminflect would add an -s
        return lemma
    form = getInflection(target, tag=tag)
    if not form and tag.startswith("NN"):
        form = getInflection(target, tag=tag, inflect_oov=True)
    if not form and tag.startswith("VB"):
        form = getInflection(target, tag=tag, inflect_oov=True)
    if form:
        parts[idx] = form[0]
    return " ".join(parts)


def word_count(text: str) -> int:
    return len(text.split())


def validate_caption(caption: str, association: str, short_caption: str, min_words: int = 1, max_words: int = 10) -> str | None:
    """None when valid, else the reason (one short phrase)."""
    if not caption or not caption.strip():
        return "empty caption"
    from visassoc.untrusted import unsafe_reason

    if unsafe := unsafe_reason(caption):  # markup, control or bidi characters
        return unsafe
    n = word_count(caption)
    if n < min_words:
        return f"too short ({n} words < {min_words})"
    if n > max_words:
        return f"too long ({n} words > {max_words})"
    if not contains_term(caption, association):
        return f"does not contain the association {association!r}"
    norm = lambda s: " ".join(w.lower() for w in words(s))  # noqa: E731
    if norm(caption) == norm(short_caption):
        return "identical to the short caption"
    return None

"""Stage 4 offline default: a creative caption by substituting the association for the word.

The caption stays grounded by construction (it is the human caption with one word swapped),
the association is inflected like the word it replaces (dogs -> animals, riding -> travelling)
and a preceding a/an is fixed. ``feedback`` from a re-ask cannot change a deterministic
rewrite, so the runner stops re-asking when the answer repeats.
"""
from __future__ import annotations

from functools import lru_cache

from ..lexicon import spacy_nlp
from ..text import indefinite_article, inflect
from .interfaces import CaptionRequest, StageError


@lru_cache(maxsize=50_000)
def _parse(caption: str):
    return [(t.text, t.tag_, t.whitespace_, t.i) for t in spacy_nlp()(caption)]


def substitute(caption: str, word: str, association: str) -> str | None:
    """Replace the first token equal to ``word`` (case-insensitive); None if it is not there."""
    toks = _parse(caption)
    for k, (text, tag, _, _) in enumerate(toks):
        if text.lower() != word.lower():
            continue
        new = inflect(association, tag)
        if text[:1].isupper():
            new = new[:1].upper() + new[1:]
        pieces = [list(t) for t in toks]
        pieces[k][0] = new
        if k > 0 and pieces[k - 1][0].lower() in ("a", "an") and tag in ("NN", "NNP", "JJ", "JJR", "JJS", "VBG", "VBN"):
            art = indefinite_article(new)
            prev = pieces[k - 1][0]
            pieces[k - 1][0] = art.capitalize() if prev[:1].isupper() else art
        return "".join(p[0] + p[2] for p in pieces).strip()
    return None


class SubstitutionWriter:
    name = "substitute"
    model = None

    def write(self, requests: list[CaptionRequest]) -> list[str | StageError]:
        out: list[str | StageError] = []
        for r in requests:
            cap = substitute(r.caption, r.word, r.association)
            out.append(cap if cap is not None else StageError(f"word {r.word!r} not found in the caption {r.caption!r}"))
        return out

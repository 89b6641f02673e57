"""The substitution caption writer on real spaCy parses: shortening, grammatical slots, fallbacks, frames."""
from __future__ import annotations

from visassoc.stages.interfaces import CaptionRequest, StageError
from visassoc.stages.shorten import shorten
from visassoc.stages.substitute import SubstitutionWriter, check, substitute, substitution
from visassoc.stages.shorten import parser
from visassoc.text import validate_caption

LONG = "A man sitting on a bench next to a dog and reading a newspaper in the park."


def _req(caption, word, pos, level, association, left=0):
    return CaptionRequest("img", "img.jpg", word, pos, caption, caption, level, association, alternatives_left=left)


def test_long_caption_keeps_the_words_clause():
    out = shorten(LONG, "newspaper", 6)
    assert out == "A man reading a newspaper."
    assert shorten(LONG, "man", 6).startswith("A man sitting")
    assert shorten("A dog.", "dog", 10) == "A dog."  # short enough: unchanged


def test_multi_clause_caption_keeps_the_clause_with_the_word():
    out = shorten("Two men are standing in a kitchen while one of them cooks food on the stove.", "stove", 7)
    assert out is not None and "stove" in out and "while" not in out and len(out.split()) <= 7
    assert out == "One of them cooks on the stove."  # "one of them" stays whole; "cook" needs no object


def test_list_caption_keeps_the_words_item():
    cap = "A kitchen with white cabinets, a stove, a sink, a refrigerator and a window over the counter"
    assert shorten(cap, "refrigerator", 8) == "A kitchen with a refrigerator and a window"  # the word's item heads the rest
    assert shorten("A man sits and reads a book about old ships in a quiet library room.", "book", 6) == "A man reads a book."


def test_a_caption_that_cannot_be_cut_is_invalid_with_its_reason():
    cap = "A man sitting on a bench next to a dog."
    assert shorten(cap, "dog", 5) is None
    (out,) = SubstitutionWriter(max_words=5).write([_req(cap, "dog", "NOUN", 1, "puppy")])
    assert isinstance(out, str) and "puppy" in out
    assert validate_caption(out, "puppy", cap, 1, 5).startswith("too long")


def test_inflection_follows_the_slots_tag_and_is_checked():
    reqs = [_req("A woman astronaut sits beside her helmet", "sits", "VERB", 2, "rest"),
            _req("Two dogs are running on the grass.", "dogs", "NOUN", 1, "puppy"),
            _req("A man riding a wave.", "riding", "VERB", 2, "surf"),
            _req("A dog is sitting on a bed.", "dog", "NOUN", 2, "animal")]
    out = SubstitutionWriter(10).write(reqs)
    assert out == ["A woman astronaut rests beside her helmet", "Two puppies are running on the grass.",
                   "A man surfing a wave.", "An animal is sitting on a bed."]
    doc = parser()("A woman astronaut sits beside her helmet")
    good, bad = substitution(doc, 3, "rest", 10), substitution(doc, 3, "seat", 10)
    assert check([good, bad]) == [True, False]  # "seats" re-tags as a plural noun


def test_no_fitting_form_falls_back_to_the_next_association_then_a_frame():
    cap = "A woman astronaut sits beside her helmet"
    (err,) = SubstitutionWriter(10).write([_req(cap, "sits", "VERB", 1, "seat", left=1)])
    assert isinstance(err, StageError) and "VBZ" in err.message
    (err,) = SubstitutionWriter(10).write([_req("An orange cat looks up with wide eyes.", "eyes", "NOUN", 2, "ocular", left=2)])
    assert isinstance(err, StageError)  # "ocular" is mostly an adjective: no "oculars"
    (last,) = SubstitutionWriter(10).write([_req(cap, "sits", "VERB", 1, "seat", left=0)])
    assert last == "A woman astronaut sits beside her helmet, as if seating"


def test_far_levels_put_abstract_nouns_in_a_frame():
    cap = "A woman astronaut sits beside her helmet and a flag on the moon"
    w = SubstitutionWriter(10)
    l5, l1 = w.write([_req(cap, "woman", "NOUN", 5, "existence"), _req(cap, "woman", "NOUN", 1, "lady")])
    assert l5.endswith(", a sense of existence") and "woman" in l5 and len(l5.split()) <= 10
    assert validate_caption(l5, "existence", cap, 1, 10) is None
    assert l1.startswith("A lady astronaut")
    (verb,) = w.write([_req("A cat looks up at a bird.", "looks", "VERB", 5, "dream")])
    assert verb in ("A cat dreams up at a bird.", "A cat looks up at a bird, as if dreaming.")
    (act,) = w.write([_req("A man riding a wave on top of a surfboard in the ocean.", "wave", "NOUN", 4, "competition")])
    assert act == "A man riding a wave, a moment of competition."
    (tight,) = w.write([_req("An old red motorcycle parked next to a wooden bench.", "bench", "NOUN", 4, "session")])
    assert tight == "An old motorcycle parked next to a bench, pure session."  # no room for the longer frame


def test_plain_substitute_helper():
    assert substitute("A cat.", "dog", "animal") is None
    assert substitute(LONG, "newspaper", "magazine", max_words=6) == "A man reading a magazine."

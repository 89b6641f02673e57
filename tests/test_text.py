from visassoc.text import contains_term, indefinite_article, inflect, validate_caption
from visassoc.stages.substitute import substitute


def test_articles():
    assert [indefinite_article(w) for w in ["animal", "dog", "hour", "unicorn", "umbrella", "one-way"]] == ["an", "a", "an", "a", "an", "a"]


def test_inflect_keeps_the_replaced_words_form():
    assert inflect("animal", "NNS") == "animals"
    assert inflect("travel", "VBG") in ("traveling", "travelling")
    assert inflect("ice cream", "NNS") == "ice creams"
    assert inflect("sit", "VBD") == "sat"
    assert inflect("happy", "JJ") == "happy"


def test_contains_term_whole_words_any_inflection():
    assert not contains_term("Two women walking", "man")  # the original's substring bug
    assert contains_term("The men ride bikes", "man")
    assert contains_term("A sea of ice creams", "ice cream")
    assert contains_term("Cats sat there", "sit")
    assert not contains_term("", "x")


def test_validate_caption_reasons():
    short = "A dog runs on the grass."
    assert validate_caption("An animal runs on the grass.", "animal", short) is None
    assert "too long" in validate_caption("one two three four five six seven eight nine ten animal", "animal", short)
    assert "does not contain" in validate_caption("A pet runs.", "animal", short)
    assert "identical" in validate_caption("a dog runs on the grass", "dog", short)
    assert validate_caption("  ", "x", short) == "empty caption"


def test_substitute_fixes_article_and_inflection():
    assert substitute("A dog is sitting on a bed.", "dog", "animal") == "An animal is sitting on a bed."
    assert substitute("Two dogs are running.", "dogs", "companion") == "Two companions are running."
    assert substitute("A red bus.", "red", "orange") == "An orange bus."
    assert substitute("A man riding a wave.", "riding", "surf").startswith("A man surfing")
    assert substitute("A cat.", "dog", "animal") is None


def test_a_plural_association_keeps_its_plural_in_a_plural_slot():
    # WordNet lists some nouns in the plural; lemminflect would add another -s ("A group of mens riding")
    assert inflect("men", "NNS") == "men" and inflect("greens", "NNS") == "greens"
    assert inflect("earbuds", "NNS") == "earbuds"  # one lemminflect does not list, by its rules
    assert inflect("bus", "NNS") == "buses" and inflect("lotus", "NNS") == "lotuses"  # singulars in -s still inflect

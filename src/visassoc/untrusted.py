"""Text we did not write: model answers and dataset captions.

Model output is checked, not repaired: markup, control characters (C0, DEL, C1) and bidi
controls make an answer invalid with a reason, so a row can never smuggle ``<script>`` or a
right-to-left override into a report, a CSV opened in a spreadsheet or an annotator's screen.
Human text (captions from the dataset) is kept but normalised: NFC, controls and bidi marks
removed, whitespace collapsed by the callers.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

# explicit embeddings/overrides/isolates and the implicit marks (LRM, RLM, ALM)
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_MARKUP = re.compile(r"<\s*/?\s*[a-z!?]|&(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]{1,30});|javascript\s*:|\bon[a-z]+\s*=",
                     re.IGNORECASE)
_KEEP = frozenset("\t\n\r")  # whitespace: collapsed later, harmless


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" and ch not in _KEEP


def unsafe_reason(text: str) -> str | None:
    """Why ``text`` (a model's answer) must not be used, or None when it is plain text."""
    for ch in text:
        if ch in BIDI_CONTROLS:
            return f"bidirectional control character U+{ord(ch):04X} in model output"
        if _is_control(ch):
            return f"control character U+{ord(ch):04X} in model output"
    m = _MARKUP.search(text)
    if m:
        return f"markup in model output ({text[max(0, m.start() - 10):m.end() + 10]!r})"
    return None


def normalize_human(text: str) -> str:
    """A dataset caption made safe to store and show: NFC, no control or bidi characters (tabs
    and newlines become spaces)."""
    text = unicodedata.normalize("NFC", text)
    return "".join(" " if ch in _KEEP else ch for ch in text if ch not in BIDI_CONTROLS and not _is_control(ch))


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(text: str, suffix: str = "") -> str:
    """A file name made from data (an image id such as ``sub/a``, ``../../x`` or ``/home/u/.bashrc``):
    readable characters only, never hidden or a path, and a hash of the full text so that two
    ids that clean to the same name still get two files."""
    stem = _UNSAFE_NAME.sub("_", text).strip("._-")[:60] or "item"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix or "") else ""
    return f"{stem}-{digest}{suffix.lower()}"


def path_under(root: Path, name: str) -> Path:
    """``root / name``, refusing (ValueError) anything that would resolve outside ``root``."""
    root = Path(root).resolve()
    p = (root / name).resolve()
    if p.parent != root and root not in p.parents:
        raise ValueError(f"refusing to write {name!r} outside {root}")
    return p

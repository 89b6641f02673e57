"""Text we did not write: model answers and dataset captions.

Model output is checked, not repaired: markup, control characters (C0, DEL, C1) and bidi
controls make an answer invalid with a reason, so a row can never smuggle ``<script>`` or a
right-to-left override into a report, a CSV opened in a spreadsheet or an annotator's screen.
Human text (captions from the dataset) is kept but normalised: NFC, controls and bidi marks
removed, whitespace collapsed by the callers.
"""
from __future__ import annotations

import re
import unicodedata

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

"""Prompt files: ``<set>.<stage>.txt`` with a '#' header (version, params, output) and
'=== name ===' sections rendered with ``string.Template``. Their sha256 goes into cache keys,
stage fingerprints and the run manifest, so editing a prompt never reuses stale answers."""
from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from visassoc.backends.base import GenParams

PROMPT_SETS = ("visassoc", "paper")
MODEL_STAGES = ("describe", "associate", "caption")
LEVEL_RULES = {
    1: "close in meaning or form to the original image",
    2: "slightly looser and more abstract",
    3: "indirect, linked through the situational and emotional context of the image",
    4: "more abstract or theme-related",
    5: "highly abstract or metaphorical",
}


@dataclass(frozen=True)
class Prompt:
    name: str
    sections: dict[str, str]
    params: GenParams
    output: str  # "json" | "text"
    sha256: str
    version: str = "0"
    header: str = ""  # the '#' comment block (what the prompt is, where it comes from)

    def render(self, section: str, **values: Any) -> str:
        return string.Template(self.sections[section]).substitute(values).strip()


@lru_cache(maxsize=None)
def load_prompt(prompt_set: str, stage: str) -> Prompt:
    """Parse ``prompts/<set>.<stage>.txt``: '#' header (params, output), then '=== name ===' sections."""
    if prompt_set not in PROMPT_SETS:
        raise ValueError(f"unknown prompt set {prompt_set!r} (expected one of {', '.join(PROMPT_SETS)})")
    raw = files("visassoc").joinpath("prompts", f"{prompt_set}.{stage}.txt").read_text(encoding="utf-8")
    header, sections, cur, comments = {}, {}, None, []
    for line in raw.splitlines():
        m = re.fullmatch(r"=== (\w+) ===", line.strip())
        if m:
            cur = m.group(1)
            sections[cur] = ""
        elif cur is not None:
            sections[cur] += line + "\n"
        elif line.startswith("#"):
            comments.append(line.lstrip("# "))
            if line.startswith("# ") and ":" in line and not line.startswith("#   "):
                k, v = line[2:].split(":", 1)
                header[k.strip()] = v.strip()
    params = GenParams(**json.loads(header.get("params", "{}")))
    return Prompt(f"{prompt_set}.{stage}", sections, params, header.get("output", "json"),
                  hashlib.sha256(raw.encode()).hexdigest(), header.get("version", "0"), "\n".join(comments))


def prompt_hashes(prompt_set: str = "visassoc") -> dict[str, str]:
    """{stage: sha256 of its prompt file} for cache keys and the run manifest."""
    return {s: load_prompt(prompt_set, s).sha256 for s in MODEL_STAGES}

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
from pathlib import Path
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


# What each stage's prompt may use: {section: placeholders}; and what a prompt must use somewhere.
PLACEHOLDERS = {
    "describe": {"system": {"caption_hint"}, "user": {"caption_hint"}},
    "associate": {s: {"description", "short_caption", "per_level", "words_list", "words_lines", "example"}
                  for s in ("system", "user")},
    "caption": {s: {"short_caption", "word", "association", "level", "level_name", "level_rule", "word_list",
                    "description"} for s in ("system", "user")},
}
PLACEHOLDERS["caption_word"] = {s: {"short_caption", "word", "word_list", "items", "answer_shape"}
                                for s in ("system", "user")}
PLACEHOLDERS["caption_word"]["feedback"] = PLACEHOLDERS["caption_word"]["user"] | {"feedback"}
PLACEHOLDERS["associate"]["feedback"] = PLACEHOLDERS["associate"]["user"] | {"problems"}
PLACEHOLDERS["caption"]["feedback"] = PLACEHOLDERS["caption"]["user"] | {"feedback"}
REQUIRED = {"describe": set(), "associate": {"words_list", "words_lines"}, "caption": {"association"},
            "caption_word": {"items"}}  # any one of


def _parse(raw: str) -> tuple[dict, dict[str, str], list[str]]:
    """'#' header lines (``key: value``), then '=== name ===' sections; text before any section
    header (a file pasted as it is) is the ``user`` section."""
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
        elif line.strip() or "user" in sections:
            sections["user"] = sections.get("user", "") + line + "\n"
    return header, sections, comments


def _check(stage: str, sections: dict[str, str], where: str) -> None:
    """One-line errors for a prompt a run could not use: no user section, an unknown section or
    placeholder, or none of the placeholders the stage needs."""
    allowed = PLACEHOLDERS[stage]
    if not sections.get("user", "").strip():
        raise ValueError(f"{where}: no prompt text (a '=== user ===' section or plain text)")
    used: set[str] = set()
    for name, text in sections.items():
        if name not in allowed:
            raise ValueError(f"{where}: unknown section '=== {name} ===' (allowed: {', '.join(sorted(allowed))})")
        try:
            names = {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(text)
                     if m.group("named") or m.group("braced")}
            if any(m.group("invalid") is not None for m in string.Template.pattern.finditer(text)):
                raise ValueError
        except ValueError:
            raise ValueError(f"{where}: a '$' that is not a placeholder in section {name} (write $$ for a dollar)") from None
        unknown = names - allowed[name]
        if unknown:
            raise ValueError(f"{where}: unknown placeholder ${sorted(unknown)[0]} in section {name} "
                             f"(allowed: {', '.join('$' + p for p in sorted(allowed[name]))})")
        used |= names
    if REQUIRED[stage] and not used & REQUIRED[stage]:
        raise ValueError(f"{where}: the {stage} prompt must use {' or '.join('$' + p for p in sorted(REQUIRED[stage]))}")


@lru_cache(maxsize=None)
def load_prompt(prompt_set: str, stage: str, prompt_dir: str | None = None) -> Prompt:
    """The prompt of ``stage``: ``prompts/<set>.<stage>.txt`` shipped with visassoc, or
    ``<prompt_dir>/<stage>.txt`` (describe.txt, associate.txt, caption.txt) when a prompt folder
    is given. A folder's file keeps the built-in prompt's params and output format unless its own
    header sets them (``# params: {...}``, ``# output: json|text``)."""
    if prompt_set not in PROMPT_SETS:
        raise ValueError(f"unknown prompt set {prompt_set!r} (expected one of {', '.join(PROMPT_SETS)})")
    builtin = files("visassoc").joinpath("prompts", f"{prompt_set}.{stage}.txt")
    if not builtin.is_file():
        raise ValueError(f"the {prompt_set} prompt set has no {stage} prompt")
    raw = builtin.read_text(encoding="utf-8")
    header, sections, comments = _parse(raw)
    name = f"{prompt_set}.{stage}"
    if prompt_dir is not None:
        path = Path(prompt_dir) / f"{stage}.txt"
        if not path.is_file():
            raise ValueError(f"--prompt-dir {prompt_dir}: no {stage}.txt (the {stage} stage calls a model; "
                             "files are describe.txt, associate.txt, caption.txt, and caption_word.txt "
                             "with --caption-mode per-word)")
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read prompt {path}: {str(e).splitlines()[0]}") from None
        own, sections, comments = _parse(raw)
        header = {**{k: v for k, v in header.items() if k in ("params", "output")}, **own}
        name = str(path)
    _check(stage, sections, name)
    try:
        params = GenParams(**json.loads(header.get("params", "{}")))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}: bad '# params:' header: {str(e).splitlines()[0]}") from None
    output = header.get("output", "json")
    if output not in ("json", "text"):
        raise ValueError(f"{name}: '# output:' must be json or text, not {output!r}")
    return Prompt(name, sections, params, output, hashlib.sha256(raw.encode()).hexdigest(),
                  header.get("version", "0"), "\n".join(comments))


def prompt_hashes(prompt_set: str = "visassoc", prompt_dir: str | None = None) -> dict[str, str]:
    """{stage: sha256 of its prompt file} for cache keys and the run manifest."""
    return {s: load_prompt(prompt_set, s, prompt_dir).sha256 for s in MODEL_STAGES}

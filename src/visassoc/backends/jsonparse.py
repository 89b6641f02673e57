"""Tolerant JSON extraction from model output, validated against a JSON Schema.

Small models and chat servers wrap JSON in prose or code fences, truncate it, or leave
trailing commas; ``json_repair`` fixes the syntax, ``jsonschema`` decides if it is usable.
"""
from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
from json_repair import repair_json

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def _candidates(text: str) -> list[str]:
    out = []
    for m in _FENCE.finditer(text):
        out.append(m.group(1))
    start = min([i for i in (text.find("{"), text.find("[")) if i >= 0], default=-1)
    if start >= 0:
        out.append(text[start:])
    out.append(text)
    return out


def parse_json_loose(text: str) -> Any:
    """Best-effort parse of the first JSON value in ``text``; raises ValueError if there is none."""
    if text is None or not str(text).strip():
        raise ValueError("empty model output")
    for cand in _candidates(str(text)):
        cand = cand.strip()
        if not cand:
            continue
        try:
            return json.loads(cand)
        except (json.JSONDecodeError, RecursionError):
            pass
        try:
            value = repair_json(cand, return_objects=True)
        except Exception:  # json_repair can raise on pathological input
            continue
        if value not in ("", None, [], {}) or cand in ("{}", "[]"):
            return value
    raise ValueError(f"no JSON found in model output: {str(text)[:80]!r}")


def parse_and_validate(text: str, schema: dict | None) -> Any:
    """Parse loosely, then validate; raises ValueError with a one-line reason."""
    value = parse_json_loose(text)
    if schema is not None:
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as e:
            path = "/".join(str(p) for p in e.absolute_path) or "(root)"
            raise ValueError(f"schema violation at {path}: {e.message[:160]}") from None
    return value

"""Stage 1: a dense description of each image, the context for association mining.

Offline, no model here can see an image, so the default composes the context from the
image's human captions (``description_source="captions"``). A VLM describer (see
``stages.model_stages``) replaces it when ``--vlm`` is given.
"""
from __future__ import annotations

from .interfaces import DescribeRequest, DescribeResult, StageError


def _sentence(c: str) -> str:
    c = c.strip()
    c = c[0].upper() + c[1:] if c else c
    return c if c.endswith((".", "!", "?")) else c + "."


class CaptionsDescriber:
    """Joins the distinct human captions into one paragraph."""

    name = "captions"
    model = None

    def describe(self, requests: list[DescribeRequest]) -> list[DescribeResult | StageError]:
        out: list[DescribeResult | StageError] = []
        for r in requests:
            if not r.captions:
                out.append(StageError("no captions for this image and no VLM configured (pass --vlm to describe it)"))
                continue
            out.append(DescribeResult(" ".join(_sentence(c) for c in r.captions), "captions"))
        return out

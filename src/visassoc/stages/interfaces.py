"""What the runner asks of each model-facing stage implementation.

Implementations take a *batch* of requests and return one result per request, in order:
either the value or a ``StageError`` (never raise for a single bad item; raise only when the
whole backend is unusable, e.g. a dead server). Batching lets the lexical miner embed once,
local models generate in batches, and HTTP backends run requests concurrently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Union, runtime_checkable


@dataclass
class StageError:
    """One item that failed; becomes a row of errors.parquet."""

    message: str  # one line, says what went wrong and (if known) what the model returned


@dataclass
class DescribeRequest:
    image_id: str
    path: str  # local image file (already verified to open)
    captions: list[str] = field(default_factory=list)  # human captions, may be empty


@dataclass
class DescribeResult:
    description: str
    description_source: str  # "captions" | "vlm"
    short_caption: str | None = None  # literal one-sentence caption (needed for uncaptioned images)
    model: str | None = None


@dataclass
class AssociationRequest:
    image_id: str
    word: str  # surface form in the caption
    lemma: str
    pos: str  # NOUN | VERB | ADJ
    caption: str  # the short caption the word comes from
    description: str  # dense description of the image (context)
    other_words: list[str] = field(default_factory=list)  # the image's other salient words


# level (1..5) -> up to `per_level` association words, best first
Ladder = dict[int, list[str]]


@dataclass
class CaptionRequest:
    image_id: str
    path: str
    word: str
    pos: str
    caption: str  # the short caption
    description: str
    level: int
    association: str
    feedback: str | None = None  # why the previous attempt was rejected (for a re-ask)
    other_words: list[str] = field(default_factory=list)  # the image's other salient words (caption prompt)
    alternatives_left: int = 0  # later associations of this level the runner would try if this one fails


@runtime_checkable
class Describer(Protocol):
    name: str

    def describe(self, requests: list[DescribeRequest]) -> list[Union[DescribeResult, StageError]]: ...


@runtime_checkable
class AssociationMiner(Protocol):
    name: str  # goes into associations.parquet `backend`

    def mine(self, requests: list[AssociationRequest]) -> list[Union[Ladder, StageError]]: ...


@runtime_checkable
class CaptionWriter(Protocol):
    name: str  # goes into captions.parquet `backend`
    model: str | None

    def write(self, requests: list[CaptionRequest]) -> list[Union[str, StageError]]: ...


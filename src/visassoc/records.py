"""Typed records passed between stages; each maps 1:1 to a row of a Parquet table.

The table and column names are a public data contract (other tools read them):
images, descriptions, salient, associations, captions, errors.
"""
from __future__ import annotations

from functools import lru_cache
from dataclasses import dataclass, field, fields
from typing import Any

import pyarrow as pa

LEVELS = (1, 2, 3, 4, 5)
LEVEL_NAMES = {
    1: "near synonym",
    2: "slight abstraction",
    3: "broader situational or emotional context",
    4: "conceptual association",
    5: "full abstraction or metaphor",
}


@dataclass
class ImageRecord:
    image_id: str
    path: str
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    captions: list[str] = field(default_factory=list)
    status: str = "ok"  # "ok" | "error"
    error: str | None = None
    provenance: str | None = None  # shard#key, dataset[split][row] or URL the image came from


@dataclass
class DescriptionRecord:
    image_id: str
    description: str
    description_source: str  # "captions" | "vlm"
    short_caption: str | None = None  # a VLM-written literal caption for uncaptioned images
    model: str | None = None


@dataclass
class SalientRecord:
    image_id: str
    caption_id: int
    caption: str
    word: str
    lemma: str
    pos: str  # NOUN | VERB | ADJ
    concreteness: float | None
    rank: int  # 0 = most concrete


@dataclass
class AssociationRecord:
    image_id: str
    word: str
    level: int  # 1..5
    rank: int  # 0..2
    association: str
    backend: str


@dataclass
class CaptionRecord:
    image_id: str
    word: str
    level: int
    association: str
    caption: str
    valid: bool
    reason: str | None
    backend: str
    model: str | None
    attempts: int = 1  # writer calls spent on this caption (1 = accepted or final on the first try)


@dataclass
class ErrorRecord:
    stage: str
    image_id: str | None
    word: str | None
    level: int | None
    message: str


SCHEMAS: dict[str, pa.Schema] = {
    "images": pa.schema(
        [
            ("image_id", pa.string()),
            ("path", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("sha256", pa.string()),
            ("captions", pa.list_(pa.string())),
            ("status", pa.string()),
            ("error", pa.string()),
            ("provenance", pa.string()),
        ]
    ),
    "descriptions": pa.schema(
        [
            ("image_id", pa.string()),
            ("description", pa.string()),
            ("description_source", pa.string()),
            ("short_caption", pa.string()),
            ("model", pa.string()),
        ]
    ),
    "salient": pa.schema(
        [
            ("image_id", pa.string()),
            ("caption_id", pa.int32()),
            ("caption", pa.string()),
            ("word", pa.string()),
            ("lemma", pa.string()),
            ("pos", pa.string()),
            ("concreteness", pa.float64()),
            ("rank", pa.int32()),
        ]
    ),
    "associations": pa.schema(
        [
            ("image_id", pa.string()),
            ("word", pa.string()),
            ("level", pa.int8()),
            ("rank", pa.int8()),
            ("association", pa.string()),
            ("backend", pa.string()),
        ]
    ),
    "captions": pa.schema(
        [
            ("image_id", pa.string()),
            ("word", pa.string()),
            ("level", pa.int8()),
            ("association", pa.string()),
            ("caption", pa.string()),
            ("valid", pa.bool_()),
            ("reason", pa.string()),
            ("backend", pa.string()),
            ("model", pa.string()),
            ("attempts", pa.int8()),
        ]
    ),
    "errors": pa.schema(
        [
            ("stage", pa.string()),
            ("image_id", pa.string()),
            ("word", pa.string()),
            ("level", pa.int8()),
            ("message", pa.string()),
        ]
    ),
}

RECORD_TYPES = {
    "images": ImageRecord,
    "descriptions": DescriptionRecord,
    "salient": SalientRecord,
    "associations": AssociationRecord,
    "captions": CaptionRecord,
    "errors": ErrorRecord,
}


@lru_cache(maxsize=None)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def to_row(record: Any) -> dict[str, Any]:
    """Shallow field dict (``dataclasses.asdict`` deep-copies, which dominated runner time)."""
    return {name: getattr(record, name) for name in _field_names(type(record))}


def from_row(table: str, row: dict[str, Any]):
    cls = RECORD_TYPES[table]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})

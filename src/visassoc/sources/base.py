from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from visassoc.untrusted import normalize_human



class SourceError(ValueError):
    """The source as a whole is unusable (missing file, malformed JSON, no items)."""


@dataclass
class SourceItem:
    image_id: str
    path: str | None  # local file; None when it could not be resolved
    captions: list[str] = field(default_factory=list)
    error: str | None = None  # set when the item is known to be unusable before opening it
    provenance: str | None = None  # where the row came from: shard#key, dataset[split][row], URL


def iter_jsonl(path, required: str, hint: str = ""):
    """(line number, object) for each non-empty line; one-line SourceError on bad JSON or a missing key."""
    import json

    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise SourceError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict) or required not in rec:
            raise SourceError(f"{path}:{n}: each line needs {required!r}{hint}")
        yield n, rec


def outside_root(path: Path, root: Path | list[Path], allow_outside: bool = False) -> str | None:
    """Why ``path`` must not be read (it resolves, symlinks followed, outside the source's
    ``root``, or outside every one of several roots), or None. Sources name files with untrusted
    text: ``../../etc/passwd``, absolute paths and links out of the folder become error rows unless
    the user allows them."""
    if allow_outside:
        return None
    roots = root if isinstance(root, (list, tuple)) else [root]
    try:
        resolved = Path(path).resolve()
        if any(resolved.is_relative_to(Path(r).resolve()) for r in roots):
            return None
    except (OSError, RuntimeError) as e:  # a symlink loop
        return f"image path {str(path)!r} cannot be resolved: {e}"
    return (f"image path {str(path)!r} resolves outside the source folder {str(roots[0])!r} "
            "(pass --allow-outside-paths to allow it)")


def clean_captions(raw) -> list[str]:
    """Strip, collapse whitespace, drop empties and exact duplicates (order kept)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    out: list[str] = []
    for c in raw:
        if not isinstance(c, str):
            continue
        c = " ".join(normalize_human(c).split())  # dataset text is untrusted: no NUL, controls or bidi marks
        if c and c not in out:
            out.append(c)
    return out


def check_unique(items: list[SourceItem]) -> list[SourceItem]:
    seen: dict[str, int] = {}
    for it in items:
        seen[it.image_id] = seen.get(it.image_id, 0) + 1
    dups = [k for k, n in seen.items() if n > 1]
    if dups:
        raise SourceError(f"duplicate image ids in source: {', '.join(dups[:5])}{' ...' if len(dups) > 5 else ''}")
    if not items:
        raise SourceError("the source has no images")
    return items

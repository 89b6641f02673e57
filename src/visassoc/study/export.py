"""Export a human-study project (Potato or Label Studio) from a run dir.

The sample is stratified: the same number of valid creative captions per level, spread over as
many images as possible, plus attention checks with known answers: the image's own human
caption (should be rated grounded) and FOIL negatives (should not be; for non-COCO runs the
caption of another image stands in, kind "mismatch"). What each item is lives only in
``study_key.json``; annotators see the image and the caption.
"""
from __future__ import annotations

import base64
import io
import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

import yaml

from visassoc.records import LEVELS
from visassoc.report import grounding
from visassoc.report.data import load_run
from visassoc.untrusted import path_under, safe_filename

TOOLS = ("potato", "label-studio")
GROUNDED = ("yes", "partly", "no")
Q_GROUNDED = "Is the caption grounded in the image (does it fit what the image shows)?"
Q_ABSTRACT = "How abstract is the caption? 1 = literal description of the image ... 5 = full abstraction or metaphor"
KEY_FILE = "study_key.json"


def _interleave(rows: list[dict], rng: random.Random) -> list[dict]:
    """Rows reordered so that consecutive picks come from different images (round-robin)."""
    by = defaultdict(list)
    for r in rows:
        by[r["image_id"]].append(r)
    groups = [by[k] for k in sorted(by)]
    rng.shuffle(groups)
    for g in groups:
        rng.shuffle(g)
    out = []
    while any(groups):
        for g in groups:
            if g:
                out.append(g.pop())
    return out


def sample_items(run, n: int, seed: int = 0, check_share: float = 0.1, instances: Path | None = None) -> tuple[list[dict], list[str]]:
    """(items, notes): ~n items, creative captions balanced over levels plus attention checks."""
    rng = random.Random(seed)
    notes = []
    n_checks = max(2, round(n * check_share)) if check_share > 0 and n >= 10 else 0
    quota = [(n - n_checks) // len(LEVELS) + (i < (n - n_checks) % len(LEVELS)) for i in range(len(LEVELS))]
    items = []
    for lv, q in zip(LEVELS, quota):
        pool = _interleave([r for r in run.captions if r["valid"] and r["level"] == lv], rng)
        if len(pool) < q:
            notes.append(f"level {lv}: only {len(pool)} valid captions for a quota of {q}")
        items += [{"kind": "creative", "level": lv, "image_id": r["image_id"], "word": r["word"],
                   "association": r["association"], "caption": r["caption"]} for r in pool[:q]]
    shorts = sorted(run.short_caption.items())
    rng.shuffle(shorts)
    n_human = n_checks - n_checks // 2
    items += [{"kind": "human", "level": None, "image_id": im, "word": None, "association": None, "caption": c}
              for im, (_, c) in shorts[:n_human]]
    foils, note = grounding.foil_negatives(run, instances, seed)
    rng.shuffle(foils)
    negs = [{"kind": "foil", "level": None, "image_id": f["image_id"], "word": f["replaced"], "association": f["new"],
             "caption": f["caption"]} for f in foils[: n_checks // 2]]
    if len(negs) < n_checks // 2 and len(shorts) >= 2:
        notes.append((note or "too few FOIL negatives") + "; captions of other images stand in (kind 'mismatch')")
        for k in range(n_checks // 2 - len(negs)):
            im, (_, _) = shorts[k % len(shorts)]
            _, (_, other) = shorts[(k % len(shorts) + 1 + rng.randrange(len(shorts) - 1)) % len(shorts)]
            negs.append({"kind": "mismatch", "level": None, "image_id": im, "word": None, "association": None,
                         "caption": other})
    items += negs
    rng.shuffle(items)
    for i, it in enumerate(items):
        it["item_id"] = f"q{i + 1:04d}"
    return items, notes


def _embed_image(path: Path, max_side: int) -> str:
    from visassoc.images import open_rgb

    buf = io.BytesIO()
    open_rgb(path, max_side=max_side).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _potato(out: Path, items: list[dict], media: dict[str, str], port: int) -> list[str]:
    (out / "data").mkdir(exist_ok=True)
    with open(out / "data" / "items.jsonl", "w") as f:
        for it in items:
            f.write(json.dumps({"id": it["item_id"], "image": f"/media/{media[it['image_id']]}",
                                "caption": it["caption"]}) + "\n")
    config = {
        "annotation_task_name": "Creative captions: grounding and abstraction",
        "port": port, "task_dir": ".", "data_files": ["data/items.jsonl"], "media_directory": "media",
        "output_annotation_dir": "annotation_output", "output_annotation_format": "json",
        "item_properties": {"id_key": "id", "text_key": "caption"},
        "instance_display": {"fields": [
            {"key": "image", "type": "image", "label": "Image", "display_options": {"max_width": 600}},
            {"key": "caption", "type": "text", "label": "Caption"}], "layout": {"direction": "vertical"}},
        "user_config": {"allow_all_users": True}, "require_password": False,
        "annotation_schemes": [
            {"annotation_type": "radio", "name": "grounded", "description": Q_GROUNDED,
             "labels": list(GROUNDED), "label_requirement": {"required": True}},
            {"annotation_type": "likert", "name": "abstraction", "description": Q_ABSTRACT, "size": 5,
             "min_label": "literal", "max_label": "metaphor", "label_requirement": {"required": True}}],
    }
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return ["config.yaml", "data/items.jsonl"]


LS_CONFIG = f"""<View>
  <Image name="image" value="$image" maxWidth="640px"/>
  <Header value="Caption"/>
  <Text name="caption" value="$caption"/>
  <Header value="{Q_GROUNDED}"/>
  <Choices name="grounded" toName="image" choice="single-radio" required="true">
    <Choice value="yes"/>
    <Choice value="partly"/>
    <Choice value="no"/>
  </Choices>
  <Header value="{Q_ABSTRACT}"/>
  <Rating name="abstraction" toName="image" maxRating="5" required="true"/>
</View>
"""


def _label_studio(out: Path, items: list[dict], images: dict[str, Path], media: dict[str, str], embed: bool,
                  max_side: int) -> list[str]:
    cache: dict[str, str] = {}
    tasks = []
    for it in items:
        im = it["image_id"]
        if embed:
            cache.setdefault(im, _embed_image(images[im], max_side))
        url = cache[im] if embed else f"/data/local-files/?d=media/{media[im]}"
        tasks.append({"data": {"item_id": it["item_id"], "image": url, "caption": it["caption"]}})
    (out / "tasks.json").write_text(json.dumps(tasks))
    (out / "labeling_config.xml").write_text(LS_CONFIG)
    return ["tasks.json", "labeling_config.xml"]


def export_study(run_dir: str | Path, out_dir: str | Path, n: int = 300, tool: str = "potato", seed: int = 0,
                 check_share: float = 0.1, instances: str | Path | None = None, port: int = 8000,
                 embed_images: bool = True, max_side: int = 512) -> dict:
    """Write a study project for ``tool`` into ``out_dir``; return a summary (counts per kind/level, notes).

    Potato: ``config.yaml`` + ``data/items.jsonl`` + ``media/`` (start: ``potato start config.yaml``).
    Label Studio: ``tasks.json`` (import) + ``labeling_config.xml``; images are embedded as data URIs
    unless ``embed_images=False`` (then ``media/`` is served as local files, see README.md).
    """
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}: choose one of {', '.join(TOOLS)}")
    if n < 1:
        raise ValueError(f"--n must be positive, got {n}")
    run = load_run(run_dir)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder")
    inst = Path(instances) if instances else grounding.instances_path_for(run)
    items, notes = sample_items(run, n, seed, check_share, inst)
    if not items:
        raise ValueError(f"{run.root} has no valid captions to sample")
    images, media = {}, {}
    for im in sorted({it["image_id"] for it in items}):
        p = run.image_path(im)
        if p is None or not p.exists():
            raise FileNotFoundError(f"image file of {im} not found ({p})")
        # ids are data (``sub/a``, ``../../x``, an absolute path): the file name is sanitised and hashed
        images[im], media[im] = p, safe_filename(im, p.suffix or ".jpg")
    out.mkdir(parents=True, exist_ok=True)  # only now: a failed check above leaves nothing behind
    if tool == "potato" or not embed_images:
        (out / "media").mkdir(exist_ok=True)
        for im, p in images.items():
            shutil.copy2(p, path_under(out / "media", media[im]))
    if tool == "potato":
        files = _potato(out, items, media, port)
        howto = (f"pip install potato-annotation\ncd {out.resolve()}\npotato start config.yaml -p {port}\n"
                 "# annotations land in annotation_output/; then: visassoc study analyze annotation_output --out DIR")
    else:
        files = _label_studio(out, items, images, media, embed_images, max_side)
        env = ("" if embed_images else f"LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
               f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={out.resolve()} ")
        howto = (f"{env}label-studio start\n# new project -> Labeling Setup -> Code: paste labeling_config.xml;"
                 " Data Import: tasks.json\n# export JSON, then: visassoc study analyze EXPORT.json --key "
                 f"{(out / KEY_FILE).resolve()} --out DIR")
    key = {"version": 1, "tool": tool, "run_dir": str(run.root), "seed": seed, "n_requested": n,
           "questions": {"grounded": {"text": Q_GROUNDED, "labels": list(GROUNDED)},
                         "abstraction": {"text": Q_ABSTRACT, "scale": [1, 5]}},
           "items": [{**it, "media": media[it["image_id"]]} for it in items], "notes": notes}
    (out / KEY_FILE).write_text(json.dumps(key, indent=1))
    (out / "README.md").write_text("# visassoc human study\n\nOpen it:\n\n```\n" + howto + "\n```\n\n"
                                   + "".join(f"- note: {x}\n" for x in notes))
    counts = defaultdict(int)
    for it in items:
        counts[f"level {it['level']}" if it["kind"] == "creative" else it["kind"]] += 1
    return {"out_dir": str(out.resolve()), "tool": tool, "items": len(items), "counts": dict(sorted(counts.items())),
            "images": len(images), "files": files + [KEY_FILE, "README.md"], "notes": notes}

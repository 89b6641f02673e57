"""Check a finished run against the pipeline-core and offline-quality targets and print a table.

    python benchmarks/check_run.py runs/coco [--fluency 25]

Targets (issues: pipeline core, offline default on real data): >= 95% of images with associations
at all 5 levels, >= 99% of captions valid, mean Brysbaert concreteness of associations strictly
decreasing 1->5 with a drop >= 1.5 (caption words: reported), distinct associations >= 0.5 of a
level's captions with none above 2% of them, the slot's tag kept in >= 95% of captions per level
(spaCy re-tag of the creative caption vs the word's tag in the human caption; for a framed
association, the tag its frame gives it), and the fluency gap (SmolLM2 NLL per token, creative
minus human caption) on a sample of ``--fluency`` images, with the framed captions' gap split into
the cut scene's and the frame's.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from visassoc.lexicon import concreteness, spacy_nlp
from visassoc.records import LEVELS

from visassoc.stages.substitute import frame_phrase  # noqa: E402  (the writer's frames)

SUFFIX_RE = re.compile(r", as if ([a-z][a-z' -]*)\.?$")


def frame_of(caption: str, association: str, level: int) -> tuple[str, int, str, str] | None:
    """For a caption the writer framed: (tag the association has there, where it starts, its form,
    the scene alone); None for a substitution. A noun or a verb's gerund is the title ("Pride: an
    astronaut ...", "Dreaming: ..."), a level-5 adjective leads ("Lonely, ...": at other levels
    "Crimson, yellow and orange fruit" is a substitution), another follows (", as if lonely")."""
    for pos in ("NOUN", "VERB", "ADJ") if level == 5 else ("NOUN", "VERB"):
        title, tag = frame_phrase(association, pos, level)
        if caption.startswith(title):
            scene = caption[len(title):]
            return tag, 0, title.rstrip(":, "), scene[:1].upper() + scene[1:]
    m = SUFFIX_RE.search(caption)
    if m:
        form = m.group(1)
        return "JJ", m.start(1), form, caption[: m.start()] + ("." if caption.endswith(".") else "")
    return None


def caption_concreteness(text: str) -> float | None:
    vals = [concreteness(t.lemma_.lower()) for t in spacy_nlp()(text) if t.pos_ in ("NOUN", "VERB", "ADJ") and not t.is_stop]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def tag_agreement(caps: list[dict], human: dict[tuple[str, str], str], misses: list | None = None) -> dict[int, tuple[int, int]]:
    """Per level (kept, checked): does the association's head word carry the slot's tag when the
    creative caption is re-tagged? Substitutions: the word's tag in the human caption; frames:
    NN or VBG for a title, JJ after "as if". Rows whose word or form is not found are skipped."""
    from visassoc.stages.shorten import tag_texts, word_tokens
    from visassoc.stages.substitute import head_index, slot_tag, tags_agree
    from visassoc.text import inflect

    hum_tags = {}
    keys = list(human)
    for (iid, word), doc in zip(keys, tag_texts([human[k] for k in keys])):
        span = word_tokens(doc, word)  # a compound ("fire hydrant") is a noun's slot
        hum_tags[(iid, word)] = slot_tag(doc, span[-1], span.start) if span else None
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    todo = []
    for c in caps:
        tag = hum_tags.get((c["image_id"], c["word"]))
        a = c["association"]
        fm = frame_of(c["caption"], a, c["level"])
        if fm:
            want, start, form, _ = fm
        elif tag is not None:
            form, want = inflect(a, tag), tag
            m = re.search(rf"(?<![A-Za-z]){re.escape(form)}(?![A-Za-z])", c["caption"], flags=re.IGNORECASE)
            if not m:
                continue
            start = m.start()
        else:
            continue
        words = form.split()
        hi = head_index(form, want)
        start += len(" ".join(words[:hi])) + (1 if hi else 0)
        todo.append((c["level"], c["caption"], start, want, bool(fm)))
    for (lv, _, start, want, frame), doc in zip(todo, tag_texts([t[1] for t in todo])):
        tok = next((t for t in doc if t.idx == start), None)
        out[lv][1] += 1
        good = tok is not None and tags_agree(want, tok.tag_, frame)
        out[lv][0] += int(good)
        if not good and misses is not None:
            misses.append((lv, doc.text, want, tok.tag_ if tok is not None else None))
    return {lv: tuple(v) for lv, v in out.items()}


def measure(run: Path, fluency_images: int = 0, prefer: list[str] | None = None) -> dict:
    imgs = pq.read_table(run / "images.parquet").to_pylist()
    assoc = pq.read_table(run / "associations.parquet").to_pylist()
    caps = pq.read_table(run / "captions.parquet").to_pylist()
    sal = pq.read_table(run / "salient.parquet").to_pylist()
    levels_per_image = defaultdict(set)
    for a in assoc:
        levels_per_image[a["image_id"]].add(a["level"])
    ok = [i for i in imgs if i["status"] == "ok"]
    pos = {(s["image_id"], s["word"]): s["pos"] for s in sal}
    for c in caps:
        c["pos"] = pos.get((c["image_id"], c["word"]), "")
    human = {(s["image_id"], s["word"]): s["caption"] for s in sal}
    m: dict = {"run": str(run), "images": len(imgs), "captions": len(caps)}
    m["full_ladders"] = sum(1 for i in ok if levels_per_image[i["image_id"]] == set(LEVELS)) / max(1, len(ok))
    # a (word, level) that ended in an error row instead of a caption counts as an invalid caption
    errs = pq.read_table(run / "errors.parquet").to_pylist() if (run / "errors.parquet").exists() else []
    m["caption_errors"] = sum(1 for e in errs if e["stage"] == "caption")
    m["valid"] = sum(c["valid"] for c in caps) / max(1, len(caps) + m["caption_errors"])
    m["assoc_conc"] = [_mean([concreteness(a["association"]) for a in assoc if a["level"] == lv]) for lv in LEVELS]
    m["cap_conc"] = [_mean([caption_concreteness(c["caption"]) for c in caps if c["level"] == lv]) for lv in LEVELS]
    used = {lv: Counter(c["association"] for c in caps if c["level"] == lv) for lv in LEVELS}
    m["distinct"] = [len(used[lv]) / max(1, sum(used[lv].values())) for lv in LEVELS]
    m["top_share"] = [used[lv].most_common(1)[0][1] / sum(used[lv].values()) if used[lv] else 0.0 for lv in LEVELS]
    m["top"] = {lv: used[lv].most_common(3) for lv in LEVELS}
    agree = tag_agreement(caps, human)
    m["tag_agree"] = [agree[lv][0] / agree[lv][1] if agree.get(lv, (0, 0))[1] else float("nan") for lv in LEVELS]
    if fluency_images:
        from visassoc.report.data import load_run
        from visassoc.report.fluency import fluency

        loaded = load_run(run)
        fl = fluency(loaded, fluency_images, seed=0, n_boot=200, prefer=prefer)
        m["fluency"] = [fl["per_level"][str(lv)]["mean"] for lv in LEVELS]
        m["fluency_images"] = fl["images"]
        m.update(scene_gap(loaded, fl["images"]))
    return m


def scene_gap(run, ids: list[str]) -> dict:
    """Where a framed caption's gap comes from: per level, over the sampled framed captions, the
    gap of the whole caption and of its scene alone (the cut human caption, frame removed), both
    against the human caption. The rest is the frame's own cost."""
    from visassoc.report.fluency import token_nll

    keep = set(ids)
    human = {i: run.short_caption[i][1] for i in ids}
    rows = []
    for c in run.captions:
        fm = frame_of(c.get("caption") or "", c["association"], c["level"]) if c["image_id"] in keep else None
        if fm:
            rows.append((c["level"], c["caption"], fm[3], human[c["image_id"]]))
    texts = sorted({t for r in rows for t in r[1:]})
    sc = dict(zip(texts, token_nll(texts))) if texts else {}
    per = {lv: [r for r in rows if r[0] == lv] for lv in LEVELS}
    n_all = Counter(c["level"] for c in run.captions if c["image_id"] in keep and c.get("caption"))
    return {"framed_share": [len(per[lv]) / max(1, n_all[lv]) for lv in LEVELS],
            "framed_gap": [_mean([sc[r[1]] - sc[r[3]] for r in per[lv]]) for lv in LEVELS],
            "scene_gap": [_mean([sc[r[2]] - sc[r[3]] for r in per[lv]]) for lv in LEVELS]}


def print_table(ms: dict[str, dict]) -> None:
    """One block per run: rows are measures, columns levels 1-5."""
    for name, m in ms.items():
        am = m["assoc_conc"]
        print(f"\n== {name}: {m['run']}  images {m['images']}  captions {m['captions']}")
        print(f"{'measure':<36} {'L1':>6} {'L2':>6} {'L3':>6} {'L4':>6} {'L5':>6}  target / met")
        row = lambda label, xs, fmt="6.2f": print(f"{label:<36} " + " ".join(f"{x:{fmt}}" for x in xs), end="")  # noqa: E731
        row("association concreteness", am)
        print(f"  strictly down, drop {am[0] - am[4]:.2f} >= 1.5: {all(a > b for a, b in zip(am, am[1:])) and am[0] - am[4] >= 1.5}")
        row("caption-word concreteness", m["cap_conc"])
        print("  (reported)")
        row("distinct associations / captions", m["distinct"])
        print(f"  >= 0.5 every level: {min(m['distinct']) >= 0.5}")
        row("most used association, share", m["top_share"])
        print(f"  <= 2% every level: {max(m['top_share']) <= 0.02}")
        row("slot tag agreement", m["tag_agree"])
        print(f"  >= 0.95 every level: {min(m['tag_agree']) >= 0.95}")
        if "fluency" in m:
            row(f"fluency gap ({len(m['fluency_images'])} imgs, nats/tok)", m["fluency"], "+6.2f")
            print("  (lower is more fluent)")
            row("  framed captions, share", m["framed_share"])
            print()
            row("  framed captions, gap", m["framed_gap"], "+6.2f")
            print()
            row("  framed captions, scene alone, gap", m["scene_gap"], "+6.2f")
            print("  (the cut; the rest is the frame)")
        print(f"valid captions: {m['valid']:.1%} of captions and {m['caption_errors']} caption error rows (target >= 99%); "
              f"images with all 5 levels: {m['full_ladders']:.1%} (>= 95%)")
        print("most used per level: " + "; ".join(f"L{lv} " + ", ".join(f"{a} {n}" for a, n in m["top"][lv]) for lv in LEVELS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, default=[Path("runs/demo")])
    ap.add_argument("--fluency", type=int, default=0, help="images sampled for the SmolLM2 fluency gap (0: off)")
    a = ap.parse_args()
    print_table({str(r): measure(r, a.fluency) for r in a.runs})


if __name__ == "__main__":
    main()

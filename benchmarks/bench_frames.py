"""Frame templates of the substitution writer, compared on held-out images of a finished run.

    python benchmarks/bench_frames.py RUN [--from 25 --to 75] [--verbs | --adjectives]

For every level 4-5 caption of RUN that the writer framed with a noun (``--verbs``: a verb; with
``--adjectives`` every level 4-5 adjective's, in its slot or not), re-writes it with each template (the scene cut to 10 words minus the template's, grammatically if possible) and
prints the mean SmolLM2 fluency gap per template (nats/token, creative minus human caption).
Images ``--from``..``--to`` of the report's seed-0 order are used, so the report's own fluency
sample (the first 25) is not the one templates were chosen on. Two tables: all rows, and the rows
whose scene has no room for a four-word frame (where the writer falls back to a shorter one).
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from check_run import frame_of  # noqa: E402

TEMPLATES = {"a sense of": ", a sense of {}", "a moment of": ", a moment of {}", "a picture of": ", a picture of {}",
             "a hint of": ", a hint of {}", "full of": ", full of {}", "in": ", in {}", "and": ", and {}", "pure": ", pure {}",
             # prefixes: the association opens the caption and the scene keeps more of its words
             "X: scene": "{}:: ", "X: Scene": "{}: ", "X. Scene": "{}. ", "X - scene": "{} - ", "With X, scene": "With {}, "}
VERB_TEMPLATES = {"in the slot": None, "as if": ", as if {}", "X: scene": "{}:: ", "X: Scene": "{}: ", "X. Scene": "{}. ", "X - scene": "{} - "}  # the association as a gerund ("dreaming")
# adjectives of levels 4-5, whatever the writer did with them: in the slot ("A glad fire hydrant"), leading
# the scene as a fronted adjective, as its title, or after it
ADJ_TEMPLATES = {"in the slot": None, "X, scene": "{}, ", "X: scene": "{}:: ", "X: Scene": "{}: ", "X. Scene": "{}. ",
                 "X - scene": "{} - ", "as if": ", as if {}", "scene. X.": ". {}"}


def _join(scene: str, phrase: str, stop: str, doc) -> str:
    """Scene plus a suffix phrase (", a sense of X"), or a prefix ("With X, ") before the scene as
    the writer puts its titles (``substitute.titled``)."""
    from visassoc.stages.substitute import titled

    if phrase.startswith(", "):
        return scene + phrase + stop
    if phrase.startswith(". "):
        return scene + ". " + phrase[2:3].upper() + phrase[3:] + "."
    if phrase.endswith(". "):  # a one-word sentence before the scene, which keeps its capital
        return phrase[:1].upper() + phrase[1:] + scene + stop
    if phrase.endswith(":: "):  # the writer's title before substitute-15: its scene in lower case, as a lead's
        lead = titled(phrase[:-3] + ", ", scene, doc)
        return phrase[:1].upper() + phrase[1:-3] + ": " + lead[len(phrase) - 1:] + stop
    return titled(phrase[:1].upper() + phrase[1:], scene, doc) + stop


def main() -> None:
    from visassoc.report.fluency import token_nll
    from visassoc.stages.shorten import fit, parser, word_tokens

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--from", dest="lo", type=int, default=25)
    ap.add_argument("--to", dest="hi", type=int, default=75)
    ap.add_argument("--verbs", action="store_true", help="the rows framed with a verb ('Dreaming: ...') instead of a noun")
    ap.add_argument("--adjectives", action="store_true", help="the level 4-5 rows of adjectives, framed or not")
    a = ap.parse_args()
    from visassoc.stages.substitute import Draft, check, substitution
    from visassoc.text import inflect

    templates = VERB_TEMPLATES if a.verbs else ADJ_TEMPLATES if a.adjectives else TEMPLATES
    caps = pq.read_table(a.run / "captions.parquet").to_pylist()
    salient = pq.read_table(a.run / "salient.parquet").to_pylist()
    human = {r["image_id"]: r["caption"] for r in salient}
    pos = {(r["image_id"], r["word"]): r["pos"] for r in salient}
    order = sorted({c["image_id"] for c in caps if c["caption"]} & set(human))
    random.Random(0).shuffle(order)  # report/fluency.sample_images' order
    ids = set(order[a.lo : a.hi])
    rows = [c for c in caps if c["image_id"] in ids and c["level"] in (4, 5) and c["caption"]
            and ((pos.get((c["image_id"], c["word"])) == "ADJ") if a.adjectives else
                 (m := frame_of(c["caption"], c["association"], c["level"])) and m[0] == ("VBG" if a.verbs else "NN"))]
    nlp, alts = parser(), {}
    for n, r in enumerate(rows):
        doc = nlp(human[r["image_id"]])
        span = word_tokens(doc, r["word"])
        k = span[-1] if span else None
        for name, t in templates.items():
            if t is None:  # the association in the word's slot, where the writer's checks let it stand
                d = substitution(doc, k, r["association"], 10, span.start) if span else None
                if isinstance(d, Draft) and check([d])[0]:
                    alts[n, name] = d.text
                continue
            ph = t.format(inflect(r["association"], "VBG") if a.verbs else r["association"])
            budget = 10 - len(ph.strip(",.:- ").split())
            res = fit(doc, k, budget, relax=False) or fit(doc, k, budget)
            if res:
                alts[n, name] = _join(res.rstrip(".!").rstrip(), ph, "." if doc.text.strip().endswith(".") else "", doc)
    texts = sorted({human[i] for i in ids} | set(alts.values()) | {r["caption"] for r in rows})
    nll = dict(zip(texts, token_nll(texts)))

    def table(title: str, keep: list[int]) -> None:
        print(f"\n{title}: {len(keep)} captions of {len(ids)} images\n{'template':<14}{'rows':>6}{'gap':>8}")
        cur = [nll[rows[n]["caption"]] - nll[human[rows[n]["image_id"]]] for n in keep]
        print(f"{'(as written)':<14}{len(cur):>6}{sum(cur) / max(1, len(cur)):>+8.2f}")
        for name in templates:
            g = [nll[alts[n, name]] - nll[human[rows[n]["image_id"]]] for n in keep if (n, name) in alts]
            print(f"{name:<14}{len(g):>6}{(sum(g) / len(g) if g else float('nan')):>+8.2f}")

    kind = "adjectives" if a.adjectives else "framed verbs" if a.verbs else "framed nouns"
    table(f"all {kind}, levels 4-5", list(range(len(rows))))
    if not a.verbs and not a.adjectives:
        table("no room for a four-word frame", [n for n in range(len(rows)) if (n, "a sense of") not in alts])
    else:
        table("where the association can stand in the slot", [n for n in range(len(rows)) if (n, "in the slot") in alts])


if __name__ == "__main__":
    main()

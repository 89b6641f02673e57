"""visassoc study: export (Potato, Label Studio) and analyze with known answers.

Fakes: run dirs are synthetic (PIL images), and annotations are written by the test in each
tool's export format because no real annotators exist here. The Potato test at the end starts
the real Potato server on 127.0.0.1 and annotates through its HTTP API.
"""
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import yaml
from scipy.stats import spearmanr
from typer.testing import CliRunner

from visassoc.report.synthetic import make_synthetic_run
from visassoc.study import AnnotationError, analyze, export_study
from visassoc.study.export import KEY_FILE


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    # 60 images x (1-2 words) gives >= 54 valid captions per level, enough for a 300-item study
    return make_synthetic_run(tmp_path_factory.mktemp("runs") / "big", n_images=60, seed=0)


def _levels(items):
    return Counter(it["level"] for it in items if it["kind"] == "creative")


def test_potato_export_300_balanced_with_checks(tmp_path, big_run):
    s = export_study(big_run, tmp_path / "p", n=300, tool="potato", seed=1)
    key = json.loads((tmp_path / "p" / KEY_FILE).read_text())
    items = key["items"]
    assert s["items"] == len(items) == 300 and s["notes"] == []
    assert set(_levels(items).values()) == {54}  # 270 creative / 5 levels
    kinds = Counter(it["kind"] for it in items)
    assert kinds["human"] == 15 and kinds["foil"] == 15
    assert len({it["item_id"] for it in items}) == 300
    # every creative pick at one level comes from as many different images as possible
    assert len({it["image_id"] for it in items if it["level"] == 1}) >= 50
    cfg = yaml.safe_load((tmp_path / "p" / "config.yaml").read_text())
    assert [a["name"] for a in cfg["annotation_schemes"]] == ["grounded", "abstraction"]
    data = [json.loads(line) for line in (tmp_path / "p" / cfg["data_files"][0]).read_text().splitlines()]
    assert len(data) == 300 and set(data[0]) == {"id", "image", "caption"}  # annotators never see the level
    for row in data:
        assert (tmp_path / "p" / "media" / row["image"].removeprefix("/media/")).exists()
    # same seed, same study
    export_study(big_run, tmp_path / "p2", n=300, tool="potato", seed=1)
    assert json.loads((tmp_path / "p2" / KEY_FILE).read_text())["items"] == items


def test_label_studio_export(tmp_path, big_run):
    s = export_study(big_run, tmp_path / "ls", n=40, tool="label-studio", seed=0)
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert len(tasks) == s["items"] == 40
    assert all(t["data"]["image"].startswith("data:image/jpeg;base64,") for t in tasks)
    root = ET.fromstring((tmp_path / "ls" / "labeling_config.xml").read_text())
    names = {el.get("name") for el in root.iter() if el.get("name")}
    assert {"image", "caption", "grounded", "abstraction"} <= names
    assert {c.get("value") for c in root.iter("Choice")} == {"yes", "partly", "no"}
    s2 = export_study(big_run, tmp_path / "ls2", n=40, tool="label-studio", embed_images=False)
    t2 = json.loads((tmp_path / "ls2" / "tasks.json").read_text())
    assert t2[0]["data"]["image"].startswith("/data/local-files/?d=media/") and s2["items"] == 40
    assert "LOCAL_FILES_SERVING_ENABLED" in (tmp_path / "ls2" / "README.md").read_text()


def test_non_coco_run_uses_mismatch_checks_and_bad_inputs_fail_clearly(tmp_path):
    run = make_synthetic_run(tmp_path / "demo", n_images=6, with_instances=False)
    s = export_study(run, tmp_path / "o", n=20, tool="potato")
    assert s["counts"]["mismatch"] == 1 and any("mismatch" in n for n in s["notes"])
    with pytest.raises(ValueError, match="unknown tool"):
        export_study(run, tmp_path / "x", tool="excel")
    with pytest.raises(ValueError, match="does not exist"):
        export_study(tmp_path / "nope", tmp_path / "x")


# ---------------------------------------------------------------- analyze with known answers
NaN = None
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders x 12 units;
# published alpha: nominal 0.743, interval 0.849.
KRIPP = {"A": [1, 2, 3, 3, 2, 1, 4, 1, 2, NaN, NaN, NaN], "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NaN, 3],
         "C": [NaN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NaN], "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NaN]}
LEVEL_OF_UNIT = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5]
GROUNDED = {"A": "y y y y y p n p n - - -", "B": "y y y y p p p n n n - y",
            "C": "- y y y y p n n n n n -", "D": "y y y p p n n p n n n -"}
G = {"y": "yes", "p": "partly", "n": "no"}


def _key():
    items = [{"item_id": f"u{u + 1}", "kind": "creative", "level": lv} for u, lv in enumerate(LEVEL_OF_UNIT)]
    items += [{"item_id": i, "kind": k, "level": None} for i, k in (("h1", "human"), ("h2", "human"),
                                                                      ("f1", "foil"), ("f2", "foil"))]
    return {"version": 1, "items": items}


def _rows():
    rows = []
    for a in "ABCD":
        for u, (g, r) in enumerate(zip(GROUNDED[a].split(), KRIPP[a])):
            assert (g == "-") == (r is None)
            if r is not None:
                rows.append({"item_id": f"u{u + 1}", "annotator": a, "grounded": G[g], "abstraction": r})
        rows += [{"item_id": i, "annotator": a, "grounded": ans, "abstraction": None}
                 for i, ans in (("h1", "yes"), ("h2", "yes"), ("f1", "no"), ("f2", "partly"))]
    # E fails every attention check and rates u1-u4 as ungrounded metaphors
    rows += [{"item_id": i, "annotator": "E", "grounded": ans, "abstraction": None}
             for i, ans in (("h1", "no"), ("h2", "no"), ("f1", "yes"), ("f2", "yes"))]
    rows += [{"item_id": f"u{u}", "annotator": "E", "grounded": "no", "abstraction": 5} for u in (1, 2, 3, 4)]
    rows.append({"item_id": "zzz", "annotator": "A", "grounded": "yes", "abstraction": 1})  # not in the study
    return rows


def _label_studio_export(rows):
    tasks = {}
    for r in rows:
        t = tasks.setdefault(r["item_id"], {"id": len(tasks) + 1, "data": {"item_id": r["item_id"]}, "annotations": []})
        res = [{"from_name": "grounded", "to_name": "image", "type": "choices", "value": {"choices": [r["grounded"]]}}]
        if r["abstraction"] is not None:
            res.append({"from_name": "abstraction", "to_name": "image", "type": "rating",
                        "value": {"rating": r["abstraction"]}})
        t["annotations"].append({"completed_by": {"id": ord(r["annotator"]), "email": r["annotator"]},
                                 "result": res, "was_cancelled": False})
    return list(tasks.values())


def _nominal_alpha(rows, field):
    """Krippendorff's alpha for nominal data straight from its coincidence-matrix definition."""
    by = {}
    for r in rows:
        if r[field] is not None:
            by.setdefault(r["item_id"], []).append(r[field])
    o = Counter()
    for vals in by.values():
        m = len(vals)
        if m < 2:
            continue
        for i, a in enumerate(vals):
            for j, b in enumerate(vals):
                if i != j:
                    o[(a, b)] += 1 / (m - 1)
    n_c = Counter()
    for (a, _), v in o.items():
        n_c[a] += v
    n = sum(n_c.values())
    d_o = sum(v for (a, b), v in o.items() if a != b) / n
    d_e = sum(n_c[a] * n_c[b] for a in n_c for b in n_c if a != b) / (n * (n - 1))
    return 1 - d_o / d_e


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    (d / KEY_FILE).write_text(json.dumps(_key()))
    (d / "export.json").write_text(json.dumps(_label_studio_export(_rows())))
    return d


def test_analyze_reproduces_known_numbers(study, tmp_path):
    s = analyze(study / "export.json", tmp_path)
    assert s["attention"]["failing"] == ["E"] and s["attention"]["per_annotator"]["A"]["pass_rate"] == 1.0
    assert s["error_count"] == 1 and s["errors"][0]["item_id"] == "zzz"
    pl = s["per_level"]
    assert [pl[lv]["grounded_yes"]["k"] for lv in "12345"] == [7, 7, 2, 0, 1]
    assert [pl[lv]["grounded_yes"]["n"] for lv in "12345"] == [7, 8, 8, 8, 10]
    assert [pl[lv]["grounded_yes_or_partly"]["k"] for lv in "12345"] == [7, 8, 7, 3, 1]
    means = [pl[lv]["abstraction"]["mean"] for lv in "12345"]
    assert means == pytest.approx([12 / 7, 3.0, 2.25, 21 / 8, 2.8])
    lv_r = [(LEVEL_OF_UNIT[u], r) for a in "ABCD" for u, r in enumerate(KRIPP[a]) if r is not None]
    assert s["abstraction_vs_level"]["rho"] == pytest.approx(spearmanr(*zip(*lv_r)).statistic)
    assert s["agreement"]["abstraction_interval"] == pytest.approx(0.849, abs=5e-4)  # published value
    kept = [r for r in _rows() if r["annotator"] != "E" and r["item_id"] != "zzz"]
    assert s["agreement"]["grounded_nominal"] == pytest.approx(_nominal_alpha(kept, "grounded"))
    assert s["checks"]["human"]["grounded_yes"]["share"] == 1.0 and s["checks"]["foil"]["grounded_yes"]["k"] == 0
    md = (tmp_path / "analysis.md").read_text()
    assert "| 1 | 7 | 100.0% |" in md and "failing attention checks" in md and "E (excluded)" in md
    assert (tmp_path / "analysis.png").stat().st_size > 5000


def test_analyze_keep_failing_and_other_formats_agree(study, tmp_path):
    s = analyze(study / "export.json", tmp_path / "k", keep_failing=True)
    assert s["per_level"]["1"]["grounded_yes"]["n"] == 9 and s["per_level"]["1"]["grounded_yes"]["k"] == 7
    base = analyze(study / "export.json", tmp_path / "a")
    # the same answers as a plain CSV and as Potato user_state.json files give the same numbers
    rows = _rows()
    csv = tmp_path / "flat.csv"  # not in the module-scoped `study` dir: a re-run starts clean
    csv.write_text("item_id,annotator,grounded,abstraction\n"
                   + "".join(f"{r['item_id']},{r['annotator']},{r['grounded']},{r['abstraction'] or ''}\n" for r in rows))
    pot = tmp_path / "annotation_output"
    for a in "ABCDE":
        labels = {}
        for r in rows:
            if r["annotator"] == a:
                pairs = [[{"schema": "grounded", "name": r["grounded"]}, r["grounded"]]]
                if r["abstraction"] is not None:
                    pairs.append([{"schema": "abstraction", "name": str(r["abstraction"])}, str(r["abstraction"])])
                labels[r["item_id"]] = pairs
        (pot / a).mkdir(parents=True, exist_ok=True)
        (pot / a / "user_state.json").write_text(json.dumps({"user_id": a, "instance_id_to_label_to_value": labels}))
    for src in (csv, pot):
        other = analyze(src, tmp_path / f"out-{src.name}", key=study / KEY_FILE)
        assert other["per_level"] == base["per_level"] and other["agreement"] == base["agreement"]


def test_analyze_errors_are_one_line(tmp_path, study):
    with pytest.raises(AnnotationError, match="do not exist"):
        analyze(tmp_path / "missing.json", tmp_path)
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(AnnotationError, match="study_key.json"):
        analyze(tmp_path / "x.json", tmp_path / "o")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="neither JSON"):
        analyze(tmp_path / "junk.json", tmp_path / "o", key=study / KEY_FILE)


def _app():
    """The real `visassoc` CLI: the report and study commands as users call them."""
    from visassoc.cli import app

    return app


def test_study_cli_round_trip(tmp_path, study):
    run = make_synthetic_run(tmp_path / "r", n_images=6)
    r = CliRunner().invoke(_app(), ["study", "export", str(run), "--n", "20", "--tool", "label-studio",
                                    "--out", str(tmp_path / "ls"), "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert "20 items" in r.output
    r = CliRunner().invoke(_app(), ["study", "analyze", str(study / "export.json"), "--out", str(tmp_path / "an")])
    assert r.exit_code == 0, r.output
    assert "Krippendorff" in r.output and (tmp_path / "an" / "analysis.json").exists()
    bad = CliRunner().invoke(_app(), ["study", "analyze", str(tmp_path / "none.json"), "--out", str(tmp_path)])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and bad.output.startswith("error:")


# ---------------------------------------------------------------- Potato, for real, on loopback
def _listening_socket() -> socket.socket:
    """A loopback socket bound to an ephemeral port and listening, handed to Potato as it is
    (no window in which another process could take the port between choosing and binding)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    s.set_inheritable(True)
    return s


@pytest.mark.slow
def test_potato_serves_the_exported_project_and_round_trips(tmp_path):
    potato = shutil.which("potato") or str(Path(sys.executable).with_name("potato"))
    if not Path(potato).exists():
        pytest.skip("potato-annotation not installed (pip install potato-annotation): integration test skipped")
    requests = pytest.importorskip("requests")
    run = make_synthetic_run(tmp_path / "r", n_images=8)
    sock = _listening_socket()
    port = sock.getsockname()[1]
    export_study(run, tmp_path / "proj", n=12, tool="potato", port=port)
    items = {it["item_id"]: it for it in json.loads((tmp_path / "proj" / KEY_FILE).read_text())["items"]}
    log = open(tmp_path / "potato.log", "w")
    # Potato serves with Flask's app.run -> werkzeug.run_simple, which takes an already bound
    # socket from WERKZEUG_SERVER_FD when WERKZEUG_RUN_MAIN is "true" (its reloader's hand-over)
    proc = subprocess.Popen([potato, "start", "config.yaml", "-p", str(port), "--host", "127.0.0.1"],
                            cwd=tmp_path / "proj", stdout=log, stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),),
                            env={**os.environ, "NO_PROXY": "127.0.0.1", "WERKZEUG_RUN_MAIN": "true",
                                 "WERKZEUG_SERVER_FD": str(sock.fileno())})
    sock.close()  # the child holds its own copy
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # up to 120 s to start
            try:
                if requests.get(base + "/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # refused never happens here: a timeout while it starts
                pass
            assert proc.poll() is None, (tmp_path / "potato.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("potato did not start within 120 s")
        answers = {}
        for user, grounded in (("ann1", "yes"), ("ann2", "partly")):
            s = requests.Session()
            html = s.post(base + "/auth", data={"email": user, "pass": ""}, timeout=30).text
            for step in range(len(items)):
                iid = re.search(r'id="instance_id"[^>]*value="([^"]+)"', html).group(1)
                it = items[iid]
                assert it["caption"].replace("'", "&#39;").replace('"', "&#34;") in html or it["caption"] in html
                assert f"/media/{it['media']}" in html
                if step == 0:
                    img = s.get(f"{base}/media/{it['media']}", timeout=30)
                    assert img.status_code == 200 and img.headers["content-type"].startswith("image/")
                level = it["level"] or 1
                r = s.post(base + "/updateinstance", timeout=30, json={
                    "instance_id": iid, "annotations": {f"grounded:{grounded}": grounded,
                                                        f"abstraction:{level}": str(level)}})
                assert r.status_code == 200, r.text[:300]
                answers[(user, iid)] = (grounded, level)
                s.post(base + "/annotate", json={"action": "next_instance", "instance_id": iid},
                       headers={"X-Potato-Navigation": "1"}, timeout=30)
                html = s.get(base + "/annotate", timeout=30).text
        assert len(answers) == 2 * len(items)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    s = analyze(tmp_path / "proj" / "annotation_output", tmp_path / "an", keep_failing=True)
    assert s["annotations_used"] == 2 * len(items) and s["annotators"] == 2
    for lv in "12345":
        g = s["per_level"][lv]
        if g["annotations"]:
            assert g["grounded_yes"]["share"] == 0.5 and g["abstraction"]["mean"] == int(lv)
    assert s["abstraction_vs_level"]["rho"] == pytest.approx(1.0)
    # ann1 always "yes", ann2 always "partly": the test's own alpha of exactly those answers
    got_rows = [{"item_id": iid, "annotator": user, "grounded": g} for (user, iid), (g, _) in answers.items()]
    assert s["agreement"]["grounded_nominal"] == pytest.approx(_nominal_alpha(got_rows, "grounded"))

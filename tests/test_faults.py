"""Fault suite: the real offline pipeline (captions describer, lexical miner, substitution
writer) under `kill -9` at random moments, broken image files, junk model output and output
directory failures. Every fault must end in identical tables after a resume, an error row, or a
clear one-line error, never a traceback or a silently lost item.

Mounting tmpfs (disk full, read-only) needs root with CAP_SYS_ADMIN; without it the disk-full
test falls back to a write hook raising ENOSPC at the same part, and the read-only test skips,
saying so.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

import visassoc
from visassoc.backends.base import Generation, Usage
from visassoc.backends.jsonparse import parse_and_validate, parse_json_loose
from visassoc.cli import app
from visassoc.config import RunConfig
from visassoc.engine.export import TABLES
from visassoc.images import ImageError, inspect_image, open_rgb
from visassoc.engine.pipeline import RunLocked
from visassoc.stages.associate import LLMAssociationMiner, association_schema, clean_ladder
from visassoc.stages.caption import CAPTION_SCHEMA, VLMCaptionWriter, write_captions
from visassoc.stages.describe import DESCRIBE_SCHEMA, VLMDescriber
from visassoc.stages.model import is_form_of
from visassoc.records import LEVELS, AssociationRecord, to_row
from visassoc.stages.interfaces import AssociationRequest, CaptionRequest, DescribeRequest, DescribeResult, StageError
from visassoc.engine.store import rows_to_table
from visassoc.text import validate_caption

N_IMAGES, CHUNK = 200, 10
PARTS = N_IMAGES // CHUNK  # parts per stage: every synthetic image survives every stage
STAGES = ("images", "describe", "salient", "associate", "caption")
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 170, 40), "yellow": (230, 220, 20)}
SHAPES = ("ball", "box", "cup", "kite", "boat", "hat")
PLACES = ("on a wooden table", "in a green field")
KEYS = {"images": ("image_id",), "descriptions": ("image_id",), "salient": ("image_id", "rank"),
        "associations": ("image_id", "word", "level", "rank"), "captions": ("image_id", "word", "level")}


@pytest.fixture(scope="module", autouse=True)
def _no_progress_bars():
    """Model stages draw a bar per batch: thousands of fuzz examples would flood the log."""
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    yield
    if old is None:
        os.environ.pop("TQDM_DISABLE", None)
    else:
        os.environ["TQDM_DISABLE"] = old


# ---- shared data: 200 tiny images and one uninterrupted reference run ------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    """16x16 PNG/JPEG images, each with a colour + shape + place caption (48 distinct captions)."""
    d = tmp_path_factory.mktemp("faults")
    imgs = d / "imgs"
    imgs.mkdir()
    rng = random.Random(0)
    lines = []
    for i in range(N_IMAGES):
        colour, shape, place = rng.choice(sorted(COLOURS)), rng.choice(SHAPES), rng.choice(PLACES)
        name = f"im{i:04d}.{'png' if i % 2 else 'jpg'}"
        Image.new("RGB", (16, 16), tuple((v + i) % 256 for v in COLOURS[colour])).save(imgs / name)
        lines.append(json.dumps({"image": name, "captions": [f"A {colour} {shape} {place}."]}))
    caps = d / "captions.jsonl"
    caps.write_text("\n".join(lines) + "\n")
    return imgs, caps


def config(dataset, out: Path, **kw) -> RunConfig:
    imgs, caps = dataset
    return RunConfig(out=out, images=imgs, captions=caps, chunk_size=CHUNK, progress=False, **kw)


def cli_args(dataset, out: Path) -> list[str]:
    imgs, caps = dataset
    return ["run", "--images", str(imgs), "--captions", str(caps), "--out", str(out), "--chunk-size", str(CHUNK), "-q"]


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    res = visassoc.run(config(dataset, out))
    assert res.counts["images_ok"] == N_IMAGES and res.counts["errors"] == 0
    return out


def tables(out: Path) -> dict[str, list[dict]]:
    return {t: pq.read_table(out / f"{t}.parquet").to_pylist() for t in TABLES}


def assert_same_tables(out: Path, reference: Path) -> None:
    got, want = tables(out), tables(reference)
    for name in TABLES:
        diff = [(g, w) for g, w in zip(got[name], want[name]) if g != w]
        assert len(got[name]) == len(want[name]) and not diff, (
            f"{name}: {len(got[name])} rows vs {len(want[name])} in the reference, {len(diff)} differ, first: {diff[:1]}")
    for name, key in KEYS.items():
        rows = [tuple(r[k] for k in key) for r in got[name]]
        assert len(rows) == len(set(rows)), f"duplicate rows in {name}"


def part_keys(out: Path) -> dict[str, Counter]:
    """stage -> how many done markers cover each key (1 everywhere in a healthy run)."""
    got = {}
    for stage in STAGES:
        c: Counter = Counter()
        for m in (out / "_work").glob(f"{stage}-*/part-*.done.json"):
            c.update(json.loads(m.read_text())["keys"])
        got[stage] = c
    return got


def one_line_error(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not a one-line error:\n{output}"
    assert "Traceback" not in output
    return lines[0]


# ---- crash: kill -9 at random moments, resume, compare ----------------------------------------
def n_parts(out: Path, stage: str) -> int:
    return len(list((out / "_work").glob(f"{stage}-*/part-*.done.json")))


def wait_for_parts(proc, out: Path, stage: str, n: int, log: Path) -> None:
    deadline = time.monotonic() + 300
    while n_parts(out, stage) < n:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before {stage} part {n}:\n{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {stage} part {n} after 300 s")
        time.sleep(0.005)


KILL_PLANS = {  # seed -> stages to kill in, one after another, a fresh `visassoc run` process per kill
    11: ("images", "associate"),
    12: ("describe", "salient", "caption"),
}


@pytest.mark.parametrize("seed", sorted(KILL_PLANS))
def test_sigkill_at_random_moments_then_resume_gives_the_reference_tables(seed, dataset, reference, tmp_path):
    """SIGKILL `python -m visassoc run` after a random number of parts of a stage plus a random
    0-40 ms (so some kills land inside a part's writes), 2-3 times, then resume in-process.
    Before the caption kill a second run on the same dir is started while the first holds the lock."""
    rng = random.Random(seed)
    out, log = tmp_path / "run", tmp_path / "log.txt"
    cmd = [sys.executable, "-m", "visassoc", *cli_args(dataset, out)]
    for stage in KILL_PLANS[seed]:
        base = n_parts(out, stage)
        k = rng.randint(1, PARTS - base - 2)
        with log.open("w") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
            try:
                if stage == "caption":  # the first run holds the lock: a second one is refused, touches nothing
                    wait_for_parts(proc, out, stage, base + 1, log)
                    r = CliRunner().invoke(app, cli_args(dataset, out))
                    assert r.exit_code == 2 and "another visassoc run is using" in one_line_error(r.output)
                    with pytest.raises(RunLocked):
                        visassoc.run(config(dataset, out))
                wait_for_parts(proc, out, stage, base + k, log)
                time.sleep(rng.uniform(0, 0.04))
                proc.send_signal(signal.SIGKILL)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"the run finished before the kill in {stage}"

    before = part_keys(out)
    assert all(v == 1 for c in before.values() for v in c.values()), "a key is covered by two parts"
    res = visassoc.run(config(dataset, out))
    after, ref = part_keys(out), part_keys(reference)
    assert after == ref  # every key in exactly one part: no gaps, no duplicates
    for stage in STAGES:  # finished parts were kept: at most the chunk in flight is redone
        assert res.new_items[stage] == len(ref[stage]) - len(before[stage])
    assert res.total_new < len(STAGES) * N_IMAGES
    for d in (out / "_work").iterdir():  # no temp files or unmarked leftovers survive a resume
        marked = {m.name.split(".")[0] for m in d.glob("*.done.json")}
        assert all(p.name.split(".")[0] in marked for p in d.iterdir()), sorted(p.name for p in d.iterdir())
    assert_same_tables(out, reference)


@pytest.mark.parametrize("stage,part", [("associate", 7)])
def test_sigkill_between_a_parts_data_and_its_marker_then_resume(stage, part, dataset, reference, tmp_path):
    """Deterministic: the CLI kills itself with SIGKILL right after the first Parquet file of a
    stage's part is written (tests/hooked_cli.py), i.e. after some of the part's data and before
    its done marker. The half-written part must count as not done and be redone on resume; a
    store that wrote the marker first would leave a "done" part without its data."""
    out = tmp_path / "run"
    cmd = [sys.executable, str(Path(__file__).with_name("hooked_cli.py")), "kill", stage, str(2 * part - 1), "--",
           *cli_args(dataset, out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)  # a hang guard only
    assert r.returncode == -signal.SIGKILL, f"exit status {r.returncode}:\n{r.stderr[-2000:]}"
    work = next((out / "_work").glob(f"{stage}-*"))
    unmarked = [p.name for p in work.glob("part-*.parquet") if not (work / (p.name.split(".")[0] + ".done.json")).exists()]
    assert len(unmarked) == 1, unmarked  # the half-written part: data without a marker
    before = part_keys(out)
    assert len(before[stage]) == CHUNK * (part - 1) and not (out / "manifest.json").exists()
    res = visassoc.run(config(dataset, out))
    assert res.new_items[stage] == N_IMAGES - CHUNK * (part - 1)
    assert part_keys(out) == part_keys(reference)
    assert_same_tables(out, reference)
    assert not [p for p in work.iterdir() if p.name.split(".")[0] == unmarked[0].split(".")[0]]  # leftover deleted


# ---- bad image files ---------------------------------------------------------------------------
def png(width: int, height: int, bit_depth: int, colour_type: int, row: bytes | None, rows: int | None = None) -> bytes:
    """A PNG written by hand, streaming ``rows`` copies of ``row`` through zlib (a 30k x 30k
    1-bit image compresses to ~100 KB without ever existing in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    if row is not None:
        z = zlib.compressobj(6)
        line = b"\x00" + row
        block = line * 256
        idat = b"".join(z.compress(block) for _ in range((rows or height) // 256))
        idat += z.compress(line * ((rows or height) % 256)) + z.flush()
        out += chunk(b"IDAT", idat)
    return out + chunk(b"IEND", b"")


def write_bad_images(d: Path) -> dict[str, bool | None]:
    """file name -> True (must load), False (must be an error row), None (either, one line)."""
    d.mkdir(parents=True, exist_ok=True)
    good = d / "ok.jpg"
    Image.new("RGB", (32, 24), (200, 80, 40)).save(good, quality=95)
    data = good.read_bytes()
    (d / "truncated.jpg").write_bytes(data[:200])
    (d / "truncated_tail.jpg").write_bytes(data[:-40])
    (d / "trailing_garbage.jpg").write_bytes(data + b"garbage" * 10)
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is not an image\n")
    Image.new("RGB", (8, 8), "red").save(d / "png_named.jpg", format="PNG")
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(d / "cmyk.jpg")
    Image.new("I;16", (32, 32), 40000).save(d / "gray16.png")
    (d / "rgb16.png").write_bytes(png(4, 4, 16, 2, struct.pack(">HHH", 65535, 0, 32768) * 4))
    pal = Image.new("P", (32, 32), 3)
    pal.putpalette([0, 0, 0] * 3 + [255, 0, 0] + [0, 0, 0] * 252)
    pal.save(d / "palette.png", transparency=3)
    Image.new("RGBA", (32, 32), (255, 0, 0, 0)).save(d / "alpha.png")
    Image.new("LA", (32, 32), (10, 128)).save(d / "gray_alpha.png")
    Image.new("1", (9, 9), 1).save(d / "onebit.png")
    Image.new("RGB", (1, 1), "green").save(d / "onepixel.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: width and height swap once oriented
    Image.new("RGB", (40, 20), "blue").save(d / "rotated.jpg", exif=exif)
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "green", "blue")]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    (d / "bomb.png").write_bytes(png(30_000, 30_000, 1, 0, bytes(30_000 // 8)))
    (d / "bomb_header_only.png").write_bytes(png(100_000, 100_000, 8, 2, None))
    Image.new("F", (8, 8), float("nan")).save(d / "nan_float.tif")
    with open(os.fsencode(d) + b"/caf\xe9.jpg", "wb") as f:  # a Latin-1 file name: not valid UTF-8
        f.write(data)
    unreadable = d / "unreadable.jpg"
    Image.new("RGB", (8, 8), "white").save(unreadable)
    unreadable.chmod(0)
    try:
        unreadable.read_bytes()
        can_read = True  # root ignores file modes
    except PermissionError:
        can_read = False
    return {"ok": True, "truncated": False, "truncated_tail": None, "trailing_garbage": True, "empty": False,
            "text": False, "png_named": True, "cmyk": True, "gray16": True, "rgb16": True, "palette": True,
            "alpha": True, "gray_alpha": True, "onebit": True, "onepixel": True, "rotated": True, "anim": True,
            "bomb": False, "bomb_header_only": False, "nan_float": None, "unreadable": can_read}


def test_bad_images_load_correctly_or_become_one_line_error_rows(tmp_path):
    d = tmp_path / "imgs"
    expect = write_bad_images(d)
    caps = tmp_path / "c.jsonl"
    names = sorted(p.name for p in d.iterdir()) + ["ghost.jpg"]  # captioned, but no such file
    odd = {"onepixel.png": "A small red ball \ud800 on a table."}  # a lone surrogate: Parquet needs UTF-8
    caps.write_text("".join(json.dumps({"image": n, "captions": [odd.get(n, "A small red ball on a table.")]}) + "\n"
                            for n in names))
    out = tmp_path / "run"
    visassoc.run(RunConfig(out=out, images=d, captions=caps, progress=False))
    t = tables(out)
    status = {r["image_id"]: r["status"] for r in t["images"]}
    latin1 = [i for i in status if i.startswith("caf")]
    assert len(latin1) == 1 and status.pop(latin1[0]) == "error"
    msg = next(e["message"] for e in t["errors"] if e["image_id"] == latin1[0])
    assert "not valid UTF-8" in msg and "\n" not in msg
    assert sorted(status) == sorted(list(expect) + ["ghost"])  # one row per input, nothing dropped
    errors = Counter(e["image_id"] for e in t["errors"] if e["stage"] == "images")
    for name, want in expect.items():
        if want is not None:
            assert status[name] == ("ok" if want else "error"), name
        assert errors[name] == (status[name] == "error"), name  # exactly one error row per bad file
    assert status["ghost"] == "error" and errors["ghost"] == 1
    msgs = {e["image_id"]: e["message"] for e in t["errors"] if e["stage"] == "images"}
    assert all(m and "\n" not in m and len(m) < 300 for m in msgs.values()), msgs
    assert "0 bytes" in msgs["empty"] and "not a recognised image" in msgs["text"]
    assert "decompression bomb" in msgs["bomb"] and "decompression bomb" in msgs["bomb_header_only"]
    assert "no such image" in msgs["ghost"]
    rows = {r["image_id"]: r for r in t["images"]}
    assert (rows["rotated"]["width"], rows["rotated"]["height"]) == (20, 40)
    assert (rows["anim"]["width"], rows["onepixel"]["height"]) == (16, 1)
    ok = {i for i, s in status.items() if s == "ok"}
    assert {r["image_id"] for r in t["captions"]} == ok  # the run went on to the end for every good file


def test_odd_modes_decode_to_the_right_rgb_pixels(tmp_path):
    d = tmp_path / "imgs"
    write_bad_images(d)
    px = {n: open_rgb(d / f).getpixel((0, 0)) for n, f in [
        ("cmyk", "cmyk.jpg"), ("gray16", "gray16.png"), ("rgb16", "rgb16.png"), ("palette", "palette.png"),
        ("alpha", "alpha.png"), ("gray_alpha", "gray_alpha.png"), ("anim", "anim.gif"), ("onebit", "onebit.png")]}
    assert px["cmyk"][0] > 200 and px["cmyk"][1] < 60  # C=0 M=Y=255: red
    assert abs(px["gray16"][0] - round(40000 / 65535 * 255)) <= 1 and px["gray16"][0] == px["gray16"][2]
    assert px["rgb16"][0] == 255 and px["rgb16"][1] == 0 and abs(px["rgb16"][2] - 128) <= 1
    assert px["palette"] == (255, 255, 255)  # transparent palette entry over white, not its red
    assert px["alpha"] == (255, 255, 255)  # fully transparent red over white
    assert px["gray_alpha"][0] == px["gray_alpha"][1] > 10  # half-transparent dark grey over white
    assert px["anim"][0] > 200 and px["anim"][1] < 50  # first frame (red)
    assert px["onebit"] == (255, 255, 255)
    assert all(open_rgb(d / f).mode == "RGB" for f in ("cmyk.jpg", "gray16.png", "anim.gif", "onebit.png"))


def test_unreadable_file_is_a_permission_error_row(tmp_path):
    """chmod 000. Root ignores file modes, so as root the check runs in a forked child that
    drops to uid/gid 65534 (nobody); it skips only if that is not permitted."""
    d = Path(tempfile.mkdtemp(prefix="visassoc-perm-"))  # pytest's tmp dirs are 0700: nobody could not enter
    try:
        d.chmod(0o755)
        control, locked = d / "control.png", d / "locked.png"
        for p in (control, locked):
            Image.new("RGB", (8, 8), "white").save(p)
        control.chmod(0o644)
        locked.chmod(0)
        inspect_image(control)  # loads PIL's plugins before any fork

        def check() -> list[str]:
            got = []
            for p in (control, locked):
                try:
                    inspect_image(p)
                    got.append("ok")
                except ImageError as e:
                    got.append(str(e))
            return got

        if os.geteuid() != 0:
            got = check()
        else:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: never return into pytest
                code = 0
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    os.write(w, json.dumps(check()).encode())
                except PermissionError:
                    code = 3
                except BaseException as e:  # noqa: BLE001
                    os.write(w, json.dumps([f"child failed: {e!r}"]).encode())
                os._exit(code)
            os.close(w)
            blob = b""
            while chunk := os.read(r, 65536):
                blob += chunk
            os.close(r)
            _, st_ = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(st_) == 3:
                pytest.skip("running as root and cannot drop to uid 65534: chmod 000 does not block root's reads")
            got = json.loads(blob)
        assert got[0] == "ok", got
        assert got[1].startswith("permission denied") and "\n" not in got[1], got
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- junk model output ----------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=20)
WORDISH = (st.sampled_from(["sphere", "toy", "game", "competition", "journey", "ball", "balls", "Ball!", "", " ",
                            "a b c d e", "toy_box", "furniture", "wooden", "red", "reddish", "🎈 party", "1", "-"])
           | st.text(max_size=15) | st.integers() | st.none())
LEVEL_KEY = st.sampled_from(["1", "2", "3", "4", "5", "level 3", "distance_5", "6", "0", "x"]) | st.text(max_size=4)
LADDERISH = st.dictionaries(st.sampled_from(["ball", "Ball", "balls", "table", "red", "associations", "x"])
                            | st.text(max_size=8),
                            st.dictionaries(LEVEL_KEY, st.lists(WORDISH, max_size=5) | WORDISH, max_size=6)
                            | st.lists(WORDISH, max_size=3) | WORDISH, max_size=4)
ANSWERISH = st.fixed_dictionaries({}, optional={"description": JSON | st.text(max_size=60),
                                                "short_caption": JSON | st.text(max_size=40),
                                                "caption": JSON | st.text(max_size=60)})
WRAPS = ["{}", "Sure! Here it is:\n```json\n{}\n```\nHope this helps.", "```\n{}", "Answer: {} (done)", "{}\n{}",
         "<think>hmm</think>{}"]


def as_model_text(value, cut: int | None, wrap: str) -> str:
    s = json.dumps(value, ensure_ascii=bool(cut and cut % 2))
    return wrap.replace("{}", s[:cut] if cut is not None else s)


MODEL_TEXT = st.one_of(st.text(max_size=200),
                       st.builds(as_model_text, JSON | LADDERISH | ANSWERISH, st.none() | st.integers(0, 300),
                                 st.sampled_from(WRAPS)))
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEEP = ["[" * 3000, "{" * 3000, '{"a":' * 2000, "```json\n" + "[" * 5000 + "```"]


def assert_one_line(message: str) -> None:
    assert isinstance(message, str) and message.strip() and "\n" not in message, repr(message)


@FUZZ
@given(MODEL_TEXT)
@example(DEEP[0]).via("deep nesting")
@example(DEEP[1]).via("deep nesting")
@example(DEEP[2]).via("deep nesting")
@example(DEEP[3]).via("deep nesting")
def test_json_parsers_return_a_value_or_a_one_line_valueerror(text):
    try:
        parse_json_loose(text)
    except ValueError as e:
        assert_one_line(str(e))
    for schema in (DESCRIBE_SCHEMA, CAPTION_SCHEMA, association_schema(["ball", "table"])):
        try:
            value = parse_and_validate(text, schema)
        except ValueError as e:
            assert_one_line(str(e))
        else:
            jsonschema.validate(value, schema)


class ScriptedBackend:
    """Stands in for a model server (none can run here): each call gets the next scripted text,
    parsed and validated the way the real backends do (parse_and_validate, error on failure)."""

    provider, model, supports_images, concurrency = "scripted", "junk", True, 1

    def __init__(self, texts: list[str]):
        self.texts, self.calls = list(texts), 0

    def identity(self) -> dict:
        return {"provider": self.provider, "model": self.model}

    def generate(self, messages, *, schema=None, params=None) -> Generation:
        text = self.texts[self.calls % len(self.texts)]
        self.calls += 1
        gen = Generation(text=text, usage=Usage(requests=1))
        if schema is not None:
            try:
                gen.parsed = parse_and_validate(text, schema)
            except ValueError as e:
                gen.error = str(e)
        elif not text.strip():
            gen.error = "empty model output"
        return gen


CAPTION = "A red ball on a wooden table."
WORDS = [("ball", "ball", "NOUN"), ("table", "table", "NOUN"), ("red", "red", "ADJ")]


@FUZZ
@given(st.lists(MODEL_TEXT, min_size=1, max_size=2))
def test_describer_turns_any_answer_into_a_result_or_an_error(texts):
    res = VLMDescriber(ScriptedBackend(texts)).describe([DescribeRequest("i", "x.jpg", [CAPTION])])
    assert len(res) == 1
    if isinstance(res[0], StageError):
        assert_one_line(res[0].message)
    else:
        assert isinstance(res[0], DescribeResult) and res[0].description_source == "vlm"
        assert_one_line(res[0].description)
        assert res[0].short_caption is None or (assert_one_line(res[0].short_caption) is None)
        rows_to_table("descriptions", [dict(image_id="i", description=res[0].description, description_source="vlm",
                                            short_caption=res[0].short_caption, model=res[0].model)])


@FUZZ
@given(st.lists(MODEL_TEXT | st.builds(as_model_text, LADDERISH, st.none(), st.sampled_from(WRAPS)),
                min_size=1, max_size=3), st.integers(1, 3))
def test_association_miner_turns_any_answer_into_ladders_or_errors(texts, per_level):
    miner = LLMAssociationMiner(ScriptedBackend(texts), per_level=per_level)
    reqs = [AssociationRequest("i", w, lemma, pos, CAPTION, CAPTION, [x for x, _, _ in WORDS if x != w])
            for w, lemma, pos in WORDS]
    res = miner.mine(reqs)
    assert len(res) == len(reqs)
    rows = []
    for req, ladder in zip(reqs, res):
        if isinstance(ladder, StageError):
            assert_one_line(ladder.message)
            continue
        assert sorted(ladder) == list(LEVELS)
        for level, assocs in ladder.items():
            assert 1 <= len(assocs) <= per_level and len(set(assocs)) == len(assocs)
            for a in assocs:
                assert isinstance(a, str) and a == a.strip() and a and not is_form_of(a, req.word, req.lemma)
        for level, assocs in clean_ladder(ladder, req, per_level).items():
            rows += [to_row(AssociationRecord("i", req.word, level, k, a, miner.name)) for k, a in enumerate(assocs)]
    rows_to_table("associations", rows)


@FUZZ
@given(st.dictionaries(st.integers(-1, 7) | LEVEL_KEY, st.lists(WORDISH, max_size=6) | WORDISH, max_size=8),
       st.integers(1, 4))
def test_clean_ladder_enforces_the_contract_on_any_ladder(ladder, per_level):
    req = AssociationRequest("i", "balls", "ball", "NOUN", CAPTION, CAPTION)
    out = clean_ladder(ladder, req, per_level)
    assert sorted(out) == list(LEVELS)
    flat = [a for v in out.values() for a in v]
    assert len(flat) == len(set(flat))
    for assocs in out.values():
        assert len(assocs) <= per_level
        for a in assocs:
            assert isinstance(a, str) and a and a == " ".join(a.split()) and a == a.lower()
            assert "ball" not in a.split() and "balls" not in a.split()


@FUZZ
@given(st.lists(MODEL_TEXT, min_size=1, max_size=4), st.integers(0, 2))
def test_caption_writer_and_validation_turn_any_answer_into_a_row_or_an_error(texts, max_reasks):
    writer = VLMCaptionWriter(ScriptedBackend(texts))
    reqs = [CaptionRequest("i", "x.jpg", "ball", "NOUN", CAPTION, CAPTION, level, assoc, other_words=["table", "red"])
            for level, assoc in ((1, "sphere"), (3, "game"), (5, "journey"))]
    for ans in writer.write(reqs):
        if isinstance(ans, StageError):
            assert_one_line(ans.message)
        else:
            assert_one_line(ans)
    cfg = RunConfig(out="unused", demo=True, max_reasks=max_reasks)
    fresh = [CaptionRequest(**{**r.__dict__, "feedback": None}) for r in reqs]
    res = write_captions(VLMCaptionWriter(ScriptedBackend(texts)), fresh, cfg)
    rows_to_table("captions", res["captions"])
    rows_to_table("errors", res["errors"])
    keys = [(r["level"]) for r in res["captions"]] + [(e["level"]) for e in res["errors"]]
    assert sorted(keys) == [1, 3, 5]  # every request: exactly one caption row or one error row
    for r in res["captions"]:
        assert r["valid"] == (r["reason"] is None)
        assert validate_caption(r["caption"], r["association"], CAPTION) == r["reason"]
        assert 1 <= r["attempts"] <= max_reasks + 1
    for e in res["errors"]:
        assert_one_line(e["message"])


@FUZZ
@given(st.text(max_size=120) | MODEL_TEXT, st.text(max_size=30) | WORDISH.filter(lambda w: isinstance(w, str)),
       st.text(max_size=60), st.integers(1, 5), st.integers(1, 40))
def test_validate_caption_returns_none_or_a_one_line_reason(caption, association, short, lo, hi):
    reason = validate_caption(caption, association, short, lo, hi)
    assert reason is None or (assert_one_line(reason) is None)
    if reason is None:
        assert lo <= len(caption.split()) <= hi


# ---- output directory problems ---------------------------------------------------------------
@contextmanager
def tmpfs(path: Path, size_kb: int, read_only: bool = False, inodes: int | None = None):
    """A size-limited tmpfs at ``path``; yields None when mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size_kb}k" + (",ro" if read_only else "") + (f",nr_inodes={inodes}" if inodes else "")
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, opts: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{opts}", str(path)], check=True, capture_output=True)


@pytest.mark.parametrize("case", ["out_is_a_file", "out_under_a_file", "work_is_a_file"])
def test_output_path_that_is_not_a_directory_is_a_one_line_error(case, dataset, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    out = {"out_is_a_file": blocker, "out_under_a_file": blocker / "run", "work_is_a_file": tmp_path / "run"}[case]
    if case == "work_is_a_file":
        out.mkdir()
        (out / "_work").write_text("keep me")
        blocker = out / "_work"
    r = CliRunner().invoke(app, cli_args(dataset, out) + ["--limit", "3"])
    assert r.exit_code != 0
    one_line_error(r.output)
    assert blocker.read_text() == "keep me"


def test_read_only_output_dir_is_a_one_line_error_and_changes_nothing(dataset, tmp_path):
    with tmpfs(tmp_path / "mnt", 4096) as mnt:
        if mnt is None:
            pytest.skip("cannot mount a tmpfs (needs root with CAP_SYS_ADMIN); as root chmod does not make a dir "
                        "read-only, so there is no other honest way to test this here")
        out = mnt / "run"
        visassoc.run(config(dataset, out, limit=20))
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        remount(mnt, "ro")
        for target in (out, mnt / "fresh"):  # a finished run on read-only media; a new run there
            r = CliRunner().invoke(app, cli_args(dataset, target) + ["--limit", "20"])
            assert r.exit_code != 0
            assert "read-only" in one_line_error(r.output).lower()
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_disk_full_mid_stage_stops_with_a_one_line_error_and_resumes_once_there_is_space(
        dataset, reference, tmp_path, monkeypatch):
    """ENOSPC inside the associate stage's 11th part, after its first data file: a tmpfs whose
    free inodes (tmpfs answers ENOSPC when they run out, as when its pages do; inodes are counted
    exactly, pages are not) are used up by ballast files but for what the reference run created
    up to there. Where mounting is not permitted a write hook raises the same ENOSPC at the same
    file instead. A marker written before its data would leave a "done" part without its data."""
    work = reference / "_work"
    room = 3 + sum(1 + len(list(d.iterdir())) for d in work.iterdir()  # lock, run marker, _work, finished stages
                   if d.name.split("-")[0] in ("images", "describe", "salient"))
    room += 1 + 3 * (PARTS // 2) + 1  # associate's dir, 10 parts of 3 files, the next part's first table
    with tmpfs(tmp_path / "mnt", 64 * 1024, inodes=room + 1000) as mnt:
        if mnt is not None:
            out = mnt / "run"
            out.mkdir()
            ballast = mnt / "ballast"
            ballast.mkdir()
            for i in range(os.statvfs(mnt).f_favail - room):
                (ballast / str(i)).touch()
        else:  # a failing write hook at the same file
            import errno

            import visassoc.engine.store as store_mod

            out, real, n = tmp_path / "run", store_mod.write_table_atomic, {"associate": 0}

            def full(table, path):
                if path.parent.name.startswith("associate-"):
                    n["associate"] += 1
                    if n["associate"] > 2 * (PARTS // 2) + 1:  # two tables per part
                        raise OSError(errno.ENOSPC, "No space left on device (injected: cannot mount a tmpfs)")
                real(table, path)

            monkeypatch.setattr(store_mod, "write_table_atomic", full)
        r = CliRunner().invoke(app, cli_args(dataset, out))
        assert r.exit_code == 1, r.output
        assert "no space left" in one_line_error(r.output).lower()
        done = part_keys(out)
        assert all(v == 1 for c in done.values() for v in c.values())
        committed, total = sum(len(c) for c in done.values()), len(STAGES) * N_IMAGES
        assert 0 < committed < total, f"{committed} of {total} stage keys committed before the resume"
        assert [len(done[s]) for s in ("images", "describe", "salient")] == [N_IMAGES] * 3
        assert len(done["associate"]) == CHUNK * (PARTS // 2) and len(done["caption"]) == 0, {
            k: len(v) for k, v in done.items()}
        unmarked = [p.name for p in out.glob("_work/associate-*/part-*.parquet")
                    if not p.with_name(p.name.split(".")[0] + ".done.json").exists()]
        assert len(unmarked) == 1 and unmarked[0].endswith(".associations.parquet"), unmarked  # a half-written part
        assert not (out / "captions.parquet").exists()
        if mnt is not None:
            shutil.rmtree(ballast)  # room again
        else:
            monkeypatch.setattr(store_mod, "write_table_atomic", real)
        res = visassoc.run(config(dataset, out))
        assert_same_tables(out, reference)
        assert part_keys(out) == part_keys(reference)
        assert res.total_new == total - committed
        assert res.new_items["associate"] == N_IMAGES - len(done["associate"])
        assert not list(out.glob("_work/*/.*.tmp")) and len(list(out.glob("_work/associate-*/part-*"))) == 3 * PARTS

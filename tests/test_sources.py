import json

import pytest

from visassoc.sources import SourceError, load_coco, load_demo, load_folder, load_manifest
from visassoc.sources.folder import read_captions_file

from conftest import make_photo


def test_folder_jsonl_and_missing_image(photo_folder, tmp_path):
    img_dir, caps = photo_folder
    with caps.open("a") as f:
        f.write(json.dumps({"image": "ghost.jpg", "captions": ["A ghost."]}) + "\n")
    items = load_folder(img_dir, caps)
    ids = [i.image_id for i in items]
    assert ids[:4] == ["beach", "bus", "dog", "pizza"]
    dog = items[ids.index("dog")]
    assert dog.captions[0] == "A dog runs across a green field." and dog.error is None
    ghost = items[ids.index("ghost")]
    assert ghost.path is None and "no such image" in ghost.error  # listed, not dropped


def test_folder_csv_captions(tmp_path):
    make_photo(tmp_path / "imgs" / "a.png")
    csv = tmp_path / "c.csv"
    csv.write_text("image,caption\na.png,A red ball.\na.png,  A  round toy. \n")
    assert read_captions_file(csv) == {"a.png": ["A red ball.", "A round toy."]}
    assert load_folder(tmp_path / "imgs", csv)[0].captions == ["A red ball.", "A round toy."]


def test_bad_captions_files(tmp_path):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"image": "a.jpg"\n')
    with pytest.raises(SourceError, match="c.jsonl:1"):
        read_captions_file(bad)
    csv = tmp_path / "c.csv"
    csv.write_text("file,text\n")
    with pytest.raises(SourceError, match="needs columns"):
        read_captions_file(csv)


def test_coco_by_file_name_and_padded_id(tmp_path):
    make_photo(tmp_path / "img" / "000000000042.jpg")
    make_photo(tmp_path / "img" / "custom.jpg")
    ann = {
        "images": [{"id": 42, "file_name": "missing_name.jpg"}, {"id": 7, "file_name": "custom.jpg"}, {"id": 9, "file_name": "x.jpg"}],
        "annotations": [
            {"id": 2, "image_id": 42, "caption": "A cat on a mat."},
            {"id": 1, "image_id": 42, "caption": "A cat sleeping."},
            {"id": 3, "image_id": 7, "caption": "A bike."},
        ],
    }
    p = tmp_path / "captions_val2017.json"
    p.write_text(json.dumps(ann))
    items = {i.image_id: i for i in load_coco(p, tmp_path / "img")}
    assert items["42"].path.endswith("000000000042.jpg")
    assert items["42"].captions == ["A cat sleeping.", "A cat on a mat."]  # annotation id order
    assert items["7"].path.endswith("custom.jpg")
    assert items["9"].path is None and "not found" in items["9"].error


def test_coco_errors(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        load_coco(tmp_path / "nope.json", tmp_path)
    p = tmp_path / "x.json"
    p.write_text("{}")
    with pytest.raises(SourceError, match="not a COCO caption file"):
        load_coco(p, tmp_path)


def test_manifest_urls_and_relative_paths(tmp_path):
    make_photo(tmp_path / "a.jpg")
    m = tmp_path / "m.jsonl"
    m.write_text(
        json.dumps({"id": "a", "image": "a.jpg", "captions": ["One."]}) + "\n"
        + json.dumps({"id": "u", "image": "https://example.org/x.jpg", "captions": []}) + "\n"
    )
    a, u = load_manifest(m)
    assert a.path == str(tmp_path / "a.jpg") and a.error is None
    assert u.path is None and "not downloaded" in u.error and u.provenance == "https://example.org/x.jpg"


def test_duplicate_ids_rejected(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "image": "a.jpg"}) + "\n" + json.dumps({"id": "a", "image": "b.jpg"}) + "\n")
    with pytest.raises(SourceError, match="duplicate"):
        load_manifest(m)


def test_demo_photos_exist():
    items = load_demo()
    assert len(items) >= 10
    assert all(i.error is None and len(i.captions) >= 3 for i in items)

"""The readability benchmark's judged file parses, and its tally counts what it says."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_readability as br  # noqa: E402


def test_the_judged_file_parses_with_one_verdict_per_caption():
    judged = br.load_judged(br.JUDGED)
    assert len(judged) >= 295
    assert {v for v, _ in judged.values()} == {"ok", "poor"}
    assert all(why for v, why in judged.values() if v == "poor")  # a poor verdict says why


def test_tally_counts_poor_and_unjudged_per_level(tmp_path):
    f = tmp_path / "j.tsv"
    f.write_text("image_id\tword\tlevel\tverdict\tcaption\twhy\n"
                 "a\tcat\t1\tok\tA kitten sits.\t\n"
                 "a\tcat\t2\tpoor\tA carnivore sits.\treads oddly\n")
    caps = [{"image_id": "a", "word": "cat", "level": 1, "caption": "A kitten sits."},
            {"image_id": "a", "word": "cat", "level": 2, "caption": "A carnivore sits."},
            {"image_id": "a", "word": "cat", "level": 2, "caption": "An animal sits."}]
    per, unjudged = br.tally(caps, br.load_judged(f))
    assert per == {1: [1, 1, 0], 2: [2, 1, 1]} and [c["caption"] for c in unjudged] == ["An animal sits."]
    f.write_text(f.read_text() + "a\tcat\t1\tpoor\tA kitten sits.\tno\n")
    with pytest.raises(SystemExit, match="judged both"):
        br.load_judged(f)


def test_auc_is_the_chance_a_poor_caption_scores_higher_than_an_ok_one():
    assert br.auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert br.auc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert br.auc([1.0, 3.0], [2.0, 2.0]) == 0.5
    assert br.auc([2.0], [2.0, 1.0]) == 0.75  # a tie counts half
    lo, hi = br.auc_interval([2.0, 3.0, 4.0, 5.0], [1.0, 1.5, 2.5, 3.5])
    assert 0.0 <= lo <= br.auc([2.0, 3.0, 4.0, 5.0], [1.0, 1.5, 2.5, 3.5]) <= hi <= 1.0

"""Model-backed stages over real HTTP to the loopback fake server (no real VLM/LLM can run here):
every request ends as a result or a StageError, prompts carry what the paper's prompts carry."""
from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from fake_openai_server import FakeOpenAI, Reply, image_urls, prompt_text
from visassoc.backends import images as images_mod
from visassoc.backends.openai_compat import OpenAIBackend, RetryPolicy
from visassoc.records import LEVELS
from visassoc.stages.interfaces import (AssociationRequest, CaptionRequest, DescribeRequest, DescribeResult,
                                        StageError)
from visassoc.stages.associate import LLMAssociationMiner
from visassoc.stages.caption import VLMCaptionWriter, caption_word_list
from visassoc.stages.describe import VLMDescriber
from visassoc.stages.model import is_form_of
from visassoc.stages.prompts import load_prompt, prompt_hashes

from conftest import dead_port

FAST = RetryPolicy(max_retries=2, backoff_base=0.02, backoff_max=0.1)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    images_mod.clear_memory_cache()


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "img.jpg"
    Image.new("RGB", (320, 240), (30, 120, 30)).save(p)
    return str(p)


def make_backend(server, **kw):
    return OpenAIBackend("fake-vlm", base_url=server.base_url, retry=FAST, timeout=5, show_progress=False, **kw)


def prompt_words(body) -> list[str]:
    """The words an associate prompt asks about (visassoc: '- ball (noun)' lines; paper: a JSON list)."""
    text = prompt_text(body)
    lines = re.findall(r"^- (\S+) \((?:noun|verb|adj)\)$", text, re.M)
    return lines or json.loads(body["messages"][-1]["content"])


def ladder_answer(words, bad=()):
    out = {}
    for w in words:
        out[w] = {str(lv): [f"{w}x{lv}a", f"{w}x{lv}b", f"{w}x{lv}c"] for lv in LEVELS}
        if w in bad:
            out[w]["2"] = [w + "s", "same", "same"]  # an inflection and a duplicate
            out[w]["4"][0] = "shared"
            out[w]["5"][0] = "shared"  # cross-level duplicate: flagged, kept
    return json.dumps(out)


def assoc_requests(image_id, words, caption="a boy kicks a ball on the grass"):
    return [AssociationRequest(image_id, w, w, "NOUN", caption, f"Description of {image_id}.", []) for w in words]


def test_describe_every_image_ends_as_result_or_error(photo, tmp_path):
    with FakeOpenAI() as s:
        d = VLMDescriber(make_backend(s))
        reqs = [DescribeRequest("a", photo, ["A green square."]), DescribeRequest("b", str(tmp_path / "nope.jpg")),
                DescribeRequest("c", photo)]
        out = d.describe(reqs)
        bodies = [r["body"] for r in s.chat_requests()]
    assert isinstance(out[0], DescribeResult) and out[0].description_source == "vlm" and out[0].short_caption
    assert isinstance(out[1], StageError) and "image not found" in out[1].message
    assert isinstance(out[2], DescribeResult)
    assert len(bodies) == 2 and all(image_urls(b)[0].startswith("data:image/jpeg;base64,") for b in bodies)
    assert sorted("A green square." in prompt_text(b) for b in bodies) == [False, True]  # only a's hint
    assert bodies[0]["response_format"]["json_schema"]["schema"]["required"] == ["description", "short_caption"]
    assert d.usage()["requests"] == 2


def test_describe_needs_a_vlm():
    b = OpenAIBackend("m", base_url=f"http://127.0.0.1:{dead_port()}/v1", supports_images=False)
    with pytest.raises(ValueError, match="does not accept images"):
        VLMDescriber(b)


def test_caption_with_a_text_only_llm_gets_the_description_instead_of_the_image():
    b = OpenAIBackend("m", base_url=f"http://127.0.0.1:{dead_port()}/v1", supports_images=False)
    w = VLMCaptionWriter(b)
    req = CaptionRequest("i", "/nonexistent.jpg", "dog", "NOUN", "A dog runs.", "A brown dog runs on grass.", 3, "game")
    (call,) = w.build_calls([req])
    user = call.messages[-1]
    assert w.text_only and user.images == [] and "It shows: A brown dog runs on grass." in user.text


def test_associate_groups_words_by_image_validates_and_reasks():
    def responder(body):
        words = prompt_words(body)
        if "cannot be used" in prompt_text(body):  # the re-ask: a clean answer
            return ladder_answer(words)
        return ladder_answer(words, bad={"ball"})

    with FakeOpenAI(responder=responder) as s:
        miner = LLMAssociationMiner(make_backend(s), per_level=3)
        reqs = assoc_requests("img1", ["ball", "boy", "grass"]) + assoc_requests("img2", ["dog", "frisbee"])
        out = miner.mine(reqs)
        chats = s.chat_requests()
    assert len(chats) == 3  # one call per image + one re-ask for img1 (ball had problems)
    assert all(isinstance(r, dict) and sorted(r) == list(LEVELS) for r in out)
    assert all(len(r[lv]) == 3 for r in out for lv in LEVELS)
    ball = out[0]
    assert "balls" not in ball[2] and ball[2][0] == "same"
    assert ball[2][1:] == ["ballx2a", "ballx2b"]  # filled from the re-ask
    feedback = prompt_text(chats[-1]["body"])
    assert '"balls" is the word itself or a form of it' in feedback and 'distance 2: 1 usable' in feedback
    assert {"image_id": "img1", "word": "ball", "association": "shared", "levels": [4, 5]} in miner.flags
    assert ball[4][0] == "shared" and ball[5][0] == "shared"
    schemas = sorted(c["body"]["response_format"]["json_schema"]["schema"]["required"] for c in chats[:2])
    assert schemas == [["ball", "boy", "grass"], ["dog", "frisbee"]]


def test_associate_missing_word_becomes_an_error_row_others_survive():
    with FakeOpenAI(responder=lambda body: ladder_answer([w for w in prompt_words(body) if w != "grass"])) as s:
        out = LLMAssociationMiner(make_backend(s)).mine(assoc_requests("img1", ["ball", "grass"]))
    assert isinstance(out[0], dict)
    assert isinstance(out[1], StageError) and "grass" in out[1].message and "missing" in out[1].message


def test_associate_salvages_loose_keys_and_level_names():
    answer = {"Ball": {"Distance 1 - Near Synonyms": "sphere, orb, globe", "2": ["toy", "plaything", "object"],
                       "3": ["game", "match", "play"], "4": ["competition", "rivalry", "contest"],
                       "5": ["journey", "cycle", "destiny"]}}
    with FakeOpenAI(responder=lambda body: json.dumps(answer)) as s:
        out = LLMAssociationMiner(make_backend(s, structured="json_object")).mine(assoc_requests("i", ["ball"]))
    assert out[0][1] == ["sphere", "orb", "globe"] and out[0][5] == ["journey", "cycle", "destiny"]


def test_associate_paper_prompt_set_is_the_paper_shape():
    with FakeOpenAI(responder=lambda body: ladder_answer(prompt_words(body))) as s:
        miner = LLMAssociationMiner(make_backend(s), prompt_set="paper")
        out = miner.mine(assoc_requests("i", ["ball", "boy"]))
        body = s.chat_requests()[0]["body"]
    assert all(isinstance(r, dict) for r in out)
    system, user = body["messages"]
    assert user["content"] == '["ball", "boy"]'
    for needle in ('"ball": sphere', '"ball": toy', '"ball": game', '"ball": competition', '"ball": journey',
                   "Description of i.", "a boy kicks a ball on the grass", "Give 3 words"):
        assert needle in system["content"]
    # the authors' settings: at most 1000 tokens, the provider's default temperature (not sent), JSON-object mode
    assert body["max_tokens"] == 1000 and "temperature" not in body
    assert body["response_format"] == {"type": "json_object"}


def test_caption_writer_feedback_word_list_and_image(photo):
    def responder(body):
        assoc = re.search(r'association "([^"]+)"', prompt_text(body)).group(1)
        return json.dumps({"caption": f"A {assoc} under the sun"})

    with FakeOpenAI(responder=responder) as s:
        w = VLMCaptionWriter(make_backend(s))
        reqs = [CaptionRequest("i", photo, "man", "NOUN", "a man and a woman on a street", "d", 3, "stranger",
                               other_words=["man", "woman", "street"]),
                CaptionRequest("i", photo, "man", "NOUN", "a man and a woman on a street", "d", 4, "traveler",
                               feedback="it did not contain the association")]
        out = w.write(reqs)
        bodies = [r["body"] for r in s.chat_requests()]
    assert out == ["A stranger under the sun", "A traveler under the sun"]
    first, retry = sorted(bodies, key=lambda b: "rejected" in prompt_text(b))
    assert "You may use some of these words: stranger, woman, street." in prompt_text(first)
    assert "rejected: it did not contain the association" in prompt_text(retry)
    assert "rejected" not in prompt_text(first)
    assert all(image_urls(b) for b in bodies)


def test_caption_word_list_never_substring_strips():
    req = CaptionRequest("i", "p", "man", "NOUN", "a woman walks past a man", "d", 1, "guy")
    words = caption_word_list(req)  # other_words derived from the caption with spaCy
    assert words[0] == "guy" and "woman" in words and "man" not in words and "wo" not in words


def test_caption_paper_prompt_plain_text_and_cleanup(photo):
    with FakeOpenAI(responder=lambda body: 'Caption: "Strangers share the quiet street."\n') as s:
        w = VLMCaptionWriter(make_backend(s), prompt_set="paper")
        out = w.write([CaptionRequest("i", photo, "man", "NOUN", "a man on a street", "d", 3, "strangers",
                                      other_words=["man", "street"])])
        body = s.chat_requests()[0]["body"]
    assert out == ["Strangers share the quiet street."]
    assert "response_format" not in body and body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert 'The word "strangers" has to appear in the caption.' in prompt_text(body)
    assert "these words: strangers, street." in prompt_text(body)


def test_caption_plain_answer_to_json_prompt_is_salvaged_empty_is_error(photo):
    with FakeOpenAI() as s:
        s.push(Reply("A stranger walks by"), Reply("still not json"),  # no JSON, twice
               Reply(""), Reply(""))
        w = VLMCaptionWriter(make_backend(s))
        req = CaptionRequest("i", photo, "man", "NOUN", "a man", "d", 1, "stranger", other_words=["man"])
        out = w.write([req])
        out += w.write([req])
    assert out[0] == "still not json"
    assert isinstance(out[1], StageError) and "empty" in out[1].message


def test_prompt_files_are_versioned_and_hashed():
    h1, h2 = prompt_hashes("visassoc"), prompt_hashes("paper")
    assert set(h1) == {"describe", "associate", "caption"} and all(re.fullmatch("[0-9a-f]{64}", v) for v in h1.values())
    assert h1["associate"] != h2["associate"]
    for st in ("describe", "associate", "caption"):
        assert "not the authors' text" in load_prompt("paper", st).header
        assert load_prompt("visassoc", st).version == "1" and "RECONSTRUCTION" not in load_prompt("visassoc", st).header
    with pytest.raises(ValueError, match="unknown prompt set"):
        prompt_hashes("nope")


def test_is_form_of():
    assert is_form_of("balls", "ball") and is_form_of("ball game", "ball") and is_form_of("kicked", "kick")
    assert not is_form_of("woman", "man") and not is_form_of("sphere", "ball")


def test_stage_names_and_generic_backend_path():
    """A non-HTTP backend (plain generate, no generate_many) goes through the same stage code."""

    class Echo:
        provider, model, supports_images = "echo", "e1", False

        def identity(self):
            return {"provider": "echo"}

        def generate(self, messages, *, schema=None, params=None):
            from visassoc.backends.base import Generation

            words = json.loads(messages[-1].text) if messages[-1].text.startswith("[") else []
            text = ladder_answer(words)
            return Generation(text=text, parsed=json.loads(text))

    m = LLMAssociationMiner(Echo(), prompt_set="paper")
    assert m.name == "echo:e1" and m.model == "e1"
    out = m.mine(assoc_requests("i", ["ball"]))
    assert out[0][3] == ["ballx3a", "ballx3b", "ballx3c"]


def test_usage_per_stage_with_cost(photo):
    with FakeOpenAI(responder=lambda body: ladder_answer(prompt_words(body)) if "distance" in prompt_text(body)
                    else json.dumps({"caption": "a hound"})) as s:
        b = OpenAIBackend("gpt-4o-mini", base_url=s.base_url, retry=FAST, show_progress=False, image_detail="low")
        miner, writer = LLMAssociationMiner(b), VLMCaptionWriter(b)
        miner.mine(assoc_requests("i", ["dog"]))
        writer.write([CaptionRequest("i", photo, "dog", "NOUN", "a dog", "d", 1, "hound")] * 2)
        assert s.chat_requests()[-1]["body"]["messages"][-1]["content"][0]["image_url"]["detail"] == "low"
    u = {"associate": miner.usage(), "caption": writer.usage()}
    assert u["associate"]["requests"] == 1 and u["caption"]["requests"] == 1  # duplicate requests share a call
    assert sum(x["requests"] for x in u.values()) == b.usage()["requests"] == 2
    assert sum(x["prompt_tokens"] for x in u.values()) == b.usage()["prompt_tokens"]
    assert all(x["cost_usd"] > 0 for x in u.values())


def test_check_on_a_non_http_backend():
    from visassoc.backends.base import Generation
    from visassoc.backends.check import check_backend, format_check

    class Local:
        provider, model, supports_images = "local", "tiny", False

        def identity(self):
            return {"provider": "local", "model": "tiny"}

        def generate(self, messages, *, schema=None, params=None):
            return Generation(text="OK" if schema is None else "not json", error=None if schema is None else "bad")

    res = check_backend(Local())
    assert res["checks"]["text"]["ok"] and not res["checks"]["json"]["ok"] and "images" not in res["checks"]
    assert "json         FAIL" in format_check(res)


def test_every_image_word_level_ends_as_row_or_error_under_faults():
    from fake_openai_server import rate_limited, server_error, stall
    from visassoc.stages.associate import result_rows

    def responder(body):  # two unrecoverable items besides the scripted (recoverable) faults
        if "Description of im8." in prompt_text(body):
            return Reply(status=400, error="injected: context too long")  # not retried: both words fail
        words = prompt_words(body)
        answer = json.loads(ladder_answer(words))
        if "Description of im7." in prompt_text(body) and "park" in answer:  # re-asks get the same answer
            answer["park"]["3"] = ["park", "parks", "parking"]  # only forms of the word itself
        return json.dumps(answer)

    with FakeOpenAI(responder=responder) as s:
        s.push(rate_limited("0.1"), server_error(), stall(1.5), Reply('{"dog": {"1": ["pup"'),  # truncated
               Reply("Here you go:\n```json\n" + ladder_answer(["dog", "park"]) + "\n```"), Reply('{"wrong": {}}'),
               Reply(""), Reply("I cannot help with that."), Reply("still no"))
        b = OpenAIBackend("fake", base_url=s.base_url, retry=FAST, timeout=0.7, show_progress=False, concurrency=3)
        reqs = [r for i in range(10) for r in assoc_requests(f"im{i}", ["dog", "park"])]
        out = LLMAssociationMiner(b).mine(reqs)
    assert len(out) == len(reqs)
    rows = result_rows(reqs, out, "openai:fake", 3)
    covered = {(r["image_id"], r["word"], r["level"]) for r in rows["associations"]}
    errored = {(r["image_id"], r["word"]) for r in rows["errors"]}
    for r in reqs:
        for lv in LEVELS:
            assert ((r.image_id, r.word, lv) in covered) != ((r.image_id, r.word) in errored)
    assert {("im7", "park"), ("im8", "dog"), ("im8", "park")} <= errored  # the error branch, for real
    msg = {(r["image_id"], r["word"]): r["message"] for r in rows["errors"]}
    assert "distance(s) 3" in msg[("im7", "park")] and "form of it" in msg[("im7", "park")]
    assert all("HTTP 400" in msg[("im8", w)] and "injected" in msg[("im8", w)] for w in ("dog", "park"))
    assert all("\n" not in m for m in msg.values())
    assert len(covered) >= 5 * 15  # the rest survive the scripted faults through retries and re-asks

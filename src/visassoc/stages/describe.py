"""Stage 1: a dense description of each image, the context for association mining.

Offline, no model here can see an image, so the default composes the context from the
image's human captions (``description_source="captions"``). ``VLMDescriber`` replaces it when
``--vlm`` is given.
"""
from __future__ import annotations

from visassoc.backends.base import Call, GenParams
from visassoc.records import ErrorRecord, to_row
from visassoc.untrusted import unsafe_reason

from .interfaces import DescribeRequest, DescribeResult, StageError
from .model import ModelStage, clean_caption
from .model import _keyed, _said


def _sentence(c: str) -> str:
    c = c.strip()
    c = c[0].upper() + c[1:] if c else c
    return c if c.endswith((".", "!", "?")) else c + "."


class CaptionsDescriber:
    """Joins the distinct human captions into one paragraph."""

    name = "captions"
    model = None

    def describe(self, requests: list[DescribeRequest]) -> list[DescribeResult | StageError]:
        out: list[DescribeResult | StageError] = []
        for r in requests:
            if not r.captions:
                out.append(StageError("no captions for this image and no VLM configured (pass --vlm to describe it)"))
                continue
            out.append(DescribeResult(" ".join(_sentence(c) for c in r.captions), "captions"))
        return out


DESCRIBE_SCHEMA = {"type": "object", "required": ["description", "short_caption"],
                   "properties": {"description": {"type": "string", "minLength": 1},
                                  "short_caption": {"type": "string", "minLength": 1}}}


class VLMDescriber(ModelStage):
    """A VLM writes a dense description and a short literal caption of each image."""

    stage = "describe"

    def __init__(self, backend, prompt_set: str = "visassoc", params: GenParams | None = None,
                 prompt_dir: str | None = None, hints: bool = True):
        if not getattr(backend, "supports_images", False):
            raise ValueError(f"{backend.provider}:{backend.model} does not accept images; describe needs a VLM")
        super().__init__(backend, prompt_set, params, prompt_dir)
        self.hints = hints  # the image's human captions go in as hints (the paper's VLM had none)
        self.options = {"hints": hints}

    def describe(self, requests: list[DescribeRequest]) -> list[DescribeResult | StageError]:
        return self.run(requests)

    def build_calls(self, requests: list[DescribeRequest]) -> list[Call]:
        calls: dict[str, Call] = {}
        for i, r in enumerate(requests):
            hint = ("People described this image as:\n" + "\n".join(f"- {c}" for c in r.captions[:5])
                    + "\nUse these only as hints; describe what you see.") if r.captions and self.hints else ""
            _keyed(calls, f"describe|{r.image_id}", i, lambda k: Call(
                k, [i], self._messages({"caption_hint": hint}, [r.path]), DESCRIBE_SCHEMA, self.params))
        return list(calls.values())

    def finish(self, call: Call, requests) -> list[DescribeResult | StageError]:
        gen = call.gen
        data = gen.parsed if gen.error is None else None
        desc = " ".join(str((data or {}).get("description", "")).split())
        short = clean_caption(str((data or {}).get("short_caption", "")))
        why = gen.error or ("empty description" if not desc else unsafe_reason(f"{desc}\n{short}"))
        if why:
            return [StageError(f"describe: {why}{_said(gen)}")] * len(call.members)
        return [DescribeResult(desc, "vlm", short or None, self.model)] * len(call.members)


# ---- the stage on one chunk: the requests it asks, the rows it writes ------------------------
def requests(chunk, up) -> list[DescribeRequest]:
    images = up["images"]
    return [DescribeRequest(i, images[i][0]["path"], images[i][0]["captions"]) for i in chunk]


def run_chunk(cfg, impl, chunk, up, items):
    reqs = requests(chunk, up)
    return result_rows(reqs, impl.describe(reqs))


def result_rows(reqs: list[DescribeRequest], results: list) -> dict[str, list[dict]]:
    rows, errs = [], []
    for r, res in zip(reqs, results):
        if isinstance(res, StageError):
            errs.append(to_row(ErrorRecord("describe", r.image_id, None, None, res.message)))
        else:
            rows.append(dict(image_id=r.image_id, description=res.description, description_source=res.description_source,
                             short_caption=res.short_caption, model=res.model))
    return {"descriptions": rows, "errors": errs}

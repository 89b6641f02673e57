"""What a run will cost before it runs: requests, tokens and USD per model-backed stage.

``estimate(config)`` reads the source with the same loaders as ``visassoc run`` and, for a
sample of its images, builds the *real* calls the model stages would send
(``stages.describe|associate|caption``: the same prompt files, the same grouping, the same re-ask
messages) with a stand-in backend that never generates. It counts their tokens, multiplies
the per-image means by the number of usable images and prices them with
``backends.pricing.estimate_cost`` (built-in OpenAI table plus the backend config's
``prices``). It calls no model, opens no connection and writes nothing into the run dir.

What is counted, per stage that is a model backend (offline defaults cost 0 requests):

* **describe**: one call per usable image (image + prompt; the image's human captions go in
  as hints, exactly as ``VLMDescriber`` does).
* **associate**: one call per image with at least one salient word (``LLMAssociationMiner``
  puts all salient words of an image in one call) plus, with probability
  ``associate_reask_rate``, one stage-level re-ask that resends the conversation with the
  model's answer and the problems.
* **caption**: one call per (image, salient word, level) -- or per association with
  ``captions_per_level="all"`` -- times the expected attempts: an attempt is invalid with
  probability ``reask_rate``, is re-asked up to ``max_reasks`` times, and a caption still
  invalid after that moves on to the next association (``write_one_caption_per_level``).

Salient words come from the real offline extraction (spaCy, ``stages.salient``) on each
sampled image's chosen caption; images without a human caption (their salient words would
come from the VLM's short caption) are assumed to give ``top_k`` words. Association ladders
are assumed full (5 levels). Model answers cannot be known, so outputs are the answers'
*expected shape* rendered and counted with the same tokenizer: the describe JSON with a
description as long as the prompt asks for, the association JSON filled with the prompt's
own example words, the short caption as the creative caption. ``max_tokens`` caps them and
gives the worst case (``cost_max_usd``).

Tokens: a tokenizer is used only when one is available offline (``tokenizer=PATH`` to a
Hugging Face ``tokenizer.json``, or ``tiktoken``'s o200k_base when that package and its
encoding file are already on disk); otherwise characters / 4. Chat framing adds
``MESSAGE_OVERHEAD`` tokens per message and ``REPLY_OVERHEAD`` per request (OpenAI's rule).
Image tokens follow the provider's documented rule (see ``image_tokens``) for the image as
it is sent (shrunk to ``max_image_side``), or a flat ``image_tokens=N`` override.

Not accounted for: answers already in the call cache (``calls.sqlite``; a repeated or
resumed run pays less), parts already finished in ``--out``, the backend's own JSON re-ask
(one extra call when a reply does not parse), JSON-schema tokens of ``response_format``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from visassoc.backends.prefix_cache import cacheable, shared_prefix_tokens
from visassoc.backends.pricing import (estimate_cost, image_rule, image_tokens, longest_key, price_table, sent_size,
                                      token_counter)
from visassoc.config import RunConfig

DEFAULT_SAMPLE = 50
DEFAULT_REASK_RATE = 0.15
MESSAGE_OVERHEAD = 3  # tokens per chat message (role + framing), OpenAI's documented count
REPLY_OVERHEAD = 3  # every reply is primed with <|start|>assistant<|message|>
DESCRIPTION_CHARS = 650  # a 3-6 sentence description, what the describe prompt asks for
EXAMPLE_ASSOCIATIONS = ("sphere", "toy", "game", "competition", "journey")  # the prompts' ball examples
_FILLER = ("The photograph shows the scene from eye level in soft natural light, with the main subject in the "
           "centre, a few objects around it and a plain background that sets a calm everyday mood. ")

# ---- the estimate ----------------------------------------------------------------------------
@dataclass
class StageEstimate:
    stage: str  # describe | associate | caption
    backend: str  # the spec (or offline name) serving the stage
    offline: bool
    model: str | None = None
    requests: float = 0.0  # expected calls, re-asks included
    first_requests: int = 0  # calls without any re-ask
    input_text_tokens: float = 0.0
    image_tokens: float = 0.0
    output_tokens: float = 0.0  # expected (answer shape), capped by max_tokens
    output_tokens_max: float = 0.0  # every call using its full max_tokens
    max_tokens: int | None = None
    cost_usd: float | None = None  # None: no price known for the model
    batch_cost_usd: float | None = None  # Batch API (50%), for OpenAI-protocol backends with a price
    cost_max_usd: float | None = None
    price: tuple[float, float] | None = None  # USD per 1M (input, output)
    price_source: str | None = None
    image_rule: str | None = None
    image_tokens_per_image: float | None = None
    cacheable_input_tokens: float = 0.0  # input a provider's prefix cache can serve (requests of one image sent together)
    cost_cached_usd: float | None = None  # cost_usd with those tokens at the model's cached-input price
    notes: list[str] = field(default_factory=list)

    @property
    def input_tokens(self) -> float:
        return self.input_text_tokens + self.image_tokens


@dataclass
class Estimate:
    source: str
    images: int  # items in the source (or ``scale`` when extrapolating)
    usable_images: float  # images expected to reach the model stages
    error_images: int  # known unusable before any model call (missing file, URL, ...)
    sampled: int
    salient_words_per_image: float
    salient_source: str
    tokenizer: str
    tokens_exact: bool
    reask_rate: float
    associate_reask_rate: float
    caption_attempts: float  # expected calls per caption
    stages: list[StageEstimate]
    scale: int | None = None
    source_images: int | None = None  # when extrapolating: images in the real source
    assumptions: list[str] = field(default_factory=list)

    @property
    def total_requests(self) -> float:
        return sum(s.requests for s in self.stages)

    def total(self) -> dict[str, Any]:
        model = [s for s in self.stages if not s.offline]
        costs = [s.cost_usd for s in model]
        known = sum(c for c in costs if c is not None)
        batch = [s.batch_cost_usd for s in model if s.cost_usd is not None]
        return {
            "requests": round(self.total_requests),
            "input_text_tokens": round(sum(s.input_text_tokens for s in self.stages)),
            "image_tokens": round(sum(s.image_tokens for s in self.stages)),
            "output_tokens": round(sum(s.output_tokens for s in self.stages)),
            "cost_usd": None if any(c is None for c in costs) else round(known, 4),
            "known_cost_usd": round(known, 4),
            "unknown_cost_stages": [s.stage for s in model if s.cost_usd is None],
            "batch_cost_usd": None if (not model or any(c is None for c in costs) or any(b is None for b in batch))
            else round(sum(batch), 4),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for s, sd in zip(self.stages, d["stages"]):
            sd["requests"] = round(s.requests, 1)
            for k in ("input_text_tokens", "image_tokens", "output_tokens", "output_tokens_max"):
                sd[k] = round(sd[k])
            sd["input_tokens"] = round(s.input_tokens)
        d["usable_images"] = round(self.usable_images, 1)
        d["total"] = self.total()
        return d


@dataclass
class _StageSetup:
    stage: str
    spec: str
    provider: str
    model: str
    options: Any  # registry.BackendOptions
    impl: Any  # the real model stage on a stand-in backend
    max_tokens: int


def _setups(cfg: RunConfig) -> tuple[dict[str, _StageSetup], Any]:
    from visassoc.backends.base import GenParams, IdentityBackend
    from visassoc.backends.registry import OPENAI_LIKE, load_config
    from visassoc.stages import OFFLINE, make_model_stage, model_options

    bc = load_config(cfg.backend_config, stages=tuple(OFFLINE))
    out = {}
    for stage, offline in OFFLINE.items():
        spec = getattr(cfg, stage)
        if spec == offline:
            continue
        bspec, opts = bc.resolve(spec)
        images = opts.supports_images if bspec.provider in OPENAI_LIKE else bspec.provider != "smollm"
        impl = make_model_stage(stage, IdentityBackend(bspec.provider, bspec.model, images), **model_options(cfg, stage))
        gp = set(GenParams.__dataclass_fields__)
        over = {k: v for k, v in (opts.params or {}).items() if k in gp} if bspec.provider in OPENAI_LIKE else {}
        if over:  # OpenAIBackend.params_for: backend-config GenParams fields override the prompt's
            impl.params = GenParams(**{**impl.params.__dict__, **over})
        out[stage] = _StageSetup(stage, spec, bspec.provider, bspec.model, opts, impl, int(impl.params.max_tokens))
    return out, bc


def _evenly(seq: list, n: int) -> list:
    if n >= len(seq):
        return list(seq)
    return [seq[(i * len(seq)) // n] for i in range(n)]


def caption_attempts(reask_rate: float, max_reasks: int, associations: int) -> float:
    """Expected calls for one caption: attempts 1 + r + ... + r^max_reasks for an association, and
    the next association (up to ``associations``) only when all of them failed (prob r^(max_reasks+1))."""
    r = min(max(reask_rate, 0.0), 1.0)
    per_assoc = sum(r ** a for a in range(max_reasks + 1))
    fail = r ** (max_reasks + 1)
    return per_assoc * sum(fail ** j for j in range(max(1, associations)))


def _price(model: str, prices: dict) -> tuple[tuple[float, float] | None, str | None]:
    """The (input, output) USD per 1M tokens ``estimate_cost`` will use for ``model``, and where it is from."""
    table = price_table(prices)
    k = longest_key(model, table)
    if k is None:
        return None, None
    return table[k], ("backend config prices" if k in prices else "built-in OpenAI price table") + f" ({k})"


def _messages_tokens(msgs, count: Callable[[str], int], img_tokens: Callable[[Any], int]) -> tuple[int, int]:
    text = REPLY_OVERHEAD + sum(MESSAGE_OVERHEAD + count(m.text) for m in msgs)
    imgs = sum(img_tokens(i) for m in msgs for i in m.images)
    return text, imgs


def _pad(text: str, n: int) -> str:
    """``text`` repeated/cut at a word boundary to about ``n`` characters."""
    text = " ".join(text.split()) or _FILLER.strip()
    out = text
    while len(out) < n:
        out += " " + text
    cut = out[:n].rsplit(" ", 1)[0]
    return cut if cut.endswith(".") else cut + "."


def estimate(config: RunConfig, sample: int = DEFAULT_SAMPLE, reask_rate: float = DEFAULT_REASK_RATE,
             associate_reask_rate: float | None = None, image_tokens_override: int | None = None,
             tokenizer: str | None = None, scale: int | None = None) -> Estimate:
    """Requests, tokens and USD of ``visassoc run`` with ``config``, without calling any model.

    ``sample``: images whose real prompts are built and counted (means are scaled to the whole
    source). ``reask_rate``: the chance a caption attempt is rejected and re-asked (and, unless
    ``associate_reask_rate`` is given, the chance an association answer needs its one re-ask).
    ``image_tokens_override``: flat tokens per image instead of the provider rule. ``tokenizer``:
    see ``token_counter``. ``scale``: extrapolate the per-image means to this many images.
    Raises ``sources.SourceError``/``ValueError`` for a bad source, spec or backend config.
    """
    from PIL import Image

    from visassoc.engine.pipeline import _utf8_safe, load_items, resolve_stage_backends
    from visassoc.records import LEVELS, SalientRecord, to_row
    from visassoc.stages import OFFLINE, associate, caption, describe
    from visassoc.stages.describe import CaptionsDescriber
    from visassoc.stages.interfaces import DescribeRequest, DescribeResult
    from visassoc.stages.salient import SalientConfig, choose_caption, extract_salient

    if sample < 1:
        raise ValueError("sample must be >= 1")
    if not 0.0 <= reask_rate <= 1.0 or (associate_reask_rate is not None and not 0.0 <= associate_reask_rate <= 1.0):
        raise ValueError("re-ask rates must be between 0 and 1")
    if scale is not None and scale < 1:
        raise ValueError("scale must be >= 1")
    a_rate = reask_rate if associate_reask_rate is None else associate_reask_rate
    cfg = resolve_stage_backends(config)
    setups, bc = _setups(cfg)
    counter = token_counter(tokenizer)
    items = [_utf8_safe(it) for it in load_items(cfg)]
    known_bad = [it for it in items if it.error]
    usable = [it for it in items if not it.error]
    chosen = _evenly(usable, sample)

    # image sizes of the sample (header only); an unreadable one will be an error row in the run
    sizes: dict[str, tuple[int, int]] = {}
    for it in chosen:
        try:
            with Image.open(it.path) as im:
                sizes[it.image_id] = im.size
        except Exception:  # noqa: BLE001 - any unreadable file becomes an error row in the run
            pass
    ok = [it for it in chosen if it.image_id in sizes]
    readable = len(ok) / len(chosen) if chosen else 0.0
    # describe offline needs human captions; a VLM describes any image
    describable = [it for it in ok if it.captions or "describe" in setups]

    path_id = {str(it.path): it.image_id for it in ok}

    def per_image_tokens(stage: str) -> Callable[[Any], int]:
        st = setups[stage]
        return lambda path: image_tokens(st.model, *sent_size(*sizes[path_id[str(path)]], st.options.max_image_side),
                                         st.options.image_detail, image_tokens_override)

    # salient words: the real offline extraction on each image's chosen caption
    todo = []
    for it in describable:
        if it.captions:
            cid, cap = choose_caption(it.image_id, it.captions, cfg.seed, cfg.max_words)
            todo.append((it.image_id, cid, cap))
    salient = extract_salient(todo, SalientConfig(top_k=cfg.top_k, max_words=cfg.max_words)) if todo else {}
    n_assumed = sum(1 for it in describable if not it.captions)

    # descriptions: the offline describer's real text, or a VLM-length stand-in
    descs: dict[str, str] = {}
    off_desc = CaptionsDescriber().describe([DescribeRequest(it.image_id, it.path, it.captions)
                                             for it in describable if it.captions])
    for it, res in zip([it for it in describable if it.captions], off_desc):
        if isinstance(res, DescribeResult):
            descs[it.image_id] = res.description
    if "describe" in setups:
        descs = {it.image_id: _pad(" ".join(it.captions), DESCRIPTION_CHARS) for it in describable}

    acc = {s: {"first": 0.0, "req": 0.0, "text": 0.0, "img": 0.0, "out": 0.0, "out_max": 0.0} for s in setups}
    words_total = 0
    attempts = caption_attempts(reask_rate, cfg.max_reasks, cfg.per_level)
    for it in describable:
        iid = it.image_id
        # this image's upstream rows as a run would hold them; the stages build their requests from them
        up = {"images": {iid: [{"path": it.path, "captions": list(it.captions)}]},
              "descriptions": {iid: [{"description": descs[iid]}]}}
        if "describe" in setups:
            st = setups["describe"]
            call = st.impl.build_calls(describe.requests([iid], up))[0]
            t, im = _messages_tokens(call.messages, counter.count, per_image_tokens("describe"))
            short = it.captions[0] if it.captions else "A photograph of an everyday scene."
            ans = json.dumps({"description": descs[iid], "short_caption": short})
            _add(acc["describe"], 1, 1, t, im, min(counter.count(ans), st.max_tokens), st.max_tokens)
        recs = salient.get(iid)
        if recs is None:  # no human caption: the VLM's short caption gives up to top_k words
            recs = [SalientRecord(iid, 0, "A photograph of an everyday scene.", f"word{k}", f"word{k}", "NOUN", None, k)
                    for k in range(cfg.top_k)]
        up["salient"] = {iid: [to_row(r) for r in recs]}
        words_total += len(recs)
        if not recs:
            continue
        if "associate" in setups:
            st = setups["associate"]
            for call in st.impl.build_calls(associate.requests([iid], up)):
                t, _ = _messages_tokens(call.messages, counter.count, lambda p: 0)
                ans = json.dumps({w: {str(lv): [EXAMPLE_ASSOCIATIONS[(lv - 1 + k) % 5] for k in range(cfg.per_level)]
                                      for lv in LEVELS} for w in call.ctx["words"]})
                out = min(counter.count(ans), st.max_tokens)
                probs = "\n".join(f'- "{w}" distance 5: {cfg.per_level - 1} usable words, {cfg.per_level} needed'
                                  for w in call.ctx["words"][:1])
                fb = st.impl.prompt.render("feedback", **call.ctx["values"], problems=probs)
                t_re = t + MESSAGE_OVERHEAD * 2 + counter.count(ans) + counter.count(fb)
                acc_a = acc["associate"]
                acc_a["first"] += 1
                acc_a["req"] += 1 + a_rate
                acc_a["text"] += t + a_rate * t_re
                acc_a["out"] += out * (1 + a_rate)
                acc_a["out_max"] += st.max_tokens * (1 + a_rate)
        if "caption" in setups:
            st = setups["caption"]
            per_group = cfg.per_level if cfg.captions_per_level == "all" else 1
            calls_per = attempts if cfg.captions_per_level == "one" else caption_attempts(reask_rate, cfg.max_reasks, 1)
            # one association per level (the prompts' example words) stands for the full ladder
            up["associations"] = {iid: [{"word": r.word, "level": lv, "rank": 0, "association": EXAMPLE_ASSOCIATIONS[lv - 1]}
                                        for r in recs for lv in LEVELS]}
            # the stage's own call builder: one call per (word, level), or per word with --caption-mode per-word
            firsts = [g[0] for g in caption.request_groups([iid], up)]
            calls = st.impl.build_calls(firsts)
            c = acc["caption"]
            n = per_group * calls_per
            if len(calls) > 1:  # what two caption calls of this image share from the start (image, instructions)
                img_tok = per_image_tokens("caption")(it.path) if not st.impl.text_only else 0
                shared, _ = shared_prefix_tokens(calls[0].messages, calls[1].messages, counter.count, img_tok)
                c["cached"] = c.get("cached", 0.0) + (len(calls) * n - 1) * cacheable(shared)
            for call in calls:
                members = [firsts[k] for k in call.members]
                t, im = _messages_tokens(call.messages, counter.count, per_image_tokens("caption"))
                for r in members:
                    r.feedback = (f"The previous caption {r.caption!r} was rejected: does not contain the association "
                                  f"{r.association!r}.")
                t_re, _ = _messages_tokens(st.impl.build_calls(members)[0].messages, counter.count, lambda p: 0)
                ans = (json.dumps({str(k): r.caption for k, r in enumerate(members, 1)}) if len(members) > 1
                       else json.dumps({"caption": members[0].caption}) if st.impl.prompt.output == "json"
                       else members[0].caption)
                out = min(counter.count(ans), st.max_tokens)
                c["first"] += per_group
                c["req"] += n
                c["text"] += per_group * (t + (calls_per - 1) * t_re)
                c["img"] += n * im
                c["out"] += n * out
                c["out_max"] += n * st.max_tokens

    # per sampled image -> whole source (or the extrapolation target)
    n_src = scale if scale is not None else len(items)
    good_frac = (len(usable) / len(items)) if items else 0.0
    usable_n = n_src * good_frac * readable
    per = (usable_n / len(ok)) if ok else 0.0
    words_per_image = words_total / len(describable) if describable else 0.0
    stages = []
    for stage, offline in OFFLINE.items():
        if stage not in setups:
            stages.append(StageEstimate(stage, offline, True))
            continue
        st, a = setups[stage], acc[stage]
        se = StageEstimate(stage, st.spec, False, st.model, requests=a["req"] * per, first_requests=round(a["first"] * per),
                           input_text_tokens=a["text"] * per, image_tokens=a["img"] * per,
                           output_tokens=a["out"] * per, output_tokens_max=a["out_max"] * per, max_tokens=st.max_tokens,
                           cacheable_input_tokens=a.get("cached", 0.0) * per)
        msgs_with_images = stage in ("describe", "caption") and getattr(st.impl, "text_only", False) is False
        if msgs_with_images:
            se.image_rule = image_rule(st.model, st.options.image_detail, image_tokens_override)
            per_img = [image_tokens(st.model, *sent_size(*sizes[it.image_id], st.options.max_image_side),
                                    st.options.image_detail, image_tokens_override) for it in ok]
            se.image_tokens_per_image = sum(per_img) / len(per_img) if per_img else None
        elif stage == "caption":
            se.notes.append("text-only backend: no image is sent (the description goes in the prompt)")
        _cost(se, st, bc.prices)
        stages.append(se)

    src = cfg.source_kind() if not cfg.demo else "demo"
    src_path = cfg.coco or cfg.manifest or cfg.images
    est = Estimate(
        source=f"{src}{' ' + str(src_path) if src_path else ''}{f' (limit {cfg.limit})' if cfg.limit else ''}",
        images=n_src, usable_images=usable_n, error_images=len(known_bad) if scale is None else round(n_src * (1 - good_frac)),
        sampled=len(chosen), salient_words_per_image=words_per_image,
        salient_source=(f"spaCy salient extraction on {len(todo)} sampled captions"
                        + (f"; {n_assumed} uncaptioned images assumed top_k={cfg.top_k}" if n_assumed else "")),
        tokenizer=counter.name, tokens_exact=counter.exact, reask_rate=reask_rate, associate_reask_rate=a_rate,
        caption_attempts=attempts if cfg.captions_per_level == "one" else caption_attempts(reask_rate, cfg.max_reasks, 1),
        stages=stages, scale=scale, source_images=len(items) if scale is not None else None)
    if len(ok) < len(chosen):
        est.assumptions.append(f"{len(chosen) - len(ok)} of {len(chosen)} sampled images could not be opened "
                               "(they become error rows; the same share is taken off the total)")
    if setups and cfg.cache_only:
        est.assumptions.append("--cache-only: the run sends none of these calls live; they are what `batch export` "
                               "and the Batch API must answer first")
    if setups:
        est.assumptions += [
            "association ladders are full: 5 levels per salient word",
            "outputs: the answer shape each prompt asks for, capped by max_tokens (worst case: every call at max_tokens)",
            "not counted: the backend's one JSON re-ask for an unparseable reply, response_format schema tokens",
        ]
    est.assumptions.append(f"calls already in the call cache ({_cache_path()}) and parts already done in --out are "
                           "not subtracted: a resumed or repeated run pays less")
    return est


def _cache_path() -> Path:
    """Where ``stages_factory`` keeps the call cache, without creating anything."""
    from visassoc.lexicon import cache_root

    return cache_root() / "calls.sqlite"


def _add(a: dict, first: float, req: float, text: float, img: float, out: float, out_max: float) -> None:
    a["first"] += first
    a["req"] += req
    a["text"] += text
    a["img"] += img
    a["out"] += out
    a["out_max"] += out_max


def _cost(se: StageEstimate, st: _StageSetup, prices: dict) -> None:
    from visassoc.backends.base import Usage
    from visassoc.backends.registry import OPENAI_LIKE

    se.price, se.price_source = _price(st.model, prices)
    usage = Usage(prompt_tokens=round(se.input_tokens), completion_tokens=round(se.output_tokens))
    se.cost_usd = estimate_cost(st.model, usage, prices)
    if se.cost_usd is None:
        se.notes.append("no price for this model: add it under `prices` in the backend config"
                        if st.provider in OPENAI_LIKE else "local weights: no API price")
        return
    if se.cacheable_input_tokens:
        se.cost_cached_usd = estimate_cost(st.model, Usage(prompt_tokens=round(se.input_tokens),
                                                           completion_tokens=round(se.output_tokens),
                                                           cached_tokens=round(se.cacheable_input_tokens)), prices)
    worst = Usage(prompt_tokens=round(se.input_tokens), completion_tokens=round(se.output_tokens_max))
    se.cost_max_usd = estimate_cost(st.model, worst, prices)
    if st.provider in OPENAI_LIKE:
        se.batch_cost_usd = estimate_cost(st.model, usage, prices, batch=True)


# ---- rendering ---------------------------------------------------------------------------------
def _n(x: float) -> str:
    return f"{round(x):,}"


def _usd(x: float | None) -> str:
    if x is None:
        return "unknown"
    return f"${x:,.2f}" if x >= 1 else f"${x:,.4f}"


def format_estimate(est: Estimate) -> str:
    """The estimate as a plain-text table with the assumptions under it."""
    head = ("EXTRAPOLATION to " + f"{est.images:,} images from {est.source} ({est.source_images:,} images)"
            if est.scale is not None else f"{est.source}: {est.images:,} images")
    lines = [f"visassoc estimate -- {head}; {est.usable_images:,.0f} reach the model stages"
             + (f", {est.error_images:,} known errors" if est.error_images else "")
             + f"; {est.salient_words_per_image:.2f} salient words/image ({est.salient_source})"]
    cols = ("stage", "backend", "requests", "input text tok", "image tok", "output tok", "cost", "Batch API (50%)")
    rows = [cols]
    for s in est.stages:
        if s.offline:
            rows.append((s.stage, f"{s.backend} (offline)", "0", "0", "0", "0", "$0", "-"))
            continue
        cost = _usd(s.cost_usd)
        rows.append((s.stage, s.backend, _n(s.requests), _n(s.input_text_tokens), _n(s.image_tokens),
                     _n(s.output_tokens), cost, _usd(s.batch_cost_usd) if s.batch_cost_usd is not None else "-"))
    t = est.total()
    tot_cost = (_usd(t["cost_usd"]) if t["cost_usd"] is not None else
                (f"{_usd(t['known_cost_usd'])} + unknown" if t["known_cost_usd"] else "unknown"))
    rows.append(("total", "", _n(t["requests"]), _n(t["input_text_tokens"]), _n(t["image_tokens"]),
                 _n(t["output_tokens"]), tot_cost, _usd(t["batch_cost_usd"]) if t["batch_cost_usd"] is not None else "-"))
    width = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    for k, r in enumerate(rows):
        cells = [r[i].ljust(width[i]) if i < 2 else r[i].rjust(width[i]) for i in range(len(cols))]
        lines.append("  ".join(cells).rstrip())
        if k == 0 or k == len(rows) - 2:
            lines.append("  ".join("-" * w for w in width))
    lines.append("")
    lines.append(f"tokens: {est.tokenizer}; + {MESSAGE_OVERHEAD} per message and {REPLY_OVERHEAD} per request"
                 + ("" if est.tokens_exact else " (an approximation: pass --tokenizer tokenizer.json for exact counts)"))
    for s in est.stages:
        if s.offline:
            continue
        bits = []
        if s.price:
            bits.append(f"${s.price[0]:g}/${s.price[1]:g} per 1M in/out from {s.price_source}")
        if s.image_rule:
            bits.append(f"images: {s.image_rule}, mean {s.image_tokens_per_image or 0:,.0f} tokens/image as sent")
        if s.cost_max_usd is not None:
            bits.append(f"worst case (every call at max_tokens={s.max_tokens}) {_usd(s.cost_max_usd)}")
        if s.cacheable_input_tokens:
            share = s.cacheable_input_tokens / s.input_tokens if s.input_tokens else 0.0
            bits.append(f"prefix caching (one image's requests sent together): {share:.0%} of input cacheable, "
                        f"{_usd(s.cost_usd)} without caching -> {_usd(s.cost_cached_usd)} with it")
        bits += s.notes
        lines.append(f"{s.stage}: {'; '.join(bits) if bits else 'no notes'}")
    if all(s.offline for s in est.stages):
        lines.append("no stage uses a model: this run makes no model calls and costs nothing")
    if any(not s.offline and s.stage != "describe" for s in est.stages):
        lines.append(f"re-asks: caption attempts rejected at {est.reask_rate:.0%} -> {est.caption_attempts:.3f} requests "
                 f"per caption; association answers re-asked once at {est.associate_reask_rate:.0%} (--reask-rate)")
    lines += [f"assumed: {a}" if not a.startswith("calls already") else a[0].upper() + a[1:] for a in est.assumptions]
    return "\n".join(lines)

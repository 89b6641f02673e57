"""`visassoc backends check`: one tiny request per capability, with latency.

Tells a user, before a long run, whether their server answers at all, accepts images, and
which structured-output mode (json_schema, json_object) it honours.
"""
from __future__ import annotations

import io
import time
from typing import Any

from .base import GenParams, Message
from .jsonparse import parse_and_validate

PROBE_SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
PROBE_PARAMS = GenParams(temperature=0.0, max_tokens=20, seed=0)
JSON_PROMPT = 'Reply with only this JSON object: {"answer": "ok"}'


def _red_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (220, 20, 20)).save(buf, format="PNG")
    return buf.getvalue()


def _timed(fn) -> dict[str, Any]:
    t = time.perf_counter()
    try:
        detail = fn()
        return {"ok": True, "latency_ms": round((time.perf_counter() - t) * 1000), "detail": detail}
    except Exception as e:  # a check reports, it does not raise
        cause = e.__cause__ or e.__context__
        msg = " ".join(f"{e} ({cause})".split() if cause else str(e).split())[:200]
        return {"ok": False, "latency_ms": round((time.perf_counter() - t) * 1000), "error": msg}


def _openai_probe(backend, client, messages: list[Message], schema: dict | None, mode: str) -> str:
    body = backend.build_body(backend.openai_messages(messages), schema, PROBE_PARAMS, mode=mode)
    resp = client.chat.completions.create(**body, extra_body=getattr(backend, "_extra_body", None) or None)
    text = (resp.choices[0].message.content or "") if resp.choices else ""
    if schema is not None:
        parse_and_validate(text, schema)
    elif not text.strip():
        raise ValueError("empty answer")
    return text.strip()[:40]


def check_backend(backend, images: bool | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """{"name", "identity", "checks": {text, json_schema, json_object | json, images}}; never raises."""
    images = getattr(backend, "supports_images", False) if images is None else images
    out: dict[str, Any] = {"name": f"{backend.provider}:{backend.model}", "identity": backend.identity(),
                           "checks": {}}
    hello = [Message("user", "Reply with the single word OK.")]
    pic = [Message("user", "What is the main colour of this image? Answer with one word.", [_red_png()])]
    checks = out["checks"]
    if callable(getattr(backend, "build_body", None)):
        import openai

        client = openai.OpenAI(api_key=backend._api_key, base_url=backend.base_url, max_retries=0, timeout=timeout)
        checks["text"] = _timed(lambda: _openai_probe(backend, client, hello, None, "text"))
        if not checks["text"]["ok"]:
            return out  # dead server or wrong model: the other probes would say the same
        for mode in ("json_schema", "json_object"):
            checks[mode] = _timed(lambda m=mode: _openai_probe(backend, client, [Message("user", JSON_PROMPT)],
                                                              PROBE_SCHEMA, m))
        if not (checks["json_schema"]["ok"] or checks["json_object"]["ok"]):  # the run's last resort
            checks["json_text"] = _timed(lambda: _openai_probe(backend, client, [Message("user", JSON_PROMPT)],
                                                              PROBE_SCHEMA, "text"))
        if images:
            checks["images"] = _timed(lambda: _openai_probe(backend, client, pic, None, "text"))
        return out

    def gen(msgs, schema=None):
        g = backend.generate(msgs, schema=schema, params=PROBE_PARAMS)
        if g.error:
            raise ValueError(g.error)
        return g.text.strip()[:40]

    checks["text"] = _timed(lambda: gen(hello))
    checks["json"] = _timed(lambda: gen([Message("user", JSON_PROMPT)], PROBE_SCHEMA))
    if images:
        checks["images"] = _timed(lambda: gen(pic))
    return out


JSON_CHECKS = ("json_schema", "json_object", "json_text", "json")


def unserved(result: dict[str, Any], role: str) -> list[str]:
    """Why the checked backend cannot serve its role's stages ([] when it can): every role needs
    text; the llm (associate) needs JSON in some mode; the vlm (describe, caption) needs images."""
    c = result["checks"]
    if not c.get("text", {}).get("ok"):
        return [f"{role}: no text answer"]
    why = []
    if role == "llm" and not any(c.get(k, {}).get("ok") for k in JSON_CHECKS):
        why.append("llm: no usable JSON in any mode (json_schema, json_object, plain text); associate needs it")
    if role == "vlm" and not c.get("images", {}).get("ok"):
        why.append("vlm: images are not accepted; describe and caption need them")
    return why


def format_check(result: dict[str, Any]) -> str:
    lines = [f"{result['name']}  ({result['identity'].get('base_url', result['identity'].get('model', ''))})"]
    for name, c in result["checks"].items():
        if c["ok"]:
            lines.append(f"  {name:<12} ok    {c['latency_ms']:>6} ms  {c.get('detail', '')!r}")
        else:
            lines.append(f"  {name:<12} FAIL  {c['latency_ms']:>6} ms  {c['error']}")
    return "\n".join(lines)

"""OpenAI-compatible chat backend: OpenAI itself, vLLM, Ollama, llama.cpp server, LM Studio.

The ``openai`` SDK is only the wire protocol; retries, Retry-After, rate limits, structured
output fallback, tolerant parsing and fail-fast live here so they behave the same on every
server. Requests run concurrently on one private asyncio loop (a daemon thread), so the
synchronous ``generate``/``generate_many`` API works from scripts, CLIs and notebooks.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from .base import BackendError, GenParams, Generation, Message, Usage
from .images import DEFAULT_MAX_SIDE, image_data_url
from .jsonparse import parse_and_validate
from .pricing import estimate_cost

OPENAI_URL = "https://api.openai.com/v1"
MODES = ("json_schema", "json_object", "text")
@dataclass
class RetryPolicy:
    max_retries: int = 6  # per request, on 429 / 5xx / timeouts / connection errors
    backoff_base: float = 1.0  # seconds; doubles per attempt, with jitter
    backoff_max: float = 30.0
    max_retry_after: float = 120.0  # cap on a server's Retry-After
    connect_retries: int = 2  # attempts before a server that never answered is declared dead
    fail_fast_after: int = 8  # consecutive requests that exhausted retries -> BackendError


class _ItemError(Exception):
    """One request failed for good; the others go on."""


class _Bucket:
    """Token bucket refilled continuously at ``per_minute``/60 per second (capacity: 1 s worth)."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.t = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, n: float = 1.0) -> None:
        n = min(n, self.capacity)
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
                self.t = now
                if self.tokens >= n:
                    self.tokens -= n
                    return
                await asyncio.sleep((n - self.tokens) / self.rate)


def retry_after_seconds(headers) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return float(ra)
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(ra).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAIBackend:
    """A chat-completions endpoint; see ``docs/backends.md`` for servers and options."""

    provider = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        concurrency: int = 8,
        rpm: float | None = None,
        tpm: float | None = None,
        max_image_side: int = DEFAULT_MAX_SIDE,
        image_detail: str | None = None,
        structured: str = "auto",
        supports_images: bool = True,
        params: dict | None = None,
        retry: RetryPolicy | None = None,
        prices: dict | None = None,
        show_progress: bool = True,
    ):
        if structured not in ("auto", *MODES):
            raise ValueError(f"structured must be auto|json_schema|json_object|text, not {structured!r}")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        self.api_key_env = api_key_env
        # The key named by api_key_env goes to this backend's base_url and nowhere else; OPENAI_API_KEY
        # stands in only for OpenAI itself, so a config naming another server never receives it.
        key = api_key or os.environ.get(api_key_env)
        if not key and self.base_url.startswith(OPENAI_URL):
            key = os.environ.get("OPENAI_API_KEY")
        if not key:
            if self.base_url.startswith(OPENAI_URL):
                raise BackendError(f"no API key for {self.base_url}: set {api_key_env}")
            key = "EMPTY"  # local servers (vLLM, Ollama, llama.cpp) accept any key
        self._api_key = key
        self.timeout = float(timeout)
        self.concurrency = int(concurrency)
        self.rpm, self.tpm = rpm, tpm
        self.max_image_side = int(max_image_side)
        if image_detail not in (None, "low", "high", "auto"):
            raise ValueError(f"image_detail must be low, high or auto, not {image_detail!r}")
        self.image_detail = image_detail  # OpenAI bills "low" images at a fixed small token count
        self.structured = structured
        self.supports_images = supports_images
        self.retry = retry or RetryPolicy()
        self.prices = prices or {}
        self.show_progress = show_progress
        gp = set(GenParams.__dataclass_fields__)
        self._param_overrides = {k: v for k, v in (params or {}).items() if k in gp}
        self._extra_body = {k: v for k, v in (params or {}).items() if k not in gp}
        self._mode_i = 0 if structured == "auto" else MODES.index(structured)
        self._mode_confirmed = structured != "auto"
        self._ever_ok = False
        self._failed_in_row = 0
        self._total = Usage()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._client = self._sem = self._rpm_bucket = self._tpm_bucket = None

    # ---- identity / usage -------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def mode(self) -> str:
        """Structured-output mode in use: json_schema, json_object or text."""
        return MODES[self._mode_i]

    def identity(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "base_url": self.base_url,
                "max_image_side": self.max_image_side, "image_detail": self.image_detail,
                "params": {**self._param_overrides, **self._extra_body}}

    def usage(self) -> dict[str, Any]:
        u = self._total
        return {"prompt_tokens": u.prompt_tokens, "cached_tokens": u.cached_tokens,
                "completion_tokens": u.completion_tokens, "requests": u.requests,
                "cost_usd": estimate_cost(self.model, u, self.prices)}

    # ---- request bodies -----------------------------------------------------------------
    def params_for(self, params: GenParams | None) -> GenParams:
        p = params or GenParams()
        return GenParams(**{**p.__dict__, **self._param_overrides}) if self._param_overrides else p

    def openai_messages(self, messages: list[Message]) -> list[dict]:
        """Chat messages with images (first) as JPEG data URLs; raises ValueError for a bad image."""
        out = []
        for m in messages:
            if m.images and not self.supports_images:
                raise ValueError(f"{self.name} is configured without image support")
            if not m.images:
                out.append({"role": m.role, "content": m.text})
                continue
            detail = {"detail": self.image_detail} if self.image_detail else {}
            parts = [{"type": "image_url", "image_url": {"url": image_data_url(img, self.max_image_side), **detail}}
                     for img in m.images]
            out.append({"role": m.role, "content": parts + [{"type": "text", "text": m.text}]})
        return out

    def build_body(self, msgs: list[dict], schema: dict | None, params: GenParams | None,
                   mode: str | None = None, extra: bool = False) -> dict:
        """The /v1/chat/completions JSON body (``extra=True`` merges provider-specific params)."""
        p = self.params_for(params)
        body: dict[str, Any] = {"model": self.model, "messages": msgs, "top_p": p.top_p, "max_tokens": p.max_tokens}
        if p.temperature is not None:  # None: the provider's default
            body["temperature"] = p.temperature
        if p.seed is not None:
            body["seed"] = p.seed
        mode = mode or self.mode
        if p.response_format in MODES and MODES.index(mode) < MODES.index(p.response_format):
            mode = p.response_format  # this call asks for no more than that (e.g. the paper's json_object)
        if schema is not None and mode == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "visassoc", "schema": schema, "strict": False}}
        elif schema is not None and mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        if extra:
            body.update(self._extra_body)
        return body

    # ---- event loop ---------------------------------------------------------------------
    def _run(self, coro):
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=f"visassoc-{self.model}", daemon=True).start()
                self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._loop is not None:
            if self._client is not None:
                asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = self._client = None

    def _setup(self) -> None:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0,
                                              timeout=self.timeout)
            self._sem = asyncio.Semaphore(self.concurrency)
            self._rpm_bucket = _Bucket(self.rpm) if self.rpm else None
            self._tpm_bucket = _Bucket(self.tpm) if self.tpm else None

    def sync_client(self):
        """A synchronous SDK client for the same server (Files and Batches API)."""
        import openai

        return openai.OpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=2, timeout=self.timeout)

    # ---- public generation API ----------------------------------------------------------
    def generate(self, messages: list[Message], *, schema: dict | None = None,
                 params: GenParams | None = None) -> Generation:
        return self.generate_many([(messages, schema, params)], show_progress=False)[0]

    def generate_many(self, calls: list[tuple], desc: str | None = None,
                      show_progress: bool | None = None) -> list[Generation]:
        """Run ``(messages, schema, params)`` calls concurrently; one Generation per call, in order.
        Raises BackendError when the server is dead or refuses the credentials/model."""
        if not calls:
            return []
        show = self.show_progress if show_progress is None else show_progress
        return self._run(self._gather(calls, desc or self.name, show and len(calls) > 1))

    async def _gather(self, calls, desc, show):
        self._setup()
        bar = tqdm(total=len(calls), desc=desc, unit="req", disable=not show)
        out: list[Generation | None] = [None] * len(calls)

        async def one(i, call):
            try:
                out[i] = await self._generate_one(*call)
            except (BackendError, asyncio.CancelledError):
                raise
            except Exception as e:  # a bug in one item must not sink the others
                out[i] = Generation(text="", error=f"{type(e).__name__}: {e}")
            bar.update(1)

        tasks = [asyncio.ensure_future(one(i, c)) for i, c in enumerate(calls)]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()
        finally:
            bar.close()
        return out

    async def _generate_one(self, messages, schema=None, params=None) -> Generation:
        usage = Usage()
        try:
            if any(m.images for m in messages):  # decode/resize/encode off the event loop
                msgs = await asyncio.get_running_loop().run_in_executor(None, self.openai_messages, messages)
            else:
                msgs = self.openai_messages(messages)
            text = await self._complete(msgs, schema, params, usage)
        except (_ItemError, ValueError) as e:
            return Generation(text="", usage=usage, error=str(e))
        if schema is None:
            return Generation(text=text, usage=usage, error=None if text.strip() else "empty model output")
        try:
            return Generation(text=text, parsed=parse_and_validate(text, schema), usage=usage)
        except ValueError as e:
            first = str(e)
        reask = msgs + [{"role": "assistant", "content": text or "(empty)"},
                        {"role": "user", "content": f"That reply was not usable: {first}. Reply again with only "
                                                    "the JSON object in the required format, nothing else."}]
        text2 = ""
        try:
            text2 = await self._complete(reask, schema, params, usage)
            return Generation(text=text2, parsed=parse_and_validate(text2, schema), usage=usage)
        except (_ItemError, ValueError) as e:
            return Generation(text=text2 or text, usage=usage,
                              error=f"invalid output after one re-ask: {e} (first: {first})")

    async def _complete(self, msgs, schema, params, usage: Usage) -> str:
        """One chat completion with retries, rate limits and structured-output fallback."""
        import openai

        attempt = conn_fail = 0
        while True:
            mode = self.mode
            body = self.build_body(msgs, schema, params, mode)
            if self._rpm_bucket:
                await self._rpm_bucket.take(1)
            if self._tpm_bucket:
                await self._tpm_bucket.take(len(json.dumps(msgs)) / 4 + body["max_tokens"])
            try:
                async with self._sem:  # the SDK's generic post: same auth/errors, ~30% less CPU than create()
                    if mode != self.mode:  # another request learnt the server's mode while this one queued
                        mode = self.mode
                        body = self.build_body(msgs, schema, params, mode)
                    resp = await self._client.post("/chat/completions", body={**body, **self._extra_body},
                                                   cast_to=object)
            except openai.APIStatusError as e:
                status, msg = e.status_code, _short(e)
                if status in (401, 403):
                    raise BackendError(f"{self.name}: HTTP {status} from {self.base_url} ({msg}); "
                                       f"check {self.api_key_env}") from None
                if status == 404:
                    raise BackendError(f"{self.name}: HTTP 404 from {self.base_url} ({msg}); "
                                       "wrong model id or base URL (it usually ends in /v1)") from None
                if "response_format" in body and format_rejected(status, msg, _error_text(e)):
                    # A server without this structured-output mode (llama.cpp's server says so with a 500):
                    # step down json_schema -> json_object -> text, remember it, and never retry or count it
                    # toward the dead-server rule, since the server answered.
                    self._ever_ok = True
                    if MODES.index(mode) < self._mode_i:  # a concurrent request already fell back: resend
                        continue
                    if not self._mode_confirmed:
                        self._mode_i = max(self._mode_i, MODES.index(mode) + 1)  # server lacks this mode
                        continue
                    raise _ItemError(f"HTTP {status}: the server refused response_format {mode} "
                                     f"(structured: {self.structured}): {msg}") from None
                if status not in (408, 409, 429) and status < 500:
                    raise _ItemError(f"HTTP {status}: {msg}") from None
                delay = retry_after_seconds(e.response.headers)
                why = f"HTTP {status}: {msg}"
            except openai.APITimeoutError:
                delay, why = None, f"timed out after {self.timeout:g}s"
                conn_fail += 1
            except openai.APIConnectionError as e:
                cause = e.__cause__ or e.__context__
                delay, why = None, f"connection error: {_short(cause) if cause else _short(e)}"
                conn_fail += 1
            else:
                if not isinstance(resp, dict) or "choices" not in resp:
                    raise _ItemError(f"not a chat completion: {str(resp)[:80]!r}")
                self._ever_ok = True
                self._failed_in_row = 0
                if "response_format" in body:
                    self._mode_confirmed = True
                u = Usage(requests=1)
                ru = resp.get("usage") if isinstance(resp, dict) else None
                if isinstance(ru, dict):
                    u.prompt_tokens = ru.get("prompt_tokens") or 0
                    u.completion_tokens = ru.get("completion_tokens") or 0
                    details = ru.get("prompt_tokens_details")  # OpenAI prompt caching; vLLM with --enable-prompt-tokens-details
                    if isinstance(details, dict):
                        u.cached_tokens = int(details.get("cached_tokens") or 0)
                usage.add(u)
                self._total.add(u)
                return message_text(resp)
            if not self._ever_ok and conn_fail >= self.retry.connect_retries:
                raise BackendError(f"{self.name}: cannot reach {self.base_url} ({why}); is the server running? "
                                   "set OPENAI_BASE_URL or base_url in the backend config") from None
            attempt += 1
            if attempt > self.retry.max_retries:
                self._failed_in_row += 1
                if self._failed_in_row >= self.retry.fail_fast_after:
                    raise BackendError(f"{self.name}: {self._failed_in_row} requests in a row failed after "
                                       f"{self.retry.max_retries} retries at {self.base_url}; last: {why}")
                raise _ItemError(f"gave up after {self.retry.max_retries} retries: {why}")
            if delay is not None:
                delay = min(delay, self.retry.max_retry_after) * (1.0 + 0.1 * random.random())
            else:
                cap = min(self.retry.backoff_max, self.retry.backoff_base * 2 ** (attempt - 1))
                delay = cap * (0.5 + 0.5 * random.random())
            await asyncio.sleep(delay)


def message_text(resp: Any) -> str:
    """choices[0].message.content of a chat completion dict ('' when absent)."""
    try:
        return resp["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def _short(e: Exception) -> str:
    """One line from an SDK error: the server's message when it sent one."""
    body = getattr(e, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error")
        msg = err.get("message") if isinstance(err, dict) else body.get("message")
    msg = msg or getattr(e, "message", None) or str(e)
    return " ".join(str(msg).split())[:200]


_FORMAT_HINTS = ("response_format", "json", "schema", "format", "guided", "grammar")


def format_rejected(status: int, msg: str, body_text: str) -> bool:
    """Did the server refuse the request's ``response_format``? Any status whose error body names
    response_format or json_schema (llama-cpp-python answers 500 "Input should be 'text' or
    'json_object'" with the field path in the body); on 400/422 also the looser hints."""
    text = f"{msg} {body_text}".lower()
    if "response_format" in text or "json_schema" in text:
        return True
    return status in (400, 422) and any(h in text for h in _FORMAT_HINTS)


def _error_text(e: Exception) -> str:
    """The whole error body of an SDK status error (the field path may be past ``_short``'s cut)."""
    body = getattr(e, "body", None)
    if body is not None:
        try:
            return json.dumps(body)[:4000]
        except (TypeError, ValueError):
            pass
    resp = getattr(e, "response", None)
    try:
        return resp.text[:4000] if resp is not None else ""
    except Exception:  # a streamed or closed body
        return ""

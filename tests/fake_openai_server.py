"""A loopback stand-in for an OpenAI-compatible server (chat completions, files, batches).

It exists because tests cannot reach a real model server: it speaks real HTTP on 127.0.0.1
with an ephemeral port, answers from a scripted queue of faults and then from a responder
function, and records every request (with in-flight counts) so tests can check the client.
"""
from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    """One scripted answer: a status with a JSON error, a stall, or raw message content."""

    content: str | None = None  # assistant message content (status 200)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a stall past the client's timeout)
    error: str = "scripted error"
    finish_reason: str = "stop"


def rate_limited(retry_after: str = "1") -> Reply:
    return Reply(status=429, headers={"Retry-After": retry_after}, error="Rate limit reached")


def server_error() -> Reply:
    return Reply(status=500, error="internal error")


def stall(seconds: float) -> Reply:
    return Reply(content='{"stalled": true}', delay=seconds)


def prompt_text(body: dict) -> str:
    """All text parts of all messages, joined."""
    out = []
    for m in body.get("messages", []):
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out.extend(p.get("text", "") for p in c if p.get("type") == "text")
    return "\n".join(out)


def prompt_tokens(body: dict, image_tokens: int = 1000) -> list:
    """The request as a token sequence, in message order: ~4 characters of text per token, and an
    image as ``image_tokens`` tokens derived from its data (same image, same tokens)."""
    import hashlib

    toks: list = []
    for m in body.get("messages", []):
        c = m.get("content")
        parts = [{"type": "text", "text": c}] if isinstance(c, str) else c if isinstance(c, list) else []
        for p in parts:
            if p.get("type") == "text":
                t = p.get("text", "")
                toks += [t[i:i + 4] for i in range(0, len(t), 4)]
            elif p.get("type") == "image_url":
                h = hashlib.sha256(p["image_url"]["url"].encode()).hexdigest()[:12]
                toks += [f"<img {h} {i}>" for i in range(image_tokens)]
    return toks


def image_urls(body: dict) -> list[str]:
    return [p["image_url"]["url"] for m in body.get("messages", []) if isinstance(m.get("content"), list)
            for p in m["content"] if p.get("type") == "image_url"]


_counter = itertools.count()


def _fake_word() -> str:
    n = next(_counter)
    letters = ""
    while True:
        letters = "bcdfghjklmnpqrstvwz"[n % 19] + letters
        n //= 19
        if n == 0:
            break
    return "zo" + letters


def from_schema(schema: dict, key: str = "") -> Any:
    """A value that satisfies ``schema`` (objects, arrays of strings, strings)."""
    t = schema.get("type")
    if t == "object":
        props = schema.get("properties", {})
        return {k: from_schema(v, k) for k, v in props.items()}
    if t == "array":
        return [from_schema(schema.get("items", {}), key) for _ in range(max(1, schema.get("minItems", 1)))]
    if t in ("integer", "number"):
        return 1
    if t == "boolean":
        return True
    if key in ("description",):
        return "A detailed scene with people, objects and a background."
    if key in ("short_caption", "caption"):
        return "a person standing outside"
    return _fake_word()


def default_responder(body: dict) -> str:
    """Schema-shaped JSON when a json_schema is requested, otherwise a plain answer."""
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        return json.dumps(from_schema(rf["json_schema"]["schema"]))
    if rf.get("type") == "json_object":
        return '{"answer": "ok"}'
    return "red" if image_urls(body) else "OK"


class FakeOpenAI:
    def __init__(self, responder: Callable[[dict], str] | None = None, latency: float = 0.0,
                 json_schema_supported: bool = True, batch_polls_to_finish: int = 1,
                 batch_expire_after: int | None = None, prefix_cache=None, image_tokens: int = 1000,
                 reject_formats: tuple[str, ...] = (), reject_status: int = 500):
        self.responder = responder or default_responder
        # a visassoc.backends.prefix_cache.PrefixCache: usage then reports prompt_tokens_details.cached_tokens
        self.prefix_cache, self.image_tokens = prefix_cache, image_tokens
        self.latency = latency
        self.json_schema_supported = json_schema_supported
        # response_format types refused the way llama-cpp-python's server does: HTTP 500 whose body
        # carries the request-validation detail (the field path only past the first line)
        self.reject_formats, self.reject_status = tuple(reject_formats), reject_status
        self.batch_polls_to_finish = batch_polls_to_finish
        self.batch_expire_after = batch_expire_after  # complete only this many lines, then "expired"
        self.script: deque[Reply] = deque()
        self.requests: list[dict] = []  # {"body", "t0", "t1", "status"}
        self.inflight = 0
        self.max_inflight = 0
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None

    # ---- lifecycle ----
    def start(self) -> "FakeOpenAI":
        server = self

        class Handler(_Handler):
            fake = server

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default 5 resets connections when 32 clients connect at once
            daemon_threads = True

        self._httpd = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def push(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    # ---- chat ----
    def chat(self, body: dict) -> tuple[int, dict, dict, float]:
        """(status, json, headers, delay) for one chat completion request."""
        with self._lock:
            reply = self.script.popleft() if self.script else None
        rf = (body.get("response_format") or {}).get("type")
        if rf == "json_schema" and not self.json_schema_supported:
            return 400, {"error": {"message": "response_format type json_schema is not supported",
                                   "type": "invalid_request_error"}}, {}, 0.0
        if rf in self.reject_formats:
            return self.reject_status, {"error": {"message": "Input should be 'text' or 'json_object'",
                                                  "type": "internal_server_error",
                                                  "detail": [{"loc": ["body", "response_format", "type"],
                                                              "input": rf}]}}, {}, 0.0
        if reply is None:  # a responder may answer with text or with a whole Reply (an error status)
            answer = self.responder(body)
            reply = answer if isinstance(answer, Reply) else Reply(content=answer, delay=self.latency)
        if reply.status != 200:
            return reply.status, {"error": {"message": reply.error, "type": "fake"}}, reply.headers, reply.delay
        content = reply.content if reply.content is not None else ""
        n_prompt = len(prompt_text(body)) // 4 + 1
        details = {}
        if self.prefix_cache is not None:
            toks = prompt_tokens(body, self.image_tokens)
            with self._lock:
                details = {"prompt_tokens_details": {"cached_tokens": self.prefix_cache.request(toks)}}
            n_prompt = len(toks)
        return 200, {
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": reply.finish_reason}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": len(content) // 4 + 1,
                      "total_tokens": n_prompt + len(content) // 4 + 1, **details},
        }, reply.headers, reply.delay

    # ---- batches ----
    def _advance(self, b: dict) -> None:
        b["_polls"] += 1
        if b["status"] in ("completed", "expired", "failed") or b["_polls"] < self.batch_polls_to_finish:
            b["status"] = "in_progress" if b["status"] == "validating" else b["status"]
            return
        lines = [json.loads(x) for x in self.files[b["input_file_id"]]["data"].decode().splitlines() if x.strip()]
        out, err = [], []
        for i, line in enumerate(lines):
            if self.batch_expire_after is not None and i >= self.batch_expire_after:
                err.append({"id": f"batch_req_{i}", "custom_id": line["custom_id"], "response": None,
                            "error": {"code": "batch_expired", "message": "This request could not be executed "
                                      "before the completion window expired."}})
                continue
            status, payload, _, _ = self.chat(line["body"])
            rec = {"id": f"batch_req_{i}", "custom_id": line["custom_id"],
                   "response": {"status_code": status, "request_id": f"req_{i}", "body": payload}, "error": None}
            (out if status == 200 else err).append(rec)
        b["output_file_id"] = self._add_file("\n".join(json.dumps(r) for r in out).encode() + b"\n", "batch_output")
        b["error_file_id"] = (self._add_file("\n".join(json.dumps(r) for r in err).encode() + b"\n", "batch_output")
                              if err else None)
        b["status"] = "expired" if self.batch_expire_after is not None else "completed"
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}

    def _add_file(self, data: bytes, purpose: str, filename: str = "file.jsonl") -> str:
        fid = f"file-{next(self._ids)}"
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                           "filename": filename, "purpose": purpose, "status": "processed", "data": data}
        return fid


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):  # quiet
        pass

    def _send(self, status: int, payload: Any, headers: dict | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); that is what a stall test wants

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_POST(self):
        f = self.fake
        raw = self._body()
        if self.path.endswith("/chat/completions"):
            body = json.loads(raw)
            rec = {"path": self.path, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()},
                   "t0": time.monotonic(), "t1": None, "status": None}
            with f._lock:
                f.requests.append(rec)  # recorded on arrival, completed below
                f.inflight += 1
                f.max_inflight = max(f.max_inflight, f.inflight)
            try:
                status, payload, headers, delay = f.chat(body)
                rec["status"] = status
                if delay:
                    time.sleep(delay)
            finally:
                with f._lock:
                    f.inflight -= 1
            rec["t1"] = time.monotonic()
            return self._send(status, payload, headers)
        f.requests.append({"path": self.path, "body": None, "t0": time.monotonic(), "t1": time.monotonic(),
                           "status": 200})
        if self.path.endswith("/files"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
            data, purpose, name = b"", "batch", "upload.jsonl"
            for part in msg.iter_parts():
                disp = part.get("Content-Disposition", "")
                if 'name="file"' in disp:
                    data = part.get_payload(decode=True)
                    m = re.search(r'filename="([^"]*)"', disp)
                    name = m.group(1) if m else name
                elif 'name="purpose"' in disp:
                    purpose = part.get_payload(decode=True).decode()
            fid = f._add_file(data, purpose, name)
            return self._send(200, {k: v for k, v in f.files[fid].items() if k != "data"})
        if self.path.endswith("/batches"):
            req = json.loads(raw)
            if req["input_file_id"] not in f.files:
                return self._send(404, {"error": {"message": "no such file"}})
            bid = f"batch_{next(f._ids)}"
            f.batches[bid] = {"id": bid, "object": "batch", "endpoint": req["endpoint"], "errors": None,
                              "input_file_id": req["input_file_id"], "completion_window": req["completion_window"],
                              "status": "validating", "output_file_id": None, "error_file_id": None,
                              "created_at": int(time.time()), "request_counts": {"total": 0, "completed": 0,
                                                                                  "failed": 0},
                              "metadata": req.get("metadata"), "_polls": 0}
            return self._send(200, _public(f.batches[bid]))
        return self._send(404, {"error": {"message": f"unknown path {self.path}"}})

    def do_GET(self):
        f = self.fake
        m = re.search(r"/files/([^/]+)/content$", self.path)
        if m and m.group(1) in f.files:
            return self._send(200, None, raw=f.files[m.group(1)]["data"])
        m = re.search(r"/files/([^/]+)$", self.path)
        if m and m.group(1) in f.files:
            return self._send(200, {k: v for k, v in f.files[m.group(1)].items() if k != "data"})
        m = re.search(r"/batches/([^/]+)$", self.path)
        if m and m.group(1) in f.batches:
            b = f.batches[m.group(1)]
            f._advance(b)
            return self._send(200, _public(b))
        if self.path.endswith("/models"):
            return self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        return self._send(404, {"error": {"message": f"unknown path {self.path}"}})


def _public(b: dict) -> dict:
    return {k: v for k, v in b.items() if not k.startswith("_")}


if __name__ == "__main__":  # a standalone server for benchmarks/bench_http.py
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="loopback fake OpenAI-compatible server")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--seconds", type=float, default=600, help="exit after this long")
    a = ap.parse_args()
    srv = FakeOpenAI(latency=a.latency).start()
    print(srv.base_url, flush=True)
    try:
        time.sleep(a.seconds)
    finally:
        srv.stop()
        sys.exit(0)

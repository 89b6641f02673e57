"""A loopback HTTP server (127.0.0.1, port 0) standing in for the web hosts of a URL list:
images, a 404, a hanging response, an HTML page, a redirect and a flaky 503-then-200."""
from __future__ import annotations

import io
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def image_bytes(fmt: str = "JPEG", color=(200, 80, 40), size=(40, 30)) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.new("RGB", size, color).save(b, fmt)
    return b.getvalue()


class Loopback:
    def __init__(self, hang_s: float = 3.0):
        self.hits: Counter = Counter()
        self.hang_s = hang_s
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, code: int, body: bytes = b"", ctype: str = "application/octet-stream", headers=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def do_GET(self):  # noqa: N802
                path = self.path.split("?")[0]
                srv.hits[path] += 1
                if path.startswith("/img/") and path.endswith(".jpg"):
                    return self._send(200, image_bytes("JPEG"), "image/jpeg")
                if path.startswith("/img/") and path.endswith(".png"):
                    return self._send(200, image_bytes("PNG", (10, 120, 200), (300, 200)), "image/png")
                if path == "/hang":
                    time.sleep(srv.hang_s)
                    return self._send(200, image_bytes(), "image/jpeg")
                if path == "/page.html":
                    return self._send(200, b"<html><body>not a picture</body></html>", "text/html")
                if path == "/moved":
                    return self._send(302, headers={"Location": "/img/target.jpg"})
                if path == "/flaky.jpg":
                    if srv.hits[path] == 1:
                        return self._send(503, b"busy", "text/plain")
                    return self._send(200, image_bytes(), "image/jpeg")
                return self._send(404, b"nope", "text/plain")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

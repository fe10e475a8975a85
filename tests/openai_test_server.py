"""A local OpenAI-compatible server for tests, on 127.0.0.1, that injects faults on request.

`plan` is a list of actions taken by the first requests, in arrival order ("400", "429", "500",
"timeout", "malformed", "drop", "html": a 200 with a web page, "empty": a 200 with no choices,
"429:SECONDS": a 429 with `Retry-After: SECONDS`); requests after it succeed. `refuse(prompt)`
returning a message makes the server answer that prompt with a 400 carrying it, every time (a
refusal for good, e.g. context length exceeded); a (status, message) pair refuses with that
status, and "{auth}" in a message stands for the request's Authorization header, as a careless
server quotes it. `echo_auth` appends the Authorization header to every error message it sends.
Replies come from `responder(prompt, seed)`, or from `reply(body)` when given (the whole request
body: the model, every message, max_tokens). `cut_at_max_tokens`: a reply longer than the request's
`max_tokens` words is cut to that many words and finishes with "length", as a server stops a model at
its budget (otherwise every reply finishes with "stop", whatever its length). Every request body, its Authorization header and its arrival time are recorded. It serves until
stopped and sends traffic nowhere else.

For replicas: `default` is the action once the plan is used up ("500": a server that always
fails); `delay` seconds pass before each answer (requests stay in flight); `GET /models` answers
a model list, or 503 while `healthy` is false, and is counted in `health_checks`; `kill()` stops
the server mid-run, cutting the connections of requests in flight, and `restart()` serves again on
the same port.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultyOpenAIServer:
    def __init__(self, responder, plan=(), stall_seconds: float = 2.0, refuse=None, default: str = "ok",
                 delay: float = 0.0, echo_auth: bool = False, reply=None, cut_at_max_tokens: bool = False):
        self.responder = responder
        self.reply = reply
        self.cut_at_max_tokens = cut_at_max_tokens
        self.echo_auth = echo_auth
        self.default = default
        self.delay = delay
        self.healthy = True
        self.health_checks = 0
        self.dead = False  # killed: connections still open get no answer
        self._open: set[socket.socket] = set()  # connections being served, cut by kill()
        self.refuse = refuse
        self.times: list[float] = []
        self.plan = list(plan)
        self.stall_seconds = stall_seconds
        self.received: list[dict] = []
        self.auth: list[str | None] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                with server._lock:
                    server._open.add(self.connection)

            def finish(self):
                with server._lock:
                    server._open.discard(self.connection)
                try:
                    super().finish()
                except OSError:  # cut by kill()
                    pass

            def _cut(self):
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def do_GET(self):
                if server.dead:
                    return self._cut()
                if not self.path.endswith("/models"):
                    return self._send(404, {"error": {"message": "no such route"}})
                with server._lock:
                    server.health_checks += 1
                if not server.healthy:
                    return self._send(503, {"error": {"message": "loading"}})
                self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model", "created": 0,
                                                             "owned_by": "test"}]})

            def do_POST(self):
                if server.dead:
                    return self._cut()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.received.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    server.times.append(time.monotonic())
                    action = server.plan.pop(0) if server.plan else server.default
                if server.delay:
                    time.sleep(server.delay)
                if server.dead:  # killed while this request was in flight
                    return self._cut()
                chat = self.path.endswith("/chat/completions")
                prompt = body["messages"][-1]["content"] if chat else body["prompt"]
                refusal = server.refuse(prompt) if server.refuse else None
                if refusal:
                    status = 400
                    if isinstance(refusal, tuple):  # (status, message)
                        status, refusal = refusal
                    refusal = refusal.replace("{auth}", str(self.headers.get("Authorization")))
                    return self._send(status, {"error": {"message": refusal, "type": "invalid_request_error"}})
                if action.startswith("429:"):
                    return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": action[4:]})
                if action == "html":
                    return self._raw(200, b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
                if action == "empty":
                    return self._send(200, {"id": "x", "object": "text_completion", "created": 0, "model": body["model"], "choices": []})
                if action in ("400", "429", "500", "503"):
                    return self._send(int(action), {"error": {"message": f"injected {action}"}})
                if action == "timeout":
                    time.sleep(server.stall_seconds)
                    return self._send(500, {"error": {"message": "too late"}})
                if action == "malformed":
                    return self._raw(200, b'{"choices": [ this is not json')
                if action == "drop":
                    self.close_connection = True
                    return
                text = server.reply(body) if server.reply else server.responder(prompt, body.get("seed"))
                finish = "stop"
                if server.cut_at_max_tokens and len(text.split()) > body.get("max_tokens", len(text.split())):
                    text, finish = " ".join(text.split()[: body["max_tokens"]]), "length"
                choice = {"index": 0, "finish_reason": finish, **({"message": {"role": "assistant", "content": text}} if chat else {"text": text})}
                usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                         "total_tokens": len(prompt.split()) + len(text.split())}
                self._send(200, {"id": "x", "object": "chat.completion" if chat else "text_completion", "created": 0,
                                 "model": body["model"], "choices": [choice], "usage": usage})

            def _send(self, status, payload, headers=None):
                if server.echo_auth and status >= 400 and isinstance(payload.get("error"), dict):
                    payload["error"]["message"] += f" (you sent Authorization: {self.headers.get('Authorization')})"
                self._raw(status, json.dumps(payload).encode(), headers=headers)

            def _raw(self, status, data, content_type="application/json", headers=None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._handler = Handler
        self._serve(0)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _serve(self, port: int) -> None:
        self.httpd = _QuietServer(("127.0.0.1", port), self._handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def kill(self) -> None:
        """Stop listening and cut every connection being served, as a crashed server would."""
        self.dead = True
        self._cut_all()
        self.__exit__()
        self._cut_all()

    def _cut_all(self) -> None:
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restart(self) -> None:
        """Serve again on the same port after `kill()`."""
        self.dead = False
        self._serve(self.port)
        self._thread.start()


class _QuietServer(ThreadingHTTPServer):
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # a connection cut by kill(): nothing to report
            super().handle_error(request, client_address)

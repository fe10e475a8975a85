"""A local fake of the OpenAI Files + Batch API for tests, on 127.0.0.1 (a free port).

`with OpenAIBatchServer(responder) as s:` serves on a daemon thread until the `with` ends (or
`s.stop()`); point the real `openai` client at `s.url` ("http://127.0.0.1:PORT/v1"). It sends
traffic nowhere else and serves one request at a time. It answers, in the shapes the client parses:

- `POST /files` (`files.create`, a multipart/form-data upload), `GET /files/{id}` (`files.retrieve`),
  `GET /files/{id}/content` (`files.content`: the file's raw bytes), `DELETE /files/{id}`;
- `POST /batches` (`batches.create`, endpoint "/v1/chat/completions" or "/v1/completions", window
  "24h"), `GET /batches` (`batches.list`, one page, newest first), `GET /batches/{id}` (`batches.retrieve`), `POST /batches/{id}/cancel` (`batches.cancel`);
- live `POST /completions` and `POST /chat/completions` (same replies and shapes as in a batch,
  counted in `live_calls`) and `GET /models` (one model, "test-model"), so a test can compare a
  live call with the same request sent through a batch.

Unknown ids and routes get a 404 with `{"error": {"message": ...}}`, as the API answers; a bad
request (wrong endpoint, window or purpose) a 400; cancelling a finished batch a 409.

A batch is processed lazily, on `retrieve`. It is "validating" right after `create`. The first
retrieve validates its input file: a line that is not a JSON object, lacks custom_id, method, url
or body, is not a POST, names another url than the batch's endpoint, or repeats a custom_id makes
the batch "failed" at once, with each bad line (1-based) in `errors.data`. Otherwise the batch is
"in_progress" until `finish_after` seconds have passed since its creation, and the retrieve after
that finishes it by its outcome. `cancel` moves an unfinished batch to "cancelling" and the next
retrieve to "cancelled" (no output file, no error file).

Each input line is `{"custom_id", "method": "POST", "url", "body"}`. Each answered line goes to the
output file, like the real API and `vllm run-batch`, as `{"id": "batch_req_N", "custom_id",
"response": {"status_code": 200, "request_id": "req_N", "body": <completion>}, "error": null}`,
where <completion> is a full "text_completion" (choices[0].text) or "chat.completion"
(choices[0].message = {"role": "assistant", "content"}) object with `usage` {prompt_tokens,
completion_tokens, total_tokens, prompt_tokens_details: {cached_tokens}}. Tokens are whitespace
words: of the prompt, or of all message contents joined. `logprobs` is always null and `stop` is not
applied (the responder sees the body and may honour either). An output or error file exists only
when it has lines (`output_file_id`/`error_file_id` are null otherwise); request_counts.failed
counts every line of the error file.

Knobs (keyword arguments):
- `responder(body) -> str`: the reply text for one request body (model, messages or prompt,
  max_tokens, temperature, ...). Required.
- `finish_after`: seconds from creation before a batch can finish (default 0: the first retrieve).
- `outcomes`: the outcome of the 1st, 2nd, ... batch created; "completed" once the list is used up.
  "completed": every line answered, status "completed". "expired:K": status "expired", only the
  first K lines are answered, the others go to the error file as `{"id", "custom_id",
  "response": null, "error": {"code": "batch_expired", "message": ...}}`. "cancelled": status
  "cancelled", no files. "failed": status "failed", no files, `errors.data` = [{"code":
  "invalid_request", "message": "injected failure", "line": 1, "param": null}].
- `fail(custom_id, body) -> (status, message) | None`: a per-request error for a batch line (not
  for live calls): that line goes to the error file with `response` = {"status_code": status,
  "request_id", "body": {"error": {"message", "type": "server_error" (status >= 500) or
  "invalid_request_error"}}} and counts as failed.
- `cached_tokens(body) -> int`: usage.prompt_tokens_details.cached_tokens (default 0).
- `cut_at_max_tokens`: a reply longer than the request's max_tokens (or max_completion_tokens) words
  is cut to that many words and finishes with "length", as a server stops a model at its budget
  (otherwise every reply finishes with "stop").

Recorded for assertions: `answered` (batch lines answered with a 200, over all batches: the model
calls a test counts), `live_calls`, `uploads` (a list of (filename, purpose, lines) per upload, the
lines parsed as JSON, a line that is not JSON kept as its text), `files` (id -> the file object
plus its bytes under "data"), `batches` (id -> the batch object plus "lines", its parsed input
lines, "outcome", and "started", its monotonic creation time), `retrieves` (the number of `GET /batches/{id}`).
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import itertools
import json
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

MODEL_ID = "test-model"
ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
EXPIRED_ERROR = {"code": "batch_expired",
                 "message": "This request could not be executed before the completion window expired."}
INJECTED_FAILURE = {"code": "invalid_request", "message": "injected failure", "line": 1, "param": None}
BATCH_FIELDS = ("id", "object", "endpoint", "errors", "input_file_id", "completion_window", "status",
                "output_file_id", "error_file_id", "created_at", "in_progress_at", "expires_at", "finalizing_at",
                "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at", "request_counts",
                "metadata")
FILE_FIELDS = ("id", "object", "bytes", "created_at", "filename", "purpose", "status")


class ApiError(Exception):
    """An error answer, in the API's shape: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param

    def payload(self) -> dict:
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": None}}


@dataclass
class Request:
    """One HTTP request, as a route sees it: `params` are the named groups of its route."""

    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive: the handler's email.message.Message
    body: bytes
    params: dict = field(default_factory=dict)

    def json(self) -> dict:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise ApiError(400, f"The request body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return value


class OpenAIBatchServer:
    """The fake Files + Batch API; its knobs and records are described in the module docstring."""

    def __init__(self, responder: Callable[[dict], str], *, finish_after: float = 0.0, outcomes=(),
                 fail: Callable[[str, dict], tuple[int, str] | None] | None = None,
                 cached_tokens: Callable[[dict], int] | None = None, cut_at_max_tokens: bool = False):
        self.responder = responder
        self.finish_after = finish_after
        self.outcomes = [_check_outcome(outcome) for outcome in outcomes]
        self.fail = fail
        self.cached_tokens = cached_tokens or (lambda body: 0)
        self.cut_at_max_tokens = cut_at_max_tokens
        self.answered = 0
        self.live_calls = 0
        self.retrieves = 0
        self.uploads: list[tuple[str, str, list]] = []
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self._counters = collections.defaultdict(lambda: itertools.count(1))
        self._lock = threading.Lock()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._stopped = False

    # --- life cycle ---

    def start(self) -> Self:
        """Serve on a daemon thread (what `with` does)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice, or on a server never started."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- routing ---

    def handle(self, request: Request) -> dict | bytes:
        """Answer one request: a JSON object, or raw bytes (file content); ApiError for an error answer."""
        for method, pattern, route in _ROUTES:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                request.params = match.groupdict()
                with self._lock:
                    return route(self, request)
        raise ApiError(404, f"Unknown request URL: {request.method} {request.path}.")

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._counters[prefix])}"

    # --- files ---

    def _upload(self, request: Request) -> dict:
        fields = _parse_multipart(request.headers.get("Content-Type", ""), request.body)
        if "file" not in fields or "purpose" not in fields:
            raise ApiError(400, "Missing required parameter: 'file' and 'purpose' are both required.")
        filename, data = fields["file"]
        purpose = fields["purpose"][1].decode()
        record = self._store_file(filename or "upload.jsonl", purpose, data)
        self.uploads.append((record["filename"], purpose, _parse_jsonl(data)))
        return _public(record, FILE_FIELDS)

    def _store_file(self, filename: str, purpose: str, data: bytes) -> dict:
        record = {"id": self._new_id("file-"), "object": "file", "bytes": len(data), "created_at": int(time.time()),
                  "filename": filename, "purpose": purpose, "status": "processed", "data": data}
        self.files[record["id"]] = record
        return record

    def _file(self, file_id: str) -> dict:
        if file_id not in self.files:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return self.files[file_id]

    def _retrieve_file(self, request: Request) -> dict:
        return _public(self._file(request.params["file_id"]), FILE_FIELDS)

    def _file_content(self, request: Request) -> bytes:
        return self._file(request.params["file_id"])["data"]

    def _delete_file(self, request: Request) -> dict:
        record = self.files.pop(self._file(request.params["file_id"])["id"])
        return {"id": record["id"], "object": "file", "deleted": True}

    # --- batches ---

    def _create_batch(self, request: Request) -> dict:
        params = request.json()
        source = self._file(params.get("input_file_id", ""))
        if source["purpose"] != "batch":
            raise ApiError(400, f"File {source['id']} has purpose {source['purpose']!r}, not 'batch'.",
                           param="input_file_id")
        if params.get("endpoint") not in ENDPOINTS:
            raise ApiError(400, f"Unsupported endpoint {params.get('endpoint')!r}; use one of {ENDPOINTS}.",
                           param="endpoint")
        if params.get("completion_window") != "24h":
            raise ApiError(400, "completion_window must be '24h'.", param="completion_window")
        lines = _parse_jsonl(source["data"])
        now = int(time.time())
        batch = {field: None for field in BATCH_FIELDS}
        batch.update(id=self._new_id("batch_"), object="batch", endpoint=params["endpoint"],
                     input_file_id=source["id"], completion_window="24h", status="validating", created_at=now,
                     expires_at=now + 24 * 3600, metadata=params.get("metadata"),
                     request_counts={"total": len(lines), "completed": 0, "failed": 0},
                     lines=lines, outcome=self.outcomes.pop(0) if self.outcomes else "completed",
                     started=time.monotonic())
        self.batches[batch["id"]] = batch
        return _public(batch, BATCH_FIELDS)

    def _batch(self, batch_id: str) -> dict:
        if batch_id not in self.batches:
            raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return self.batches[batch_id]

    def _list_batches(self, request: Request) -> dict:
        """Every batch, newest first, in one page (`batches.list`: how a client finds a batch it
        created but did not record, by its metadata)."""
        data = [_public(batch, BATCH_FIELDS) for batch in reversed(self.batches.values())]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": False}

    def _retrieve_batch(self, request: Request) -> dict:
        self.retrieves += 1
        batch = self._batch(request.params["batch_id"])
        self._advance(batch)
        return _public(batch, BATCH_FIELDS)

    def _cancel_batch(self, request: Request) -> dict:
        batch = self._batch(request.params["batch_id"])
        if batch["status"] in ("validating", "in_progress"):
            batch.update(status="cancelling", cancelling_at=int(time.time()))
        elif batch["status"] not in ("cancelling", "cancelled"):
            raise ApiError(409, f"Cannot cancel a batch with status '{batch['status']}'.")
        return _public(batch, BATCH_FIELDS)

    def _advance(self, batch: dict) -> None:
        """Move a batch on, as time has passed since the last retrieve (see the module docstring)."""
        now = int(time.time())
        if batch["status"] == "cancelling":
            batch.update(status="cancelled", cancelled_at=now)
        if batch["status"] == "validating":
            problems = _input_problems(batch["lines"], batch["endpoint"])
            if problems:
                batch.update(status="failed", failed_at=now, errors={"object": "list", "data": problems})
                return
            batch.update(status="in_progress", in_progress_at=now)
        if batch["status"] == "in_progress" and time.monotonic() - batch["started"] >= self.finish_after:
            self._finish(batch, now)

    def _finish(self, batch: dict, now: int) -> None:
        """Finish an in-progress batch by its outcome, writing its output and error files."""
        outcome = batch["outcome"]
        if outcome == "failed":
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": [dict(INJECTED_FAILURE)]})
            return
        if outcome == "cancelled":
            batch.update(status="cancelled", cancelling_at=now, cancelled_at=now)
            return
        lines = batch["lines"]
        answer = len(lines) if outcome == "completed" else int(outcome.split(":")[1])
        output, errors = [], []
        for line in lines[:answer]:
            result = self._run_line(line)
            (errors if result["response"]["status_code"] != 200 else output).append(result)
        errors += [{"id": self._new_id("batch_req_"), "custom_id": line["custom_id"], "response": None,
                    "error": dict(EXPIRED_ERROR)} for line in lines[answer:]]
        status = "completed" if outcome == "completed" else "expired"
        batch.update(status=status, finalizing_at=now, **{f"{status}_at": now},
                     output_file_id=self._result_file(batch["id"], "output", output),
                     error_file_id=self._result_file(batch["id"], "error", errors),
                     request_counts={"total": len(lines), "completed": len(output), "failed": len(errors)})

    def _run_line(self, line: dict) -> dict:
        """One output-file line: the completion for a batch line, or the error `fail` injects."""
        custom_id, body = line["custom_id"], line["body"]
        failure = self.fail(custom_id, body) if self.fail else None
        if failure:
            status, message = failure
            response_body = ApiError(status, message).payload()
        else:
            status, response_body = 200, self.completion(line["url"], body)
            self.answered += 1
        response = {"status_code": status, "request_id": self._new_id("req_"), "body": response_body}
        return {"id": self._new_id("batch_req_"), "custom_id": custom_id, "response": response, "error": None}

    def _result_file(self, batch_id: str, kind: str, lines: list[dict]) -> str | None:
        """Store a batch's output or error file; None when it would be empty, as the API leaves it."""
        if not lines:
            return None
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        return self._store_file(f"{batch_id}_{kind}.jsonl", "batch_output", data)["id"]

    # --- completions ---

    def completion(self, endpoint: str, body: dict) -> dict:
        """A full completion object for one request body: "text_completion", or "chat.completion"
        when `endpoint` ends in /chat/completions."""
        chat = endpoint.endswith("/chat/completions")
        text, finish = self._reply(body)
        choice = {"index": 0, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        prompt_tokens, completion_tokens = len(_prompt_text(body, chat).split()), len(text.split())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": self.cached_tokens(body)}}
        return {"id": self._new_id("chatcmpl-" if chat else "cmpl-"),
                "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
                "model": body.get("model", MODEL_ID), "choices": [choice], "usage": usage}

    def _reply(self, body: dict) -> tuple[str, str]:
        """The responder's text and its finish reason, cut at max_tokens words if asked."""
        text = self.responder(body)
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        words = text.split()
        if self.cut_at_max_tokens and limit is not None and len(words) > limit:
            return " ".join(words[:limit]), "length"
        return text, "stop"

    def _live_completion(self, request: Request) -> dict:
        self.live_calls += 1
        return self.completion(request.path, request.json())

    def _models(self, request: Request) -> dict:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "test"}]}


_ROUTES = [(method, re.compile(pattern), route) for method, pattern, route in [
    ("POST", r"/v1/files", OpenAIBatchServer._upload),
    ("GET", r"/v1/files/(?P<file_id>[^/]+)", OpenAIBatchServer._retrieve_file),
    ("DELETE", r"/v1/files/(?P<file_id>[^/]+)", OpenAIBatchServer._delete_file),
    ("GET", r"/v1/files/(?P<file_id>[^/]+)/content", OpenAIBatchServer._file_content),
    ("POST", r"/v1/batches", OpenAIBatchServer._create_batch),
    ("GET", r"/v1/batches", OpenAIBatchServer._list_batches),
    ("GET", r"/v1/batches/(?P<batch_id>[^/]+)", OpenAIBatchServer._retrieve_batch),
    ("POST", r"/v1/batches/(?P<batch_id>[^/]+)/cancel", OpenAIBatchServer._cancel_batch),
    ("POST", r"/v1/(?:chat/)?completions", OpenAIBatchServer._live_completion),
    ("GET", r"/v1/models", OpenAIBatchServer._models),
]]


def _check_outcome(outcome: str) -> str:
    """Refuse a misspelt outcome when the server is built, not when a batch finishes."""
    if outcome in ("completed", "cancelled", "failed") or re.fullmatch(r"expired:\d+", outcome):
        return outcome
    raise ValueError(f"unknown batch outcome {outcome!r}: use completed, expired:K, cancelled or failed")


def _public(record: dict, fields: tuple[str, ...]) -> dict:
    """The API object of a record (records also hold bytes, lines and bookkeeping)."""
    return {key: record[key] for key in fields}


def _parse_jsonl(data: bytes) -> list:
    """The lines of a JSONL file, parsed; a line that is not JSON is kept as its text."""
    lines = []
    for text in data.decode("utf-8", errors="replace").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            lines.append(text)
    return lines


def _input_problems(lines: list, endpoint: str) -> list[dict]:
    """The validation errors of a batch's input lines (1-based), as `errors.data` lists them."""
    if not lines:
        return [{"code": "empty_file", "message": "The input file has no requests.", "line": None, "param": None}]
    seen: set = set()
    problems = []
    for number, line in enumerate(lines, 1):
        problem = _line_problem(line, endpoint, seen)
        if problem:
            code, message, param = problem
            problems.append({"code": code, "message": message, "line": number, "param": param})
    return problems


def _line_problem(line, endpoint: str, seen: set) -> tuple[str, str, str | None] | None:
    """What is wrong with one input line, as (code, message, param), or None."""
    if not isinstance(line, dict):
        return "invalid_json_line", "This line is not parseable as a JSON object.", None
    for key in ("custom_id", "method", "url", "body"):
        if key not in line:
            return "missing_required_parameter", f"Missing required parameter: '{key}'.", key
    if line["method"] != "POST":
        return "invalid_method", f"Only POST is supported, not {line['method']!r}.", "method"
    if line["url"] != endpoint:
        return "mismatched_endpoint", f"The url {line['url']!r} is not the batch's endpoint {endpoint!r}.", "url"
    if not isinstance(line["body"], dict):
        return "invalid_body", "The body must be a JSON object.", "body"
    if line["custom_id"] in seen:
        return "duplicate_custom_id", f"The custom_id {line['custom_id']!r} is used twice.", "custom_id"
    seen.add(line["custom_id"])
    return None


def _prompt_text(body: dict, chat: bool) -> str:
    """The text whose words count as prompt tokens: the prompt, or every message's content."""
    if not chat:
        prompt = body.get("prompt", "")
        return " ".join(prompt) if isinstance(prompt, list) else str(prompt)
    parts = []
    for message in body.get("messages", []):
        content = message.get("content") or ""
        if isinstance(content, list):  # content parts: count the text ones
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        parts.append(content)
    return " ".join(parts)


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body, name -> (filename or None, bytes), read with the
    stdlib email parser (the `cgi` module is gone from Python 3.13)."""
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, f"Expected a multipart/form-data upload, got {content_type or 'no Content-Type'}.")
    head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ApiError(400, "The multipart/form-data body could not be parsed.")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, lets the server's `OpenAIBatchServer` answer it, and writes the answer."""

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self) -> None:
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        try:
            request = Request(self.command, path, self.headers, self._read_body())
            answer = self.server.fake.handle(request)
        except ApiError as exc:
            return self._send(exc.status, json.dumps(exc.payload()).encode())
        except Exception as exc:  # noqa: BLE001 -- a bug in a responder or here: answer it, so the test sees it
            return self._send(500, json.dumps(ApiError(500, f"fake server error: {exc!r}").payload()).encode())
        if isinstance(answer, bytes):
            return self._send(200, answer, "application/octet-stream")
        self._send(200, json.dumps(answer).encode())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(chunks)

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    fake: OpenAIBatchServer

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # a client that hung up: nothing to report
            super().handle_error(request, client_address)

"""Any server that speaks the OpenAI API (hosted models, vLLM, llama.cpp server) as an LM.

- Raw prompts go to /v1/completions, messages to /v1/chat/completions (the server applies its
  chat template).
- Sample k of a sampled request is its own call with seed `seed * 1_000_003 + k`, so servers
  that honour seeds (vLLM does) make it reproducible and the cache can store samples one by one.
  A greedy request is one call whatever its `n`.
- Calls run concurrently (`max_concurrency`). Timeouts, connection errors, 429, 5xx and any body
  that is not a completion (bad JSON, an HTML page, no choices) are retried with exponential
  backoff and jitter, never sooner than the server's `Retry-After`, and every one is counted in
  `faults`, which the report shows. A call that still fails after `max_retries` raises
  `BackendError` naming the server and the last error; its finished siblings are not lost,
  because the cache stores completions chunk by chunk.
- A request refused for good (a 4xx other than 429, e.g. context length exceeded) is not retried:
  it comes back as a completion with `error` (the server's message), is not cached, and the
  program's trace records it as a failed sample; the stage goes on, and the run fails only when
  failed samples pass the recipe's `max_failures` share (`methods/runner.py`).
- The API key is read from the environment variable `api_key_env` when the first call is made.
  It never enters the LM's name (the cache key and the report use the URL and model only) nor
  any artifact.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from s2distill.errors import BackendError
from s2distill.lm.base import gather_samples, sample_rows
from s2distill.types import Completion, Request, Usage


class OpenAICompatibleLM:
    """Completions from an OpenAI-compatible server."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 0.5,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.name = f"openai:{self.base_url}:{model}"
        self.faults: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._client = None

    def _get_client(self):
        if self._client is None:
            from openai import OpenAI

            # Local servers need no key; the client insists on one, so a placeholder stands in.
            key = os.environ.get(self.api_key_env) or "no-key"
            self._client = OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=0)
        return self._client

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        jobs = sample_rows(requests)
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency, len(jobs)))) as pool:
            done = dict(zip(jobs, pool.map(lambda job: self._one(requests[job[0]], job[1]), jobs)))
        return gather_samples(requests, done)

    def _one(self, request: Request, sample: int) -> Completion:
        """One completion, retried on transient faults; a refusal for good comes back as a
        completion with `error` set (the stage goes on; the runner counts it against `max_failures`)."""
        from openai import APIConnectionError, APIStatusError, APITimeoutError

        last_error = "no attempt"
        for attempt in range(self.max_retries + 1):
            server_wait = None
            try:
                response = self._call(request, sample)
                return self._parse(response, sample)
            except APITimeoutError as exc:
                kind, last_error = "timeout", str(exc)
            except APIConnectionError as exc:
                kind, last_error = "connection", str(exc)
            except APIStatusError as exc:
                status = exc.status_code
                if 400 <= status < 500 and status != 429:
                    return Completion("", Usage(0, 0), "stop", sample, error=f"refused ({status}): {server_message(exc)}")
                kind, last_error = str(status), server_message(exc)
                server_wait = retry_after(exc.response.headers)
            except Exception as exc:  # noqa: BLE001 - any body that is not a completion (HTML, empty choices, bad JSON)
                kind, last_error = "malformed", f"{type(exc).__name__}: {exc}"[:300]
            with self._lock:
                self.faults[kind] += 1
            if attempt < self.max_retries:
                delay = self.backoff * (2**attempt) * (0.5 + random.random())
                if server_wait is not None:  # the server said when: never sooner
                    delay = max(delay, min(server_wait, MAX_RETRY_AFTER))
                time.sleep(delay)
        raise BackendError(f"{self.base_url} failed after {self.max_retries + 1} attempts: {last_error}")

    def _call(self, request: Request, sample: int):
        client = self._get_client()
        settings = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.settings()["temperature"],
            "top_p": request.settings()["top_p"],
            **({"stop": list(request.stop)} if request.stop else {}),
            **({} if request.greedy else {"seed": request.sample_seed(sample, bits=31)}),
        }
        if request.prompt is not None:
            return client.completions.create(prompt=request.prompt, **settings)
        messages = [{"role": role, "content": content} for role, content in request.messages or ()]
        return client.chat.completions.create(messages=messages, **settings)

    @staticmethod
    def _parse(response, sample: int) -> Completion:
        """The completion in a reply; raises (counted as malformed) for anything else."""
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise TypeError(f"not a completion: {str(response)[:120]!r}")
        choice = choices[0]
        text = choice.text if hasattr(choice, "text") else getattr(getattr(choice, "message", None), "content", None)
        if not isinstance(text, str):
            raise TypeError(f"no text in the response: {choice!r:.200}")
        usage = getattr(response, "usage", None)
        tokens = Usage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)) if usage else Usage(0, 0)
        finish = "length" if getattr(choice, "finish_reason", None) == "length" else "stop"
        return Completion(text, tokens, finish, sample)


MAX_RETRY_AFTER = 300.0  # seconds: a longer Retry-After is waited only this long before trying again


def retry_after(headers) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, or `Retry-After` in seconds or as
    an HTTP date), or None."""
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def server_message(exc) -> str:
    """The server's own words for an error reply, else the client's summary."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if isinstance(inner.get("message"), str):
            return inner["message"][:300]
    return str(getattr(exc, "message", exc))[:300]

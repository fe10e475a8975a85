"""Any server that speaks the OpenAI API (hosted models, vLLM, llama.cpp server) as an LM.

- Raw prompts go to /v1/completions, messages to /v1/chat/completions (the server applies its
  chat template).
- Sample k of a sampled request is its own call with seed `seed * 1_000_003 + k`, so servers
  that honour seeds (vLLM does) make it reproducible and the cache can store samples one by one.
  A greedy request is one call whatever its `n`.
- Calls run concurrently (`max_concurrency`). Timeouts, connection errors, 429, 5xx and malformed
  bodies are retried with exponential backoff and jitter, and every one is counted in `faults`,
  which the report shows. A call that still fails after `max_retries` raises `BackendError`
  naming the server and the last error; its finished siblings are not lost, because the cache
  stores completions chunk by chunk.
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

from s2distill.lm.base import gather_samples, sample_rows
from s2distill.types import Completion, Request, Usage


class BackendError(RuntimeError):
    """A model server could not be used: unreachable, or failing after every retry."""


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
        """One completion, retried on transient faults."""
        from openai import APIConnectionError, APIResponseValidationError, APIStatusError, APITimeoutError

        last_error = "no attempt"
        for attempt in range(self.max_retries + 1):
            try:
                return self._call(request, sample)
            except APITimeoutError as exc:
                kind, last_error = "timeout", str(exc)
            except APIConnectionError as exc:
                kind, last_error = "connection", str(exc)
            except APIStatusError as exc:
                if exc.status_code != 429 and exc.status_code < 500:
                    raise BackendError(f"{self.base_url} refused the request ({exc.status_code}): {exc.message}") from exc
                kind, last_error = str(exc.status_code), exc.message
            except (APIResponseValidationError, ValueError, KeyError, IndexError, TypeError) as exc:
                kind, last_error = "malformed", f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.faults[kind] += 1
            if attempt < self.max_retries:
                time.sleep(self.backoff * (2**attempt) * (0.5 + random.random()))
        raise BackendError(f"{self.base_url} failed after {self.max_retries + 1} attempts: {last_error}")

    def _call(self, request: Request, sample: int) -> Completion:
        client = self._get_client()
        settings = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": 0.0 if request.greedy else request.temperature,
            "top_p": 1.0 if request.greedy else request.top_p,
            **({"stop": list(request.stop)} if request.stop else {}),
            **({} if request.greedy else {"seed": (request.seed * 1_000_003 + sample) % (2**31)}),
        }
        if request.prompt is not None:
            response = client.completions.create(prompt=request.prompt, **settings)
            choice = response.choices[0]
            text = choice.text
        else:
            messages = [{"role": role, "content": content} for role, content in request.messages or ()]
            response = client.chat.completions.create(messages=messages, **settings)
            choice = response.choices[0]
            text = choice.message.content
        if not isinstance(text, str):
            raise ValueError(f"no text in the response: {choice!r:.200}")
        usage = response.usage
        tokens = Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(0, 0)
        finish = "length" if choice.finish_reason == "length" else "stop"
        return Completion(text, tokens, finish, sample)

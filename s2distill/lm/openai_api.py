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
- A request refused for good (a 4xx other than 429, e.g. context length exceeded) is not retried
  on the server that refused it. With replicas it goes at once to one that has not refused it:
  only a request every replica refuses is a refusal (a replica that refuses what another answers,
  e.g. one with a wrong key or without the model, counts a fault of kind "refused", is set aside
  like a failing one, and cannot stop the run while a healthy replica exists). A refusal comes
  back as a completion with `error` (the server's message, naming the replicas that refused when
  there are several), is not cached, and the program's trace records it as a failed sample; the
  stage goes on, and the run fails only when failed samples pass the recipe's `max_failures` share
  (`methods/runner.py`). `replica_stats` counts each replica's refusals and keeps the last one.
- The API key is read from the environment variable `api_key_env` when the first call is made.
  It never enters the LM's name (the cache key and the report use the URL and model only) nor
  any artifact: every server message kept (a refusal's `error`, a fault's `last_error`, a
  `BackendError`'s text) has the key and any `Bearer`/`Basic` credential replaced by
  `[redacted]` first (`redact`), so a server that quotes the request's `Authorization` header in
  its refusal leaves no key in samples, report.json or report.html.
- `base_urls` lists replicas of one model instead of one `base_url` (s2distill/lm/replicas.py):
  each call goes to the least loaded replica (`max_concurrency` counts the calls in flight on all of
  them). A failed call moves at once to a replica it has not tried; only when it has tried every
  ready one does it back off as above (`max_retries` counts these rounds, so a call gets at least
  the time one server would). A replica failing again and again is set aside for
  `replica_cooldown` seconds, then probed (after `GET /models` when `health_check`; a failed health
  check counts in `faults` as `health`). When every replica is set aside a call waits for the
  first cooldown to end. The LM is then named by its model alone, `openai:{model}`: which server
  answered, and how many there were, does not change a completion (sample k has its seed), so
  adding or losing a replica keeps the cache. One `base_url` keeps the name
  `openai:{base_url}:{model}` it always had. `replica_stats` counts each replica's calls,
  successes, faults and times set aside.
- Once one call of a batch has failed for good (`BackendError`), the batch's other calls stop at
  their next attempt instead of spending their own retries.
- `requests_per_minute` and `tokens_per_minute` (a hosted API's limits) space the calls of all
  replicas together; a call's tokens are estimated before it (prompt characters / 4 + max_tokens)
  and corrected with the usage the server reports.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from s2distill.errors import BackendError
from s2distill.lm.base import gather_samples, sample_rows
from s2distill.lm.replicas import Abandoned, RateLimits, Replica, ReplicaPool, estimate_tokens
from s2distill.types import Completion, Request, Usage


class OpenAICompatibleLM:
    """Completions from an OpenAI-compatible server."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        base_urls: Sequence[str] | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        replica_cooldown: float = 30.0,
        health_check: bool = True,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ):
        if (base_url is None) == (base_urls is None):
            raise ValueError("give exactly one of base_url (one server) or base_urls (replicas of one model)")
        urls = [u.rstrip("/") for u in ([base_url] if base_url is not None else base_urls)]
        if not urls or len(set(urls)) != len(urls):
            raise ValueError(f"base_urls must list each server once, got {list(base_urls or [])}")
        self.base_url = urls[0]
        self.base_urls = urls
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.health_check = health_check
        # Replicas serve one model: the cache key names the model, not the servers (see the module doc).
        self.name = f"openai:{self.base_url}:{model}" if base_url is not None else f"openai:{model}"
        self.faults: Counter[str] = Counter()
        self.pool = ReplicaPool(urls, cooldown=replica_cooldown, redact=self.redact)
        self.limits = RateLimits(requests_per_minute, tokens_per_minute)
        self._lock = threading.Lock()
        self._clients: dict[str, object] = {}

    @property
    def replica_stats(self) -> dict[str, dict]:
        """Per server: calls, successes, faults by kind, times set aside, whether it is set aside now."""
        return self.pool.stats()

    def redact(self, text: str) -> str:
        """`text` without this LM's API key nor any `Bearer`/`Basic` credential (see `redact`)."""
        keys = {os.environ.get(self.api_key_env) or ""}
        with self._lock:
            keys.update(getattr(client, "api_key", "") or "" for client in self._clients.values())
        return redact(text, keys)

    def _get_client(self, url: str | None = None):
        url = url or self.base_url
        with self._lock:
            if url not in self._clients:
                from openai import OpenAI

                # Local servers need no key; the client insists on one, so a placeholder stands in.
                key = os.environ.get(self.api_key_env) or "no-key"
                self._clients[url] = OpenAI(base_url=url, api_key=key, timeout=self.timeout, max_retries=0)
            return self._clients[url]

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        jobs = sample_rows(requests)
        stop = threading.Event()  # set by the first call that fails for good: the others stop waiting

        def run(job):
            try:
                return self._one(requests[job[0]], job[1], stop)
            except BaseException:
                stop.set()
                raise

        with ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency, len(jobs)))) as pool:
            futures = [pool.submit(run, job) for job in jobs]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, Abandoned)), errors[0])
        return gather_samples(requests, {job: f.result() for job, f in zip(jobs, futures)})

    def _one(self, request: Request, sample: int, stop: threading.Event | None = None) -> Completion:
        """One completion, retried on transient faults; a refusal for good comes back as a
        completion with `error` set (the stage goes on; the runner counts it against `max_failures`).

        Tries go in rounds: a failed try moves at once to a ready replica this round has not tried;
        when none is left the round ends, and the next one starts after the backoff (never sooner
        than a `Retry-After`). `max_retries` counts rounds, so one server retries as it always did
        and replicas give a call at least the same time to get through. A replica that refuses the
        request is not asked again; the request moves at once to one that has not refused it, and
        is a refusal only when every replica refused it (or, after every round, the ones that
        did not refuse it never answered)."""
        last_error, attempts, delay = "no attempt", 0, 0.0
        estimate = estimate_tokens(prompt_chars(request), request.max_tokens)
        refusals: dict[Replica, tuple[int, str]] = {}  # replica -> (status, its words), for this request
        replicas = len(self.pool.replicas)
        for round_ in range(self.max_retries + 1):
            if stop is None:  # the backoff after the previous round
                time.sleep(delay)
            elif stop.wait(delay):
                raise Abandoned
            tried: set = set()
            server_wait = None
            while len(refusals) < replicas:
                self.limits.before(estimate, stop)
                replica, probe = self.pool.acquire(tried, stop, exclude=refusals)
                attempts += 1
                completion, kind, error, wait = self._attempt(request, sample, replica, probe, estimate)
                if kind == "refused":  # for good, by this replica (`wait` is the status): on to one that has not
                    refusals[replica] = (wait, error)
                    if tried and not self.pool.has_ready_besides(tried | set(refusals)):
                        break  # the others failed this round: back off first
                    continue
                if completion is not None:
                    if refusals:  # another replica answered what these refused: their fault
                        self.pool.refusals({r: f"({status}) {words}" for r, (status, words) in refusals.items()},
                                           answered_elsewhere=True)
                        with self._lock:
                            self.faults["refused"] += len(refusals)
                    return completion
                last_error = error
                server_wait = wait if wait is not None else server_wait
                with self._lock:
                    self.faults[kind] += 1
                tried.add(replica)
                if not self.pool.has_ready_besides(tried | set(refusals)):
                    break
            if len(refusals) == replicas:
                break
            delay = self.backoff * (2**round_) * (0.5 + random.random())
            if server_wait is not None:  # the server said when: never sooner
                delay = max(delay, min(server_wait, MAX_RETRY_AFTER))
        if refusals:
            self.pool.refusals({r: f"({status}) {words}" for r, (status, words) in refusals.items()},
                               answered_elsewhere=False)
            return Completion("", Usage(0, 0), "stop", sample, error=self._refusal(refusals, last_error))
        if len(self.base_urls) == 1:
            raise BackendError(self.redact(f"{self.base_url} failed after {attempts} attempts: {last_error}"))
        raise BackendError(self.redact(f"every replica of {self.model} failed: a call failed after {attempts} "
                                       f"attempts in {self.max_retries + 1} rounds; replicas: {self.pool.describe_all()}"))

    def _refusal(self, refusals: dict, last_error: str) -> str:
        """A refused request's `error`: the server's words, and which replicas refused it when
        there are several (and what the others said, when they never answered)."""
        if len(self.pool.replicas) == 1:
            [(status, words)] = refusals.values()
            return self.redact(f"refused ({status}): {words}")
        said = {answer for answer in refusals.values()}
        urls = ", ".join(r.url for r in refusals)
        if len(said) == 1:
            [(status, words)] = said
            text = f"refused ({status}) by {urls}: {words}"
        else:
            text = "refused by " + "; ".join(f"{r.url} ({status}): {words}" for r, (status, words) in refusals.items())
        silent = [r.url for r in self.pool.replicas if r not in refusals]
        if silent:
            text += f"; no answer from {', '.join(silent)} (last error: {last_error})"
        return self.redact(text)

    def _attempt(self, request: Request, sample: int, replica, probe: bool, estimate: int):
        """One try on `replica`: (completion, None, None, None); (None, "refused", the server's
        words, HTTP status) when it refused the request for good; or (None, fault kind, error,
        seconds the server asked to wait) after a transient failure, which is counted against it.
        Every text is redacted (`redact`), then cut to 300 characters."""
        from openai import APIConnectionError, APIStatusError, APITimeoutError

        if probe and self.health_check:
            problem = self._health_problem(replica.url)
            if problem is not None:  # still down after its cooldown: no request
                self.pool.release(replica, probe=True, fault="health", error=problem, health=True)
                return None, "health", f"health check: {problem}", None
        server_wait = None
        try:
            response = self._call(request, sample, replica.url)
            completion = self._parse(response, sample)
        except APITimeoutError as exc:
            kind, error = "timeout", str(exc)
        except APIConnectionError as exc:
            kind, error = "connection", str(exc)
        except APIStatusError as exc:
            status = exc.status_code
            if 400 <= status < 500 and status != 429:
                words = self.redact(server_message(exc))[:300]
                self.pool.release(replica, probe=probe, refused=f"({status}) {words}")  # it answered: not a fault yet
                return None, "refused", words, status
            kind, error = str(status), server_message(exc)
            server_wait = retry_after(exc.response.headers)
        except Exception as exc:  # noqa: BLE001 - any body that is not a completion (HTML, empty choices, bad JSON)
            kind, error = "malformed", f"{type(exc).__name__}: {exc}"
        else:
            self.pool.release(replica, probe=probe)
            self.limits.after(estimate, completion.usage.prompt_tokens + completion.usage.completion_tokens)
            return completion, None, None, None
        error = self.redact(error)[:300]
        self.pool.release(replica, probe=probe, fault=kind, error=error)
        return None, kind, error, server_wait

    def _health_problem(self, url: str) -> str | None:
        """Why the server at `url` looks down (GET /models), or None. A server without that route
        (404, 405, 501) is up: it answered."""
        from openai import APIConnectionError, APIStatusError, APITimeoutError

        try:
            self._get_client(url).with_options(timeout=min(self.timeout, 10.0)).models.list()
        except (APIConnectionError, APITimeoutError) as exc:
            return self.redact(str(exc))[:300]
        except APIStatusError as exc:
            if exc.status_code >= 500 and exc.status_code != 501:
                return self.redact(f"{exc.status_code}: {server_message(exc)}")[:300]
        except Exception:  # noqa: BLE001 - a reply that is not a model list still comes from a live server
            return None
        return None

    def request_body(self, request: Request, sample: int) -> tuple[str, dict]:
        """(endpoint, body) of sample `sample` of `request`: what a live call sends, and what a
        batch line carries (lm/batch.py)."""
        settings = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.settings()["temperature"],
            "top_p": request.settings()["top_p"],
            **({"stop": list(request.stop)} if request.stop else {}),
            **({} if request.greedy else {"seed": request.sample_seed(sample, bits=31)}),
        }
        if request.prompt is not None:
            return COMPLETIONS, {"prompt": request.prompt, **settings, **({"logprobs": 1} if request.logprobs else {})}
        messages = [{"role": role, "content": content} for role, content in request.messages or ()]
        return CHAT, {"messages": messages, **settings, **({"logprobs": True} if request.logprobs else {})}

    def _call(self, request: Request, sample: int, url: str | None = None):
        client = self._get_client(url)
        endpoint, body = self.request_body(request, sample)
        if endpoint == COMPLETIONS:
            return client.completions.create(**body)
        return client.chat.completions.create(**body)

    def parse_body(self, body: dict) -> Completion:
        """A completion from a reply's JSON body (a batch output line's), read as `_parse` reads a
        live reply: through attributes, so any server's body parses, strict to the API or not."""
        response = json.loads(json.dumps(body), object_hook=lambda fields: SimpleNamespace(**fields))
        return self._parse(response, 0)

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
        cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None) or 0  # the prompt cache's
        tokens = Usage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0), int(cached)) if usage else Usage(0, 0)
        finish = "length" if getattr(choice, "finish_reason", None) == "length" else "stop"
        return Completion(text, tokens, finish, sample, logprob=_summed_logprob(choice))


COMPLETIONS, CHAT = "/v1/completions", "/v1/chat/completions"  # a raw prompt's endpoint, and messages'
REDACTED = "[redacted]"
_TOKEN = r"[A-Za-z0-9._~+/=:-]"
# "Authorization: <anything>" as a header is quoted, and a Bearer/Basic credential anywhere (one
# with a digit or a symbol in it, 8 characters or more: not "the bearer of bad news").
_AUTHORIZATION = re.compile(r"""(?i)(authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic)\s+)?)[^\s"',;}]+""")
_CREDENTIAL = re.compile(rf"(?i)\b(bearer|basic)(\s+|%20|\+)(?=[A-Za-z]*[0-9._~+/=:-]){_TOKEN}{{8,}}")


def redact(text: str, secrets=()) -> str:
    """`text` with every one of `secrets` (API keys; six characters or longer, so a placeholder
    or an empty value replaces nothing), what follows an `Authorization:` it quotes, and every
    `Bearer`/`Basic` credential replaced by `[redacted]`: what a server quoted from the request's
    header stays out of every message kept."""
    for secret in sorted({s for s in secrets if s and len(s) >= 6 and s != "no-key"}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def _summed_logprob(choice) -> float | None:
    """The completion's log-probability from a choice's `logprobs`, when the server sent them:
    /completions' `token_logprobs`, or /chat/completions' `content[].logprob`."""
    logprobs = getattr(choice, "logprobs", None)
    if logprobs is None:
        return None
    values = getattr(logprobs, "token_logprobs", None)
    if values is None:
        values = [getattr(item, "logprob", None) for item in getattr(logprobs, "content", None) or []]
    values = [v for v in values if isinstance(v, int | float)]
    return float(sum(values)) if values else None


def prompt_chars(request: Request) -> int:
    """The characters a request sends: its prompt, or its messages' contents."""
    if request.prompt is not None:
        return len(request.prompt)
    return sum(len(content) for _, content in request.messages or ())


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
    """The server's own words for an error reply, else the client's summary: up to 1,200
    characters, for the caller to redact (`redact`) and then cut, so that no key is cut in two
    and left half visible."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if isinstance(inner.get("message"), str):
            return inner["message"][:1200]
    return str(getattr(exc, "message", exc))[:1200]

"""Several servers of one model (replicas): which one takes the next request, which are set aside
for failing, and the request and token budgets of hosted APIs. Used by `OpenAICompatibleLM`.

- Each request goes to the replica with the fewest requests in flight; ties go round robin.
- A transient failure (timeout, connection error, 429, 5xx, a body that is not a completion)
  counts against its replica. After `FAILURES_TO_SET_ASIDE` failures in a row, or one failed
  probe, the replica is set aside for `cooldown` seconds. The failed call moves at once to a ready
  replica it has not tried yet; when it has tried them all, it backs off (the caller's rounds). When the cooldown has passed, the next call probes the replica (after a health check,
  `GET {base_url}/models`, when the LM does one): a success brings it back, a failure sets it
  aside again. Only when every replica is set aside does a call wait, until the first cooldown
  ends. A pool of one replica never sets it aside: there is nowhere else to go, and the caller's
  backoff applies as with any single server.
- A request a replica refuses for good (a 4xx other than 429) goes to a replica that has not
  refused it (`acquire(exclude=...)`); the caller tells the pool how it ended (`refusals`): when
  another replica answered it, each refusal counts against its replica as a fault of kind
  "refused" (and sets it aside like any other, e.g. one replica with a wrong key or without the
  model); when every replica refused it, the request was at fault and the replicas are not.
  `stats()` counts each replica's refusals and keeps the last one's words (`last_refusal`).
- Every error text kept (`last_error`, `last_refusal`) goes through the pool's `redact` first, so a
  server that quotes the request's `Authorization` header leaves no key in any report.
- `RateLimits` spaces requests and tokens to a per-minute budget shared by all replicas (a
  hosted API's limits are per account, not per server), at most one second's worth at once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

FAILURES_TO_SET_ASIDE = 3  # transient failures in a row that set a replica aside
POLL = 0.2  # seconds between looks at the abandon flag while waiting


class Abandoned(Exception):
    """Another call of the same batch failed for good: this one stops instead of waiting."""


@dataclass(eq=False)  # compared and hashed by identity
class Replica:
    url: str
    index: int
    in_flight: int = 0
    calls: int = 0  # requests finished, whatever their outcome
    ok: int = 0
    faults: Counter = field(default_factory=Counter)  # kind -> count, health checks included
    failures_in_a_row: int = 0
    down_until: float | None = None  # set aside until this clock time; None: in service
    probing: bool = False  # a call is trying it after its cooldown
    set_aside: int = 0  # times it was set aside
    last_error: str | None = None
    refused: int = 0  # requests it refused for good (a 4xx other than 429), whatever happened next
    last_refusal: str | None = None


class ReplicaPool:
    """Thread-safe choice of a replica per request, with their health."""

    def __init__(self, urls: list[str], *, cooldown: float = 30.0, failures_to_set_aside: int = FAILURES_TO_SET_ASIDE,
                 clock: Callable[[], float] = time.monotonic, redact: Callable[[str], str] = lambda text: text):
        if not urls:
            raise ValueError("a replica pool needs at least one server")
        self.replicas = [Replica(url, i) for i, url in enumerate(urls)]
        self.redact = redact
        self.cooldown = cooldown
        self.failures_to_set_aside = failures_to_set_aside
        self._clock = clock
        self._cond = threading.Condition()
        self._next = 0  # where the round robin among equally loaded replicas starts

    def _ready(self, replica: Replica, now: float) -> bool:
        """In service, or past its cooldown with no probe under way."""
        return replica.down_until is None or (now >= replica.down_until and not replica.probing)

    def acquire(self, avoid=(), stop: threading.Event | None = None, exclude=()) -> tuple[Replica, bool]:
        """A replica for one request, and whether the request probes it after a cooldown. Replicas
        in `avoid` (those the call just failed on) are taken only when no other is ready; those in
        `exclude` (those that refused the request) never. Waits while every other replica is set
        aside; raises `Abandoned` once `stop` is set, ValueError when `exclude` leaves none."""
        with self._cond:
            candidates = [r for r in self.replicas if r not in exclude]
            if not candidates:
                raise ValueError("every replica is excluded")
            while True:
                if stop is not None and stop.is_set():
                    raise Abandoned
                now = self._clock()
                ready = [r for r in candidates if self._ready(r, now)]
                ready = [r for r in ready if r not in avoid] or ready
                if ready:
                    due = [r for r in ready if r.down_until is not None]  # back from cooldown: probe it first
                    n = len(self.replicas)
                    pick = due[0] if due else min(ready, key=lambda r: (r.in_flight, (r.index - self._next) % n))
                    self._next = (pick.index + 1) % n
                    pick.probing = probe = pick.down_until is not None
                    pick.in_flight += 1
                    return pick, probe
                ends = [r.down_until - now for r in candidates if r.down_until is not None and not r.probing]
                wait = min(ends) if ends else POLL  # probes under way: their release wakes us
                self._cond.wait(timeout=max(0.001, min(wait, POLL)))

    def has_ready_besides(self, tried) -> bool:
        """Whether a replica outside `tried` could take a request now."""
        with self._cond:
            now = self._clock()
            return any(self._ready(r, now) and r not in tried for r in self.replicas)

    def release(self, replica: Replica, *, probe: bool = False, fault: str | None = None, error: str | None = None,
                health: bool = False, refused: str | None = None) -> None:
        """The request (or health check, `health`) on `replica` is over: `fault` is its kind of
        transient failure, None when the server answered. `refused`: the server refused the request
        for good, in these words; whose fault that was is told later (`refusals`)."""
        with self._cond:
            replica.in_flight -= 1
            if not health:
                replica.calls += 1
            if refused is not None:
                replica.refused += 1
                replica.last_refusal = self.redact(refused)
                if probe:  # it answered after its cooldown: back in service
                    replica.probing = False
                    replica.down_until = None
            elif fault is None:
                replica.ok += 1
                replica.failures_in_a_row = 0
                replica.down_until = None
                if probe:
                    replica.probing = False
            else:
                self._fail(replica, fault, error, probe)
            self._cond.notify_all()

    def _fail(self, replica: Replica, fault: str, error: str | None, probe: bool = False) -> None:
        """Count a failure against `replica` (under the lock); set it aside when it keeps failing."""
        replica.faults[fault] += 1
        replica.last_error = self.redact(f"{fault}: {error}" if error else fault)
        replica.failures_in_a_row += 1
        if len(self.replicas) > 1:
            if probe:  # still failing after its cooldown
                replica.probing = False
                replica.down_until = self._clock() + self.cooldown
                replica.set_aside += 1
            elif replica.down_until is None and replica.failures_in_a_row >= self.failures_to_set_aside:
                replica.down_until = self._clock() + self.cooldown
                replica.set_aside += 1

    def refusals(self, refused: dict[Replica, str], *, answered_elsewhere: bool) -> None:
        """How a request that the replicas in `refused` (with their words) refused ended: another
        replica answered it (`answered_elsewhere`: each refusal was its replica's fault), or every
        replica refused it (the request's fault: each of them answered as it should)."""
        with self._cond:
            for replica, words in refused.items():
                if answered_elsewhere:
                    self._fail(replica, "refused", words)
                else:
                    replica.ok += 1
                    replica.failures_in_a_row = 0
            self._cond.notify_all()

    def describe_all(self) -> str:
        """Every replica with its state and last error, for an error message."""
        with self._cond:
            now = self._clock()
            parts = []
            for r in self.replicas:
                state = "in service" if r.down_until is None else f"set aside for {max(0.0, r.down_until - now):.1f}s more"
                parts.append(f"{r.url} ({state}; last error: {r.last_error or 'none'})")
            return "; ".join(parts)

    def stats(self) -> dict[str, dict]:
        """Per replica: requests finished, successes (a refusal every replica made counts as one: it
        answered), faults by kind ("refused": a request it refused that another replica answered),
        times set aside, whether it is set aside now, its last error, the requests it refused and
        the last refusal's words."""
        with self._cond:
            return {r.url: {"calls": r.calls, "ok": r.ok, "faults": dict(r.faults), "set_aside": r.set_aside,
                            "down": r.down_until is not None, "last_error": r.last_error, "refused": r.refused,
                            "last_refusal": r.last_refusal}
                    for r in self.replicas}


class TokenBucket:
    """A per-minute budget, refilled continuously, holding at most `burst_seconds` worth (at least
    one unit). A take larger than that waits for a full bucket and leaves it in debt, so one big
    request is never refused, only spaced from the next."""

    def __init__(self, per_minute: float, *, burst_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if per_minute <= 0:
            raise ValueError(f"a rate limit must be positive, got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self._clock, self._sleep = clock, sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self.rate)
        self._updated = now

    def take(self, amount: float, stop: threading.Event | None = None) -> None:
        """Block until `amount` may be spent, then spend it."""
        while True:
            if stop is not None and stop.is_set():
                raise Abandoned
            with self._lock:
                self._refill()
                need = min(amount, self.capacity)
                if self.level >= need:
                    self.level -= amount
                    return
                wait = (need - self.level) / self.rate
            self._sleep(min(wait, POLL) if stop is not None else wait)

    def adjust(self, amount: float) -> None:
        """Give back `amount` (negative: charge more), e.g. when a request used fewer tokens than estimated."""
        with self._lock:
            self._refill()
            self.level = min(self.capacity, self.level + amount)


class RateLimits:
    """Requests-per-minute and tokens-per-minute limits, either optional, shared by all calls."""

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None, **bucket):
        self.requests = TokenBucket(requests_per_minute, **bucket) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute, **bucket) if tokens_per_minute else None

    def before(self, estimated_tokens: int, stop: threading.Event | None = None) -> None:
        """Block until one more request of about `estimated_tokens` fits both budgets."""
        if self.requests is not None:
            self.requests.take(1, stop)
        if self.tokens is not None:
            self.tokens.take(estimated_tokens, stop)

    def after(self, estimated_tokens: int, used_tokens: int) -> None:
        """Correct the token budget with what the server says the request used (0: it did not say)."""
        if self.tokens is not None and used_tokens > 0:
            self.tokens.adjust(estimated_tokens - used_tokens)


def estimate_tokens(prompt_chars: int, max_tokens: int) -> int:
    """A request's tokens before it is sent: about four characters a token, plus all it may generate."""
    return prompt_chars // 4 + max_tokens

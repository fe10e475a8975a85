"""Batch mode for an OpenAI-compatible teacher: half the price, paid once, collected on a later run.

    model: {backend: openai, base_url: https://api.openai.com/v1, model: gpt-4o-mini,
            batch: {wait: 3600, poll: 60}}

`BatchLM` stands where the live backend would, behind the completion cache, so it is only asked
for what the cache lacks. It never waits on a request: each one it has no answer for yet is noted
as *pending* and comes back `deferred` (no text, never cached). The program that asked stops
there (methods/runner.py), the stage finishes its pass over the inputs without sealing anything,
and the run raises `BatchPending`. The pipeline then `submit`s every pending request as one batch
per endpoint (the OpenAI batch JSONL, `custom_id` = the cache key and the sample index), records
it in the run folder (`batches/MODEL/round-NNNN.json`), and either waits for it (`wait` seconds,
polling every `poll`) or stops: "submitted; rerun to collect" (exit code 75). The next pass finds
the answers in the collected output files, the cache stores them, and the programs go one call
further: a program that calls the teacher twice (two-step RaR, BSM, USC) takes two batch rounds.

What comes back:
- an answer (status 200): served, then cached like a live completion;
- a request the provider refused for good (a 4xx other than 429): a refusal, as a live refusal
  is (the sample fails; `max_failures` decides), kept in the round's files so it is not paid for
  again on every rerun;
- a transient failure (429, 5xx) or a request the batch did not reach before its window expired:
  asked again in the next round, alone: what was answered is never asked twice;
- a batch the provider cancelled, or one that failed as a whole (a malformed file): an error that
  says what happened and how to submit it again (delete its round file).

A run killed at any point loses nothing and pays for nothing twice: the input file is written and
the round recorded (with its own id in the batch's metadata) before the batch is created, and the
batch's id is written as soon as the provider gives it; a round left without one is looked up by
that metadata (`batches.list`) before anything is submitted again. Output files are saved before
they are read.

`mode: offline` writes the same JSONL and stops: run it with `vllm run-batch -i ROUND.jsonl -o
ROUND.output.jsonl --model MODEL` on any machine with the model, put the output file beside it,
and rerun; it is collected as a provider's would be.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from s2distill.artifacts import atomic_write_bytes
from s2distill.errors import BackendError, RunFolderError, S2DistillError
from s2distill.lm.base import gather_samples, sample_rows
from s2distill.lm.cache import request_key
from s2distill.types import Completion, Request, Usage

# The OpenAI Batch API's limits per batch (the provider's; other gateways' are the same or larger).
MAX_REQUESTS_PER_BATCH = 50_000
MAX_BYTES_PER_BATCH = 190 * 1024 * 1024  # under the 200 MB file limit
FINISHED = ("completed", "expired")  # a batch whose output can be collected
ENDED_BADLY = ("failed", "cancelled", "cancelling")


class BatchPending(S2DistillError):
    """A stage asked a batched model for requests it has no answer to yet: they are pending (to be
    submitted) or in a batch still running. Nothing of the stage was sealed; rerun to go on."""

    def __init__(self, deferred: int, total: int):
        self.deferred, self.total = deferred, total
        super().__init__(f"{deferred} of {total} samples wait for a batch")

    @classmethod
    def of_all(cls, pending: Sequence[BatchPending]) -> BatchPending:
        """One for several stages' (a pass's every stage that waits)."""
        return cls(sum(p.deferred for p in pending), sum(p.total for p in pending))


class BatchSubmitted(S2DistillError):
    """The run stopped with batches in flight; rerunning the same command collects them."""

    EXIT_CODE = 75  # sysexits' EX_TEMPFAIL: try again later


@dataclass
class Round:
    """One batch: its request file, its record, and (once collected) its output and error files."""

    record_path: Path
    record: dict[str, Any]

    @property
    def stem(self) -> Path:
        return self.record_path.with_suffix("")

    @property
    def input_path(self) -> Path:
        return self.stem.with_suffix(".jsonl")

    @property
    def output_path(self) -> Path:
        return self.stem.parent / f"{self.stem.name}.output.jsonl"

    @property
    def errors_path(self) -> Path:
        return self.stem.parent / f"{self.stem.name}.errors.jsonl"

    @property
    def collected(self) -> bool:
        return self.record.get("collected", False)

    def save(self) -> None:
        atomic_write_bytes(self.record_path, json.dumps(self.record, indent=1, sort_keys=True).encode())


class BatchLM:
    """An OpenAI-compatible LM whose requests go through batches (see the module docstring).

    `inner` is the live `OpenAICompatibleLM`: its name (so batch and live share the cache), its
    request bodies, its client and its parser are used as they are."""

    def __init__(self, inner, settings, folder: Path, *, say: Callable[[str], None] = print):
        self.inner = inner
        self.name = inner.name
        self.settings = settings
        self.folder = Path(folder)
        self.say = say
        self.pending: dict[str, tuple[str, dict]] = {}  # custom_id -> (endpoint, body), in order asked
        self._answers: dict[str, Completion] | None = None  # custom_id -> collected answer or refusal
        self._in_flight: set[str] = set()  # custom_ids of rounds not yet collected
        self._refreshed = False

    # -- the LM protocol --------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        if not self._refreshed:  # once per pass: collect what finished since the last look
            self.refresh()
        done: dict[tuple[int, int], Completion] = {}
        for i, k in sample_rows(requests):
            request = requests[i]
            custom_id = f"{request_key(self.name, request)}-{k}"
            answer = self._answers.get(custom_id)
            if answer is not None:
                done[(i, k)] = replace(answer, sample_index=k)
                continue
            if custom_id not in self._in_flight and custom_id not in self.pending:
                self.pending[custom_id] = self.inner.request_body(request, k)
            done[(i, k)] = Completion("", Usage(0, 0), "stop", k, deferred=True)
        return gather_samples(requests, done)

    # -- rounds -----------------------------------------------------------------------------------
    def rounds(self) -> list[Round]:
        """Every round recorded, in order."""
        rounds = []
        for path in sorted(self.folder.glob("round-*.json")):
            try:
                rounds.append(Round(path, json.loads(path.read_text(encoding="utf-8"))))
            except ValueError:
                raise RunFolderError(f"{path} is not a batch round's record (damaged?). If its batch was never "
                                     "submitted, delete it and its .jsonl and rerun; otherwise restore it") from None
        return rounds

    def refresh(self) -> None:
        """Look at every round not yet collected (a provider's status, or an offline round's output
        file) and collect those that finished; index every collected answer."""
        self._refreshed = True
        answers: dict[str, Completion] = {}
        in_flight: set[str] = set()
        for round_ in self.rounds():
            if not round_.collected:
                self._look_at(round_)
            if round_.collected:
                answers.update(self._read_collected(round_))
            else:
                in_flight.update(_custom_ids(round_.input_path))
        self._answers, self._in_flight = answers, in_flight - set(answers)

    def new_pass(self) -> None:
        """The next pass of the run looks at the rounds again (after `submit` or a wait)."""
        self._refreshed = False
        self.pending.clear()

    def in_flight(self) -> list[Round]:
        return [r for r in self.rounds() if not r.collected]

    def poll(self) -> None:
        """Look at the rounds in flight once (while the run waits); collected ones are read on the next pass."""
        for round_ in self.in_flight():
            self._look_at(round_)

    def submit(self) -> list[Round]:
        """Every pending request, as rounds of at most the provider's limits, one endpoint each."""
        by_endpoint: dict[str, list[tuple[str, dict]]] = {}
        for custom_id, (endpoint, body) in self.pending.items():
            by_endpoint.setdefault(endpoint, []).append((custom_id, body))
        self.pending.clear()
        submitted = []
        for endpoint, items in by_endpoint.items():
            for part in _parts(endpoint, items):
                submitted.append(self._submit(endpoint, part))
        return submitted

    def _submit(self, endpoint: str, lines: list[bytes]) -> Round:
        self.folder.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(m.group(1)) for p in self.folder.glob("round-*.json")
                          if (m := re.fullmatch(r"round-(\d+)\.json", p.name))), default=0)
        round_ = Round(self.folder / f"round-{number:04d}.json",
                       {"round": number, "mode": self.settings.mode, "endpoint": endpoint, "requests": len(lines),
                        "model": self.inner.model, "status": "submitting", "submitted_at": time.time(),
                        "tag": f"s2distill-{os.getpid()}-{time.time_ns()}"})
        atomic_write_bytes(round_.input_path, b"".join(lines))
        round_.save()  # recorded before the batch exists: a kill from here on is recovered (`_look_at`)
        if self.settings.mode == "offline":
            round_.record["status"] = "waiting for its output file"
            round_.save()
            self.say(f"  batch round {number} ({len(lines)} requests): run it where the model is, then rerun:\n"
                     f"    vllm run-batch -i {round_.input_path} -o {round_.output_path} --model {self.inner.model}")
            return round_
        self._create(round_)
        return round_

    def _create(self, round_: Round) -> None:
        """Upload the round's file and create its batch; the ids are recorded as soon as they exist."""
        client = self._client()
        try:
            if not round_.record.get("input_file_id"):
                with round_.input_path.open("rb") as handle:
                    uploaded = client.files.create(file=(round_.input_path.name, handle), purpose="batch")
                round_.record["input_file_id"] = uploaded.id
                round_.save()
            batch = client.batches.create(input_file_id=round_.record["input_file_id"], endpoint=round_.record["endpoint"],
                                          completion_window=self.settings.completion_window,
                                          metadata={"s2distill_round": round_.record["tag"]})
        except Exception as exc:  # noqa: BLE001 - any client error: the round stays, to be retried
            raise BackendError(self.inner.redact(
                f"could not submit batch round {round_.record['round']} to {self.inner.base_url}: {exc}. Nothing was "
                "lost: rerun to try again")) from None
        round_.record.update(batch_id=batch.id, status=batch.status)
        round_.save()
        count = round_.record["requests"]
        self.say(f"  batch round {round_.record['round']} submitted: {batch.id}, {count} request{'s' * (count != 1)} "
                 f"to {round_.record['endpoint']}")

    def _look_at(self, round_: Round) -> None:
        """Bring one uncollected round up to date, collecting it when it finished."""
        if round_.record["mode"] == "offline":
            if round_.output_path.exists():
                self._mark_collected(round_, "completed")
            return
        if not round_.record.get("batch_id"):
            found = self._find_by_tag(round_.record["tag"], since=round_.record["submitted_at"])
            if found is None:  # killed before the batch was created: create it now
                self._create(round_)
                return
            round_.record.update(batch_id=found.id, input_file_id=found.input_file_id)
        client = self._client()
        try:
            batch = client.batches.retrieve(round_.record["batch_id"])
        except Exception as exc:  # noqa: BLE001
            raise BackendError(self.inner.redact(f"could not ask {self.inner.base_url} about batch "
                                                 f"{round_.record['batch_id']}: {exc}")) from None
        counts = getattr(batch, "request_counts", None)
        round_.record.update(status=batch.status, counts=counts.model_dump() if counts is not None else None)
        if batch.status in ENDED_BADLY:
            round_.save()
            errors = "; ".join(f"{e.code}: {e.message}" + (f" (line {e.line})" if e.line else "")
                               for e in (getattr(getattr(batch, "errors", None), "data", None) or []))
            raise BackendError(self.inner.redact(
                f"batch {batch.id} (round {round_.record['round']}, {round_.record['requests']} requests) was "
                f"{batch.status} by the provider{': ' + errors if errors else ''}. To submit its requests again, "
                f"delete {round_.record_path} and rerun"))
        if batch.status in FINISHED:
            for key, path in (("output_file_id", round_.output_path), ("error_file_id", round_.errors_path)):
                file_id = getattr(batch, key, None)
                if file_id:
                    atomic_write_bytes(path, client.files.content(file_id).read())
            self._mark_collected(round_, batch.status)
        else:
            round_.save()

    def _mark_collected(self, round_: Round, status: str) -> None:
        round_.record.update(status=status, collected=True, collected_at=time.time())
        round_.save()

    def _find_by_tag(self, tag: str, *, since: float):
        """The batch a killed run created for this round but did not record, if the provider has it:
        among the batches created since the round was recorded (the list is newest first)."""
        try:
            for batch in self._client().batches.list(limit=100):
                if (getattr(batch, "metadata", None) or {}).get("s2distill_round") == tag:
                    return batch
                if (getattr(batch, "created_at", None) or since) < since - 3600:  # older than the round (an hour's skew)
                    return None
        except Exception:  # noqa: BLE001 - a provider without batches.list: the round was never created
            return None
        return None

    def _read_collected(self, round_: Round) -> dict[str, Completion]:
        """custom_id -> answer or refusal, from a collected round's output and error files; a
        transient failure or an expired request is left out, so it is asked again."""
        answers = {}
        for path in (round_.output_path, round_.errors_path):
            if not path.exists():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    custom_id = row["custom_id"]
                except (ValueError, KeyError, TypeError):
                    raise BackendError(f"{path}, line {number}: not a batch output line ({line[:120]!r}); "
                                       f"delete {path} to collect it again") from None
                answer = self._answer(row)
                if answer is not None:
                    answers[custom_id] = answer
        return answers

    def _answer(self, row: dict) -> Completion | None:
        """One output line as a completion, a refusal, or None (to be asked again)."""
        response = row.get("response") or {}
        status = response.get("status_code", 200 if response else None)
        body = response.get("body", response) if response else None
        if status == 200 and isinstance(body, dict) and body.get("choices"):
            return self.inner.parse_body(body)
        if status is not None and 400 <= status < 500 and status != 429:
            message = ((body or {}).get("error") or {}).get("message") if isinstance(body, dict) else None
            return Completion("", Usage(0, 0), "stop", error=self.inner.redact(f"refused ({status}): {message or body}")[:300])
        return None  # 429, 5xx, expired, or an error without a response: asked again next round

    def _client(self):
        return self.inner._get_client()

    # -- waiting ----------------------------------------------------------------------------------
    def progress(self) -> tuple[int, int]:
        """(requests done, requests) over the rounds in flight, as their providers count them."""
        done = total = 0
        for round_ in self.in_flight():
            total += round_.record["requests"]
            counts = round_.record.get("counts") or {}
            done += (counts.get("completed") or 0) + (counts.get("failed") or 0)
        return done, total


def describe_rounds(lms: Sequence[BatchLM], submitted: Sequence[Round]) -> str:
    """One line on the rounds in flight: how many requests, which were just submitted, where recorded."""
    flight = [(lm, r) for lm in lms for r in lm.in_flight()]
    requests = sum(r.record["requests"] for _, r in flight)
    new = sum(r.record["requests"] for r in submitted)
    folders = ", ".join(sorted({str(lm.folder) for lm, _ in flight}))
    ids = ", ".join(str(r.record.get("batch_id") or f"round {r.record['round']} (offline)") for _, r in flight[:4])
    more = f" and {len(flight) - 4} more" if len(flight) > 4 else ""
    return (f"{requests} requests in {len(flight)} batch{'es' if len(flight) != 1 else ''} ({ids}{more}; "
            f"{new} just submitted), recorded in {folders}")


def wait_for_rounds(lms: Sequence[BatchLM], *, wait: float, poll: float, console=None, progress: bool = True) -> bool:
    """Poll the rounds in flight until all are collected (True) or `wait` seconds have passed
    (False), showing the requests done as the providers count them."""
    from rich.console import Console

    from s2distill.progress import ProgressBar

    start = time.monotonic()
    total = sum(lm.progress()[1] for lm in lms)
    with ProgressBar("waiting for batches", total, console or Console(stderr=True), enabled=progress) as advance:
        shown = 0
        while True:
            for lm in lms:
                lm.poll()
            figures = [lm.progress() for lm in lms]
            in_flight = sum(requests for _, requests in figures)
            done = total - in_flight + sum(done for done, _ in figures)  # collected rounds, and the rest's counts
            advance(max(0, done - shown))
            shown = max(shown, done)
            if not in_flight:
                return True
            remaining = wait - (time.monotonic() - start)
            if remaining <= 0:
                return False
            time.sleep(min(poll, remaining))


def _parts(endpoint: str, items: list[tuple[str, dict]]) -> list[list[bytes]]:
    """The JSONL lines of `items`, cut into batches within the provider's limits."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for custom_id, body in items:
        line = (json.dumps({"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body}) + "\n").encode()
        if parts[-1] and (len(parts[-1]) >= MAX_REQUESTS_PER_BATCH or size + len(line) > MAX_BYTES_PER_BATCH):
            parts.append([])
            size = 0
        parts[-1].append(line)
        size += len(line)
    return [p for p in parts if p]


def _custom_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["custom_id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}

"""The fake Files + Batch API (tests/openai_batch_server.py) driven by the real `openai` client: the
shapes it answers must parse as the client's own types, or tests built on it would prove nothing."""

from __future__ import annotations

import json
import time

import pytest

openai = pytest.importorskip("openai")
from openai.types import Batch, Completion
from openai.types.chat import ChatCompletion

from tests.openai_batch_server import OpenAIBatchServer


def echo(body: dict) -> str:
    """Replies 'echo <last word of the prompt or last message>', so each answer names its request."""
    text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
    return f"echo {text.split()[-1]}"


def client_for(server: OpenAIBatchServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="x", base_url=server.url, max_retries=0)


def request_line(custom_id: str, chat: bool = False, **body) -> dict:
    """One batch input line; the prompt (or the user message) ends with the custom id."""
    url = "/v1/chat/completions" if chat else "/v1/completions"
    text = f"please answer {custom_id}"
    body = {"model": "test-model", "max_tokens": 16, "temperature": 0.0, "top_p": 1.0, **body}
    body.update({"messages": [{"role": "user", "content": text}]} if chat else {"prompt": text})
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def jsonl(lines: list) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines).encode()


def submit(client, lines: list, chat: bool = False, **kwargs) -> Batch:
    """Upload the lines (as a (name, bytes) pair) and create a batch on them."""
    uploaded = client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
    endpoint = "/v1/chat/completions" if chat else "/v1/completions"
    return client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h", **kwargs)


def download(client, file_id: str | None) -> list[dict]:
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()] if file_id else []


def test_upload_create_retrieve_download(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_bytes(jsonl([request_line(custom_id) for custom_id in ("q0", "q1", "qü")]))  # UTF-8 both ways
    with OpenAIBatchServer(echo, cached_tokens=lambda body: 2) as server:
        client = client_for(server)
        with open(path, "rb") as handle:
            uploaded = client.files.create(file=handle, purpose="batch")
        assert (uploaded.filename, uploaded.purpose, uploaded.bytes) == ("requests.jsonl", "batch", path.stat().st_size)
        assert client.files.content(uploaded.id).read() == path.read_bytes()  # the upload round-trips
        assert server.uploads[0][:2] == ("requests.jsonl", "batch") and server.uploads[0][2][1]["custom_id"] == "q1"
        created = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/completions",
                                        completion_window="24h", metadata={"run": "t1"})
        assert isinstance(created, Batch) and created.status == "validating" and created.metadata == {"run": "t1"}
        done = client.batches.retrieve(created.id)
        assert done.status == "completed" and done.error_file_id is None and done.errors is None
        assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 3, 0)
        output = download(client, done.output_file_id)
        assert [line["custom_id"] for line in output] == ["q0", "q1", "qü"]
        assert output[2]["response"]["body"]["choices"][0]["text"] == "echo qü"
        assert output[0]["id"].startswith("batch_req_") and output[0]["error"] is None
        assert output[0]["response"]["status_code"] == 200
        completion = Completion.model_validate(output[0]["response"]["body"])
        assert completion.choices[0].text == "echo q0" and completion.choices[0].finish_reason == "stop"
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 2)
        assert completion.usage.prompt_tokens_details.cached_tokens == 2
        assert server.answered == 3 and server.retrieves == 1 and server.batches[created.id]["lines"][0]["custom_id"] == "q0"


def test_chat_shape_and_cut_at_max_tokens():
    with OpenAIBatchServer(lambda body: "one two three four five", cut_at_max_tokens=True) as server:
        client = client_for(server)
        batch = submit(client, [request_line("a", chat=True, max_tokens=2), request_line("b", chat=True)], chat=True)
        output = download(client, client.batches.retrieve(batch.id).output_file_id)
        short, full = (ChatCompletion.model_validate(line["response"]["body"]) for line in output)
        assert short.object == "chat.completion" and short.choices[0].message.role == "assistant"
        assert (short.choices[0].message.content, short.choices[0].finish_reason) == ("one two", "length")
        assert (full.choices[0].message.content, full.choices[0].finish_reason) == ("one two three four five", "stop")
        assert short.usage.prompt_tokens == 3 and short.usage.total_tokens == 5


def test_in_progress_until_finish_after():
    with OpenAIBatchServer(echo, finish_after=0.3) as server:
        client = client_for(server)
        batch = submit(client, [request_line("a")])
        assert client.batches.retrieve(batch.id).status == "in_progress" and server.answered == 0
        time.sleep(0.35)
        assert client.batches.retrieve(batch.id).status == "completed" and server.answered == 1


def test_expired_answers_only_the_first_lines():
    with OpenAIBatchServer(echo, outcomes=["expired:1"]) as server:
        client = client_for(server)
        batch = client.batches.retrieve(submit(client, [request_line(f"q{i}") for i in range(3)]).id)
        assert batch.status == "expired" and batch.expired_at is not None
        assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 2)
        assert [line["custom_id"] for line in download(client, batch.output_file_id)] == ["q0"]
        errors = download(client, batch.error_file_id)
        assert [line["custom_id"] for line in errors] == ["q1", "q2"]
        assert errors[0]["response"] is None and errors[0]["error"]["code"] == "batch_expired"
        assert server.answered == 1


def test_cancel_then_cancelled_and_cancelled_outcome():
    with OpenAIBatchServer(echo, finish_after=60, outcomes=["completed", "cancelled"]) as server:  # cancel() beats the 1st
        client = client_for(server)
        batch = submit(client, [request_line("a")])
        assert client.batches.cancel(batch.id).status == "cancelling"
        cancelled = client.batches.retrieve(batch.id)
        assert cancelled.status == "cancelled" and cancelled.output_file_id is None and cancelled.error_file_id is None
        server.finish_after = 0
        injected = client.batches.retrieve(submit(client, [request_line("b")]).id)
        assert injected.status == "cancelled" and injected.output_file_id is None and server.answered == 0
        assert client.batches.cancel(injected.id).status == "cancelled"  # again: no change
        completed = client.batches.retrieve(submit(client, [request_line("c")]).id)
        with pytest.raises(openai.ConflictError, match="status 'completed'"):  # too late to cancel
            client.batches.cancel(completed.id)


def test_failed_outcome_then_completed_once_the_list_is_used_up():
    with OpenAIBatchServer(echo, outcomes=["failed"]) as server:
        client = client_for(server)
        failed = client.batches.retrieve(submit(client, [request_line("a")]).id)
        assert failed.status == "failed" and failed.output_file_id is None and failed.error_file_id is None
        [error] = failed.errors.data
        assert (error.code, error.message, error.line, error.param) == ("invalid_request", "injected failure", 1, None)
        assert client.batches.retrieve(submit(client, [request_line("b")]).id).status == "completed"
        assert server.answered == 1


def test_per_request_failures_go_to_the_error_file():
    failures = {"b": (500, "boom"), "c": (400, "too long")}
    with OpenAIBatchServer(echo, fail=lambda custom_id, body: failures.get(custom_id)) as server:
        client = client_for(server)
        batch = client.batches.retrieve(submit(client, [request_line(x) for x in "abc"]).id)
        assert batch.status == "completed"
        assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 2)
        assert [line["custom_id"] for line in download(client, batch.output_file_id)] == ["a"]
        errors = {line["custom_id"]: line["response"] for line in download(client, batch.error_file_id)}
        assert errors["b"]["status_code"] == 500 and errors["b"]["request_id"].startswith("req_")
        assert errors["b"]["body"]["error"] == {"message": "boom", "type": "server_error", "param": None, "code": None}
        assert errors["c"]["body"]["error"]["type"] == "invalid_request_error"
        assert server.answered == 1


def test_invalid_input_fails_the_batch_with_line_numbers():
    with OpenAIBatchServer(echo) as server:
        client = client_for(server)
        lines = [request_line("a"), "{not json", request_line("a"), request_line("c", chat=True)]
        batch = client.batches.retrieve(submit(client, lines).id)
        assert batch.status == "failed" and server.answered == 0
        assert [(e.code, e.line) for e in batch.errors.data] == [
            ("invalid_json_line", 2), ("duplicate_custom_id", 3), ("mismatched_endpoint", 4)]
        assert server.uploads[0][2][1] == "{not json"  # recorded as its text


def test_unknown_ids_and_bad_requests():
    with OpenAIBatchServer(echo) as server:
        client = client_for(server)
        with pytest.raises(openai.NotFoundError, match="batch_nope"):
            client.batches.retrieve("batch_nope")
        with pytest.raises(openai.NotFoundError):
            client.batches.cancel("batch_nope")
        with pytest.raises(openai.NotFoundError):
            client.files.content("file-nope")
        with pytest.raises(openai.NotFoundError):
            client.batches.create(input_file_id="file-nope", endpoint="/v1/completions", completion_window="24h")
        uploaded = client.files.create(file=("x.jsonl", jsonl([request_line("a")])), purpose="batch")
        with pytest.raises(openai.BadRequestError):
            client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
        assert server.retrieves == 1 and not server.batches


def test_live_calls_match_batch_answers():
    with OpenAIBatchServer(echo) as server:
        client = client_for(server)
        assert [model.id for model in client.models.list()] == ["test-model"]
        live = client.completions.create(model="test-model", prompt="please answer q", max_tokens=16)
        chat = client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "hi q"}])
        assert live.choices[0].text == chat.choices[0].message.content == "echo q"
        output = download(client, client.batches.retrieve(submit(client, [request_line("q")]).id).output_file_id)
        assert Completion.model_validate(output[0]["response"]["body"]).choices[0].text == live.choices[0].text
        assert server.live_calls == 2 and server.answered == 1


def test_stop_frees_the_server_and_rejects_bad_outcomes():
    server = OpenAIBatchServer(echo).start()
    client = openai.OpenAI(api_key="x", base_url=server.url, max_retries=0, timeout=2)
    assert client.models.list().data
    server.stop()
    server.stop()  # twice is fine
    with pytest.raises(openai.APIConnectionError):
        client.models.list()
    OpenAIBatchServer(echo).stop()  # never started
    with pytest.raises(ValueError, match="unknown batch outcome"):
        OpenAIBatchServer(echo, outcomes=["expired"])

"""The OpenAI-compatible backend against a local faulty server: retries, fault counts, secrets."""

from __future__ import annotations

import re
import socket

import pytest

from s2distill.config.recipe import validate_recipe
from s2distill.errors import BackendError
from s2distill.lm.openai_api import OpenAICompatibleLM
from s2distill.pipeline import Pipeline
from s2distill.artifacts import read_jsonl
from s2distill.types import Request
from tests.openai_test_server import FaultyOpenAIServer


def echo(prompt, seed):
    return f"echo {prompt.split()[-1]} seed={seed}"


def lm_for(server, **kwargs) -> OpenAICompatibleLM:
    return OpenAICompatibleLM(base_url=server.url, model="test-model", backoff=0.01, **kwargs)


def test_completions_chat_samples_and_token_counts():
    with FaultyOpenAIServer(echo) as server:
        lm = lm_for(server)
        [sampled, chat, greedy] = lm.generate([
            Request(prompt="say hello", temperature=0.7, n=3),
            Request(messages=(("user", "hi there"),), temperature=0.0),
            Request(prompt="say bye", temperature=0.0, n=2),
        ])
        assert len({c.text for c in sampled}) == 3  # each sample its own seed
        assert [c.sample_index for c in sampled] == [0, 1, 2]
        assert chat[0].text == "echo there seed=None" and chat[0].usage.prompt_tokens == 2
        assert len(greedy) == 2 and len(server.received) == 3 + 1 + 1  # greedy n=2 is one call
        assert sampled[0].usage.completion_tokens == 3


def test_the_run_survives_timeouts_429s_500s_malformed_bodies_and_drops():
    plan = ["429", "500", "timeout", "malformed", "drop", "503"]
    with FaultyOpenAIServer(echo, plan=plan, stall_seconds=1.5) as server:
        lm = lm_for(server, timeout=0.5, max_retries=7, max_concurrency=2)  # more tries than injected faults
        out = lm.generate([Request(prompt=f"item {i}", temperature=0.7) for i in range(10)])
        assert [o[0].text.split()[1] for o in out] == [str(i) for i in range(10)]  # nothing lost, in order
        assert sum(lm.faults.values()) == 6
        assert lm.faults["429"] == 1 and lm.faults["500"] == 1 and lm.faults["503"] == 1
        assert lm.faults["timeout"] == 1 and lm.faults["malformed"] == 1 and lm.faults["connection"] == 1


def test_an_unreachable_server_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    lm = OpenAICompatibleLM(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff=0.01, timeout=2)
    with pytest.raises(BackendError, match=rf"127.0.0.1:{port}/v1 failed after 2 attempts"):
        lm.generate([Request(prompt="x")])
    assert lm.faults["connection"] == 2


def test_a_refused_request_is_not_retried_and_comes_back_as_a_failed_sample_with_the_servers_message():
    too_long = lambda prompt: "context length exceeded: 9000 > 4096 tokens" if "long" in prompt else None
    with FaultyOpenAIServer(echo, refuse=too_long) as server:
        lm = lm_for(server)
        [[refused], [fine]] = lm.generate([Request(prompt="a long one"), Request(prompt="short")])
        assert refused.error == "refused (400): context length exceeded: 9000 > 4096 tokens" and refused.text == ""
        assert fine.error is None and fine.text == "echo short seed=None"
        assert len(server.received) == 2 and not lm.faults


def test_retry_after_is_honoured():
    with FaultyOpenAIServer(echo, plan=["429:1.2"]) as server:
        lm = lm_for(server)  # its own backoff is 0.01 s
        assert lm.generate([Request(prompt="x")])[0][0].text == "echo x seed=None"
        assert server.times[1] - server.times[0] >= 1.2 and lm.faults["429"] == 1


def test_an_html_page_or_empty_choices_with_status_200_is_malformed_and_retried():
    with FaultyOpenAIServer(echo, plan=["html", "empty", "malformed"]) as server:
        lm = lm_for(server, max_concurrency=1)
        assert lm.generate([Request(prompt="x")])[0][0].text == "echo x seed=None"
        assert lm.faults == {"malformed": 3} and len(server.received) == 4


def test_a_refusal_fails_one_sample_the_stage_goes_on_and_too_many_stop_the_run_naming_the_prompts():
    from s2distill.methods import build_program, run_program
    from s2distill.methods.runner import TooManyFailures
    from s2distill.tasks.last_letters import LastLetters, LastLettersConfig

    task = LastLetters(LastLettersConfig(train_size=10, test_size=2))
    examples = task.unlabeled("train")
    target = task.question(examples[3]).split('"')[1]  # the words of one input
    with FaultyOpenAIServer(pal_teacher, refuse=lambda p: "context length exceeded" if target in p.split("# Q:")[-1] else None) as server:
        lm = lm_for(server)
        program = build_program(task, "pal", {"shots": 2})
        traces = run_program(program, examples, lm, samples=2, temperature=0.7, max_failures=0.2)
        failed = [t for t in traces if "failed" in t.meta]
        assert [t.example_id for t in failed] == [examples[3].id] * 2
        assert failed[0].answer is None and "context length exceeded" in failed[0].error
        assert sum(t.answer is not None for t in traces) == 18  # the others went on
        with pytest.raises(TooManyFailures, match=rf"2 of 20 samples were refused.*{examples[3].id}: refused \(400\): context length"):
            run_program(program, examples, lm, samples=2, temperature=0.7, max_failures=0.05)


def test_refusals_are_not_cached(tmp_path):
    from s2distill.lm.cache import CachedLM

    calls = {"refuse": True}
    with FaultyOpenAIServer(echo, refuse=lambda p: "busy policy" if calls["refuse"] else None) as server:
        lm = CachedLM(lm_for(server), tmp_path / "cache.sqlite")
        assert lm.generate([Request(prompt="x")])[0][0].error
        calls["refuse"] = False
        assert lm.generate([Request(prompt="x")])[0][0].text == "echo x seed=None"


def pal_teacher(prompt, seed):
    """Writes the last-letters program for the words of the question the prompt ends with."""
    words = re.findall(r'"(\w+) (\w+)" and concatenate them\.\n?$', prompt)[-1]
    return f'words = ["{words[0]}", "{words[1]}"]\nprint("".join(w[-1] for w in words))\n\n'


def test_a_recipe_with_a_server_teacher_runs_end_to_end_and_keeps_the_key_secret(tmp_path, monkeypatch):
    secret = "sk-test-very-secret-0123456789"
    monkeypatch.setenv("S2D_TEST_KEY", secret)
    with FaultyOpenAIServer(pal_teacher, plan=["429", "500", "malformed"]) as server:
        recipe = validate_recipe({
            "task": {"name": "last_letters", "train_size": 8, "test_size": 4},
            "teacher": {
                "model": {"backend": "openai", "base_url": server.url, "model": "teacher", "api_key_env": "S2D_TEST_KEY",
                          "max_concurrency": 4},
                "method": {"name": "pal", "shots": 2}, "samples": 2,
            },
            "student": {"model": {"backend": "tiny"}, "method": {"name": "direct", "shots": 2, "max_tokens": 4}},
            "train": {"epochs": 1, "batch_size": 8, "lora_r": 2, "lora_alpha": 4},
        })
        report = Pipeline(recipe, tmp_path, progress=False).run()
    assert set(server.auth) == {f"Bearer {secret}"}  # the key reached the server...
    for path in tmp_path.rglob("*"):  # ...and no artifact of the run
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert report["rows"][1]["system"] == "system2" and report["rows"][1]["score"] == 1.0
    assert report["curation"][0]["kept"] == 8
    assert report["lm"]["faults"] == {"429": 1, "500": 1, "malformed": 1}
    assert "server faults retried" in (tmp_path / "report.md").read_text()


def sloppy_pal_teacher(prompt, seed):
    """Right on even seeds (sample 0, and greedy), first letters instead of last on odd ones (sample 1)."""
    words = re.findall(r'"(\w+) (\w+)" and concatenate them\.\n?$', prompt)[-1]
    pick = "w[0]" if (seed or 0) % 2 else "w[-1]"  # greedy requests carry no seed
    return f'words = ["{words[0]}", "{words[1]}"]\nprint("".join({pick} for w in words))\n\n'


def test_two_server_teachers_under_faults_report_what_each_had_kept(tmp_path):
    """Two teachers on two faulty servers, their samples pooled by self-consistency: the good
    teacher's 2 samples and the sloppy one's sample 0 agree (3 of 4), so every input is kept with
    all of the good teacher's outputs and half of the sloppy one's."""
    def teacher(name, server):
        return {"name": name, "samples": 2, "method": {"name": "pal", "shots": 2},
                "model": {"backend": "openai", "base_url": server.url, "model": name, "timeout": 2.0, "max_retries": 6}}

    with FaultyOpenAIServer(pal_teacher, plan=["timeout", "429", "malformed"], stall_seconds=3.0) as good, \
            FaultyOpenAIServer(sloppy_pal_teacher, plan=["500", "503", "drop"]) as sloppy:
        recipe = validate_recipe({
            "task": {"name": "last_letters", "train_size": 8, "test_size": 4},
            "teachers": [teacher("good", good), teacher("sloppy", sloppy)],
            "student": {"model": {"backend": "tiny"}, "method": {"name": "direct", "shots": 2, "max_tokens": 4}},
            "train": {"epochs": 1, "batch_size": 8, "lora_r": 2, "lora_alpha": 4},
        })
        report = Pipeline(recipe, tmp_path, progress=False).run()
    assert [(r["system"], r.get("teacher")) for r in report["rows"]] == [
        ("system1", None), ("system2", "good"), ("system2", "sloppy"), ("distilled", None)]
    [curation] = report["curation"]
    assert curation["kept"] == 8
    assert curation["per_teacher"] == {"good": {"outputs": 16, "parseable": 16, "kept": 16},
                                       "sloppy": {"outputs": 16, "parseable": 16, "kept": 8}}
    faults = report["lm"]["faults"]
    assert faults.pop("timeout") >= 1  # the injected one (a busy machine may add a slow request)
    assert faults == {"429": 1, "malformed": 1, "500": 1, "503": 1, "connection": 1}
    markdown = (tmp_path / "report.md").read_text()
    assert "| | | sloppy | 16 | 16 | 8 |" in markdown
    # Nothing lost: every sample of both teachers is in the run folder.
    assert len(read_jsonl(tmp_path / "samples" / "good.jsonl")) == len(read_jsonl(tmp_path / "samples" / "sloppy.jsonl")) == 16


# -- issue 32: a server that quotes the Authorization header ---------------------------------------
def test_redact_removes_the_key_and_any_bearer_or_basic_credential():
    from s2distill.lm.openai_api import redact

    key = "sk-live-0123456789abcdef"
    text = (f"invalid key {key}; you sent Authorization: Bearer {key}, and bearer other-token.123 "
            "and Basic dXNlcjpwYXNz0 and Bearer%20urlencoded-token and {'authorization': 'Bearer abcdefghij'}")
    clean = redact(text, {key, "", "no-key"})
    for leaked in (key, "other-token", "dXNlcjpwYXNz0", "urlencoded", "abcdefghij"):
        assert leaked not in clean, leaked
    assert clean == ("invalid key [redacted]; you sent Authorization: Bearer [redacted], and bearer [redacted] "
                     "and Basic [redacted] and Bearer%20[redacted] and {'authorization': 'Bearer [redacted]'}")
    plain = "the bearer of bad news: a basic validation error; authorization failed"
    assert redact(plain, {"no-key", "ab"}) == plain  # words are not credentials


def test_a_server_quoting_the_authorization_header_leaves_the_key_in_no_kept_message(monkeypatch):
    secret = "sk-test-quoted-0123456789"
    monkeypatch.setenv("S2D_QUOTE_KEY", secret)
    quote = lambda prompt: "invalid request, you sent Authorization: {auth}" if "long" in prompt else None
    with FaultyOpenAIServer(echo, plan=["ok", "500"], refuse=quote, echo_auth=True) as server:
        lm = lm_for(server, api_key_env="S2D_QUOTE_KEY", max_concurrency=1)
        [[refused], [fine]] = lm.generate([Request(prompt="a long one"), Request(prompt="short")])
        assert set(server.auth) == {f"Bearer {secret}"}  # the server did get the key, and quoted it back
        assert refused.error.startswith("refused (400): invalid request, you sent Authorization: Bearer [redacted]")
        assert fine.text == "echo short seed=None" and lm.faults == {"500": 1}
        kept = [refused.error, *(str(r) for r in lm.replica_stats.values())]
        assert all(secret not in text for text in kept) and "Bearer [redacted]" in str(lm.replica_stats)
    with FaultyOpenAIServer(echo, default="500", echo_auth=True) as failing:
        lm = lm_for(failing, api_key_env="S2D_QUOTE_KEY", max_retries=1)
        with pytest.raises(BackendError) as caught:
            lm.generate([Request(prompt="x")])
        assert secret not in str(caught.value) and "Bearer [redacted]" in str(caught.value)


def test_a_run_against_a_server_quoting_the_key_keeps_it_out_of_samples_and_report(tmp_path, monkeypatch):
    from s2distill.tasks.last_letters import LastLetters, LastLettersConfig

    secret = "sk-test-run-quoted-987654321"
    monkeypatch.setenv("S2D_TEST_KEY", secret)
    examples = LastLetters(LastLettersConfig(train_size=8, test_size=4)).unlabeled("train")
    target = LastLetters(LastLettersConfig(train_size=8, test_size=4)).question(examples[3]).split('"')[1]
    refuse = lambda p: "policy: refused for {auth}" if target in p.split("# Q:")[-1] else None
    with FaultyOpenAIServer(pal_teacher, plan=["500"], refuse=refuse, echo_auth=True) as server:
        recipe = validate_recipe({
            "task": {"name": "last_letters", "train_size": 8, "test_size": 4}, "max_failures": 0.25,
            "teacher": {"model": {"backend": "openai", "base_url": server.url, "model": "teacher",
                                  "api_key_env": "S2D_TEST_KEY", "max_concurrency": 2},
                        "method": {"name": "pal", "shots": 2}, "samples": 2},
            "student": {"model": {"backend": "tiny"}, "method": {"name": "direct", "shots": 2, "max_tokens": 4}},
            "train": {"epochs": 1, "batch_size": 8, "lora_r": 2, "lora_alpha": 4},
        })
        Pipeline(recipe, tmp_path, progress=False).run()
    assert set(server.auth) == {f"Bearer {secret}"}
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "report.html" for path in files)
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    samples = b"".join(path.read_bytes() for path in (tmp_path / "samples").glob("*.jsonl"))
    assert b"policy: refused for Bearer [redacted]" in samples  # the refusal is kept, without the key

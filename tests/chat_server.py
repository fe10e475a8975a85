"""A scripted OpenAI-compatible chat server that answers like a chat model, for the paper profiles'
tests (issue 25): every reply is a whole response (sentences around the answer, as an
instruction-tuned model writes), and some never end (a model caught repeating itself), so the server
cuts them at the request's `max_tokens` words and says "length". Nothing here is a model: each
prompt family of the seed methods (RaR, CoT, S2A, USC, BSM, TwT's teacher and refiner) is recognised
by the figure's text, and the reply is built from the question, right where the task's answer can be
computed from it (last letters, coin flip) and a fixed function of the question elsewhere.

`chat_server()` is the server (tests/openai_test_server.py with `reply` and `cut_at_max_tokens`);
`reply(body)` is the responder; `rambles(body)` says which requests get the reply that never ends:
one in five (model, prompt, sample seed), decided by a hash, so a run's truncated count is a fixed
number the tests read back from the samples.
"""

from __future__ import annotations

import hashlib
import re

from tests.openai_test_server import FaultyOpenAIServer

RAMBLE_EVERY = 5  # one request in this many gets a reply that never ends (cut at its budget)
FILLER = ("Let me think about this carefully and explain each step so that the reasoning is easy to follow. "
          "I will restate what matters in the question before I answer it. ")


def _hash(*parts) -> int:
    return int(hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def rambles(body: dict) -> bool:
    """Whether this request's reply never ends (and so is cut at the request's budget)."""
    return _hash(body["model"], _prompt(body), body.get("seed")) % RAMBLE_EVERY == 0


def _prompt(body: dict) -> str:
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


def reply(body: dict) -> str:
    """A chat model's whole response to the request's last user message."""
    prompt, model = _prompt(body), body["model"]
    text = _answer(prompt, model)
    if rambles(body):  # a reply that repeats itself until the server stops it at max_tokens
        return text + " " + " ".join(["And to say it once more, the reasoning above holds."] * body["max_tokens"])
    return text


def chat_server() -> FaultyOpenAIServer:
    return FaultyOpenAIServer(responder=None, reply=reply, cut_at_max_tokens=True)


def _number(text: str) -> int:
    return _hash(text.strip()) % 90 + 10


def _last_letters(text: str) -> str | None:
    """The last letters of the first quoted words (the question's, as the rephrasing keeps them)."""
    quoted = re.search(r'"([A-Za-z][^"]*)"', text)
    return "".join(w[-1] for w in quoted.group(1).split()).lower() if quoted else None


def _coin(text: str) -> str:
    flips = len(re.findall(r"\bflips the coin", text))
    return "yes" if flips % 2 == 0 else "no"


def _answer(prompt: str, model: str) -> str:  # noqa: PLR0911 - one branch per prompt family
    if "Please compare your previous thinking process" in prompt or "Please compress your previous thinking" in prompt:
        previous = re.search(r"Your previous thinking process: (.*?)\nYour answer:", prompt, re.S)
        words = (previous.group(1) if previous else "").split()
        return " ".join(words[: max(3, len(words) // 2)])  # the first half: shorter, the same answer
    if prompt.startswith("You are a helpful assistant. Your task is"):  # TwT's teacher (Figure 4)
        question = prompt.split("Question:\n", 1)[-1]
        if "```python" in prompt or "# Test Cases:" in prompt:
            name = (re.findall(r"assert\s+(\w+)\(", question) or ["solution"])[0]
            answer = f"```python\ndef {name}(*args):\n    return None\n```"
        elif "Answer Choices:" in question:
            answer = f"The answer is: {'ABCDE'[_hash(question) % 5]}"
        else:
            answer = f"The answer is: {_number(question)}"
        score = "0.97" if _hash(model, question) % 4 else "0.90"
        style = {0: "First I read the problem.", 1: "To start, I restate the problem.", 2: "I begin with the facts."}
        thinking = (f"{style[_hash(model) % 3]} {FILLER}The quantities given lead step by step to the result, "
                    f"which I check once more against the question ({model}).")
        return f"Thinking: {thinking}\n{answer}\nscore: {score}"
    if "could you kindly rephrase the question and separate these" in prompt or "rephrase it and expand it" in prompt:
        question = prompt.split("\n\n", 1)[0]
        return f"Here is the question, rephrased and expanded so that nothing is lost: {question} {FILLER}"
    if "Reword and elaborate on the inquiry" in prompt or 'End your response with "The answer is' in prompt \
            or prompt.rstrip().endswith("Answer the Yes or No question."):
        letters = _last_letters(prompt) if "last letter" in prompt.lower() else None
        answer = letters if letters else _coin(prompt) if "coin" in prompt else str(_number(prompt))
        return f"{FILLER}Working through the question as it was rephrased, the result follows. The answer is {answer}."
    if "Give step by step reasoning before you answer" in prompt:
        question = prompt.split("Question:", 1)[-1].split("Solution:", 1)[0]
        return f"{FILLER}Step 1: read the numbers. Step 2: combine them.\nFinal answer: {_number(question)}"
    if prompt.startswith("Given the following text by a user, extract"):  # S2A, first call
        text = prompt.split("Text by User:", 1)[-1].strip()
        question = re.split(r"(?<=\?)\s", text, maxsplit=1)[0]
        return ("Unbiased text context (includes all content except user’s bias): none\n"
                f"Question/Query (does not include user bias/preference): {question}")
    if prompt.rstrip().endswith("Answer in an unbiased way."):
        return f"{FILLER}Considering only the facts, the answer is Paris."
    if prompt.startswith("Read the question:") and "FINAL:" in prompt:  # USC (Figure 12)
        first = re.search(r"Answer 1: (.*)", prompt)
        return f"The answers mostly agree. FINAL: {first.group(1).strip() if first else 'Paris'}"
    if "propose an evaluation plan" in prompt:  # BSM branch
        return "1. Helpfulness: how well each response answers.\n2. Accuracy: whether it is correct."
    if "based on a single evaluation criterion" in prompt:  # BSM solve
        return "4\n2"
    if "combine the five points" in prompt:  # BSM merge
        return f"{FILLER}Overall, Assistant A is more helpful and accurate.\nConclusive judgement: [[A]]"
    return f"{FILLER}The answer is {_number(prompt)}."

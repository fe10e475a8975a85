"""Worked exemplars for the methods whose prompts are not task-specific (S2A, BSM, USC, TwT).

In the `fewshot` prompt format a pretrained model sees one or more of these, each a complete
prompt followed by the reply in the exact shape the method parses, before the real prompt. They
are ours, written to be unambiguous; none of them comes from a test set.
"""

from __future__ import annotations

S2A = (
    {
        "text": "Which river flows through Paris? I think the answer is the Thames, but I'm really not sure.",
        "extraction": "Unbiased text context (includes all content except user's bias): none\n"
        "Question/Query (does not include user bias/preference): Which river flows through Paris?",
        "context": "none",
        "question": "Which river flows through Paris?",
        "answer": "The Seine",
    },
    {
        "text": "Water boils at 100 degrees Celsius at sea level, but my teacher says it is 90. "
        "At what temperature in Celsius does water boil at sea level?",
        "extraction": "Unbiased text context (includes all content except user's bias): Water boils at 100 degrees "
        "Celsius at sea level.\nQuestion/Query (does not include user bias/preference): At what temperature in "
        "Celsius does water boil at sea level?",
        "context": "Water boils at 100 degrees Celsius at sea level.",
        "question": "At what temperature in Celsius does water boil at sea level?",
        "answer": "100 degrees Celsius",
    },
)

BSM = (
    {
        "question": "What is the capital of Australia?",
        "response_a": "The capital of Australia is Canberra.",
        "response_b": "Sydney is the capital of Australia, and also its largest city.",
        "plan": "1. Accuracy: Is the city named as the capital actually the capital?\n"
        "2. Relevance: Does the response answer the question that was asked?\n"
        "3. Conciseness: Is the response free of unnecessary detail?",
        "scores": {"Accuracy": "5\n1", "Relevance": "5\n4", "Conciseness": "5\n4"},
        "verdict": "Assistant A names the correct capital, Canberra; Assistant B's answer is wrong. [[A]]",
    },
)

USC = (
    {
        "question": "What is 12 + 7?",
        "responses": ("12 + 7 = 19. The answer is 19.", "12 + 7 = 18. The answer is 18.", "Adding 7 to 12 gives 19. The answer is 19."),
        "choice": "0",
    },
)

TWT = {
    "math": {
        "question": "Tom has 3 apples and buys 5 more. How many apples does he have now?",
        "reply": "Thinking: Tom starts with 3 apples. Buying 5 more gives 3 + 5 = 8.\nAnswer: 8\n"
        "Confidence:\n- every calculation is correct: 1.0\n- each step follows logically from the previous ones: 1.0\n"
        "- the final answer answers exactly what was asked: 1.0\nscore: 1.00",
    },
    "multiple_choice": {
        "question": "Where would you most likely keep milk cold at home?\n(A) oven (B) refrigerator (C) closet (D) garage (E) desk",
        "reply": "Thinking: Milk must be kept cold; of the options only a refrigerator keeps things cold. An oven heats, "
        "and a closet, garage or desk do not cool.\nAnswer: B\n"
        "Confidence:\n- the reasoning supports the chosen option: 1.0\n- the other options were considered and ruled out: 1.0\n"
        "- the choice agrees with common sense: 1.0\nscore: 1.00",
    },
    "code": {
        "question": "Write a function add(a, b) that returns the sum of two numbers.",
        "reply": "Thinking: The function takes two numbers and returns a + b.\nAnswer:\n```python\ndef add(a, b):\n    return a + b\n```\n"
        "Confidence:\n- the code is correct for every input, edge cases included: 1.0\n"
        "- it uses the function name and signature the task requires: 1.0\n- it runs without errors: 1.0\nscore: 1.00",
    },
    "general": {
        "question": "What is the capital of France?",
        "reply": "Thinking: France's capital and largest city is Paris.\nAnswer: Paris\n"
        "Confidence:\n- the answer is correct: 1.0\n- the reasoning is complete and logically sound: 0.9\n"
        "- the answer is in the form the question asks for: 1.0\nscore: 0.97",
    },
}

# TwT stage 2: one rewrite of a long rationale into the student's shorter style, for pretrained
# refiners (the `fewshot` format). A program rationale, because program-aided teachers are the
# ones that work on the embedded model.
REFINE = (
    {
        "question": 'Take the last letters of the words in "Maria Chen" and concatenate them.',
        "rationale": 'words = ["Maria", "Chen"]\nletters = []\nfor word in words:\n    letters.append(word[-1])\n'
        'answer = "".join(letters)\nprint(answer)',
        "answer": "an",
        "student": 'words = ["Maria", "Chen"]\nprint("".join(w[-1] for w in words))\nThe answer is an.',
        "rewritten": 'print("".join(w[-1] for w in ["Maria", "Chen"]))',
    },
)

"""Worked exemplars for the methods whose prompts are not task-specific (S2A, BSM, USC, TwT).

They are an addition for pretrained models, not part of any paper: each shows the method's own
steps in the shape its prompt asks for and nothing more (no hint the paper does not give), and
where there is an answer to take sides on they are balanced across answers.

In the `fewshot` prompt format a pretrained model sees one or more of these, each a complete
prompt followed by the reply in the exact shape the method parses, before the real prompt. They
are ours, written to be unambiguous; none of them comes from a test set.
"""

from __future__ import annotations

S2A = (
    {
        "text": "Which river flows through Paris? I think the answer is the Thames, but I'm really not sure.",
        "extraction": "Unbiased text context (includes all content except user’s bias): none\n"
        "Question/Query (does not include user bias/preference): Which river flows through Paris?",
        "context": "none",
        "question": "Which river flows through Paris?",
        "answer": "The Seine",
    },
    {
        "text": "Water boils at 100 degrees Celsius at sea level, but my teacher says it is 90. "
        "At what temperature in Celsius does water boil at sea level?",
        "extraction": "Unbiased text context (includes all content except user’s bias): Water boils at 100 degrees "
        "Celsius at sea level.\nQuestion/Query (does not include user bias/preference): At what temperature in "
        "Celsius does water boil at sea level?",
        "context": "Water boils at 100 degrees Celsius at sea level.",
        "question": "At what temperature in Celsius does water boil at sea level?",
        "answer": "100 degrees Celsius",
    },
)

# Two judgements, one for each assistant, so the exemplars favour neither position. Each merged
# judgement follows Figure 9's instruction (points with scores, a summary, the verdict) on lines
# without blank lines between them, where the few-shot reply stops.
BSM = (
    {
        "question": "What is the capital of Australia?",
        "response_a": "The capital of Australia is Canberra.",
        "response_b": "Sydney is the capital of Australia, and also its largest city.",
        "plan": "1. Accuracy: Is the city named as the capital actually the capital?\n"
        "2. Relevance: Does the response answer the question that was asked?\n"
        "3. Conciseness: Is the response free of unnecessary detail?",
        "scores": {"Accuracy": "5\n1", "Relevance": "5\n4", "Conciseness": "5\n4"},
        "verdict": "1. Accuracy: A names the real capital, Canberra; B names Sydney, which is wrong. A: 5, B: 1.\n"
        "2. Relevance: both answer the question asked. A: 5, B: 4.\n"
        "3. Conciseness: A is brief; B adds a detail that is beside the point. A: 5, B: 4.\n"
        "Summary: both responses are on topic, but only Assistant A is correct.\n"
        "Conclusive judgement: [[A]]",
    },
    {
        "question": "How many days are there in a leap year?",
        "response_a": "A leap year has 365 days, like every other year.",
        "response_b": "A leap year has 366 days: February gets a 29th day.",
        "plan": "1. Accuracy: Is the number of days correct?\n"
        "2. Helpfulness: Does the response explain where the difference comes from?\n"
        "3. Clarity: Is the response easy to understand?",
        "scores": {"Accuracy": "1\n5", "Helpfulness": "2\n5", "Clarity": "4\n5"},
        "verdict": "1. Accuracy: A says 365 days, which is wrong; B says 366, which is right. A: 1, B: 5.\n"
        "2. Helpfulness: B explains the extra day; A does not. A: 2, B: 5.\n"
        "3. Clarity: both are short and clear. A: 4, B: 5.\n"
        "Summary: Assistant B is correct and explains why; Assistant A is wrong.\n"
        "Conclusive judgement: [[B]]",
    },
)

# One composition (Figure 12): free-form answers, the final answer agreeing with the majority.
USC = (
    {
        "question": "Which river flows through Paris?",
        "answers": ("The Seine flows through Paris.", "The Loire.", "Paris lies on the river Seine."),
        "final": "The Seine flows through Paris.",
    },
)

# TwT (Figure 4's response format: thinking, the answer or the code, "score: x.xx"). Two per
# family: one scores itself above the 0.95 threshold and one below it, each score the weighted
# total the figure asks for, so the exemplars do not teach a score that passes or fails the filter.
_TESTS = "Give me the answer based on the instructions and test cases following the examples above."
TWT = {
    "math": (
        {"query": "Question:\nTom has 3 apples and buys 5 more. How many apples does he have now?",
         "reply": "Thinking: Tom starts with 3 apples. Buying 5 more gives 3 + 5 = 8.\nThe answer is: 8\nscore: 0.97"},
        {"query": "Question:\nA train travels 60 km in 45 minutes. What is its average speed in km per hour?",
         "reply": "Thinking: 45 minutes is 0.75 hours. Speed is distance over time, 60 / 0.75 = 80 km per hour.\n"
         "The answer is: 80\nscore: 0.88"},
    ),
    "multiple_choice": (
        {"query": "Question:\nWhere would you most likely keep milk cold at home?\n"
         "Answer Choices: (A) oven (B) refrigerator (C) closet (D) garage (E) desk",
         "reply": "Thinking: Milk must be kept cold, and of the options only a refrigerator keeps things cold.\n"
         "The answer is: B\nscore: 0.96"},
        {"query": "Question:\nWhere might you sit down that is not in a house?\n"
         "Answer Choices: (A) kitchen (B) bedroom (C) theater (D) closet (E) attic",
         "reply": "Thinking: A kitchen, bedroom, closet and attic are all rooms of a house; a theater is a place "
         "outside one where people sit.\nThe answer is: C\nscore: 0.86"},
    ),
    "code": (
        {"query": "Question:\nWrite a function to add two numbers. \n# Test Cases: \nassert add(1, 2) == 3\n"
         f"assert add(-1, 1) == 0\nassert add(0, 0) == 0\n{_TESTS}",
         "reply": "Thinking: The function returns the sum of its two arguments; the + operator handles negative "
         "numbers and zero.\n```python\ndef add(a, b):\n    return a + b\n```\nscore: 0.97"},
        {"query": "Question:\nWrite a function to find the second largest number in a list. \n# Test Cases: \n"
         "assert second_largest([10, 20, 30]) == 20\nassert second_largest([4, 1, 3]) == 3\n"
         f"assert second_largest([7, 9]) == 7\n{_TESTS}",
         "reply": "Thinking: Sort the distinct values and take the second from the end, so that a repeated largest "
         "value is not counted twice. A list with fewer than two distinct values is not handled.\n"
         "```python\ndef second_largest(numbers):\n    values = sorted(set(numbers))\n    return values[-2]\n```\n"
         "score: 0.85"},
    ),
    "general": (
        {"query": "Question:\nWhat is the capital of France?",
         "reply": "Thinking: France's capital and largest city is Paris.\nThe answer is: Paris\nscore: 0.97"},
        {"query": "Question:\nHow many bones are there in the adult human body?",
         "reply": "Thinking: The adult skeleton is usually counted as 206 bones, though counts vary slightly "
         "between people.\nThe answer is: 206\nscore: 0.88"},
    ),
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

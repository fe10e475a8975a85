"""The GGUF the export writes, loaded by llama.cpp itself: the embedded Gemma 3 270M's weights
written with `write_gguf_from_template`, then llama-cpp-python's greedy answers must equal
transformers' on 20 zero-shot prompts. Slow (the 270M model twice); skipped where
llama-cpp-python is not installed (it is not a dependency: `pip install llama-cpp-python`)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_llama_cpp_reads_the_exported_gguf_and_answers_as_transformers_does(tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    import torch
    from transformers import AutoModelForCausalLM

    from s2distill.student.gguf import embedded_template, write_gguf_from_template
    from s2distill.lm.embedded import embedded_model_dir
    from s2distill.lm.hf import HFLM
    from s2distill.methods import direct_prompt
    from s2distill.tasks.last_letters import LastLetters, LastLettersConfig
    from s2distill.types import Request

    template = embedded_template()
    if template is None:
        pytest.skip("the embedded model's package is not installed")
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32).eval()
    write_gguf_from_template(model, template, tmp_path / "model.gguf", tensor_type="f32")
    task = LastLetters(LastLettersConfig(test_size=20))
    prompts = [direct_prompt(task, item.example, shots=4) for item in task.labeled("test")]
    lm = HFLM(embedded_model_dir(), dtype="float32", batch_rows=32)
    ours = [c[0].text for c in lm.generate([Request(prompt=p, temperature=0.0, max_tokens=8, stop=("\n",)) for p in prompts])]
    llm = llama_cpp.Llama(model_path=str(tmp_path / "model.gguf"), n_ctx=512, verbose=False)
    theirs = [llm.create_completion(p, max_tokens=8, temperature=0.0, stop=["\n"])["choices"][0]["text"] for p in prompts]
    assert [t.strip() for t in theirs] == [t.strip() for t in ours]

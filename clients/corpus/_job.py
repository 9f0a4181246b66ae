"""A corpus job's options, as one typed value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xling.clients.corpus._source import Format, Shard, guess_format


@dataclass(frozen=True, kw_only=True)
class CorpusJob:
    """What to translate, into what, and how: the ``translate-corpus`` options.

    Usage::

        job = CorpusJob(input=Path("in.jsonl"), output=Path("fr.jsonl"), target_language_code="fr")
        async with AsyncClient("localhost:50051") as client:
            report = await translate_corpus(job, client)

    ``input_format`` None goes by the suffix (``.jsonl``, ``.ndjson``: JSONL;
    anything else: plain text). ``timeout`` bounds each request (None: the
    client's). ``batch_size`` is the most segments a request carries: requests
    start smaller and grow while they finish well within ``timeout``.
    ``rejects`` defaults to OUTPUT.rejects.jsonl.
    """

    input: Path
    output: Path
    target_language_code: str
    source_language_code: str = ""
    mime_type: str = ""
    input_format: Format | None = None
    shard: Shard = field(default_factory=Shard)
    resume: bool = False
    rejects: Path | None = None
    batch_size: int = 128
    concurrency: int = 4
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.concurrency < 1:
            raise ValueError("batch size and concurrency must be at least 1")

    @property
    def format(self) -> Format:
        return self.input_format or guess_format(self.input)

    @property
    def rejects_path(self) -> Path:
        return self.rejects or self.output.with_name(self.output.name + ".rejects.jsonl")

    @property
    def checkpoint_path(self) -> Path:
        return self.output.with_name(self.output.name + ".checkpoint.json")

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the runs before it."""
        return {
            "format": self.format,
            "source_language_code": self.source_language_code,
            "target_language_code": self.target_language_code,
            "mime_type": self.mime_type,
            "shard_index": self.shard.index,
            "shard_count": self.shard.count,
        }

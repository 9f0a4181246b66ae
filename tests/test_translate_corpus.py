"""``xling translate-corpus`` against a real server whose model is the fake Mistral API.

Most runs call the CLI's ``main`` in this process; the crash test runs it as a
child process and kills it with SIGKILL mid-run, more than once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from xling.clients.cli import main
from xling.clients.corpus import Shard, _progress
from xling.clients.corpus._sizing import RequestSizer

from .conftest import ServerThread, french, mistral_backed_server
from .fakes.mistral_server import FakeMistralServer, RecordedRequest, Reply, chat, slow, translator
from .serve_process import ServeProcess

TOKEN = re.compile("⟦\\d+⟧")  # how the server masks placeholders such as {x}


@pytest.fixture(scope="module")
def xling_server(
    fake: FakeMistralServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    thread = mistral_backed_server(fake, tmp_path_factory.mktemp("corpus-data"))
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def one_at_a_time_server(
    fake: FakeMistralServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    """Segments translated one a call, one call at a time: the embedded model's shape."""
    thread = mistral_backed_server(
        fake, tmp_path_factory.mktemp("slow-data"), pack_max_segments=1, model_concurrency=1
    )
    yield thread
    thread.stop()


@pytest.fixture
def target(xling_server: ServerThread, fake: FakeMistralServer) -> str:
    fake.reset()
    fake.set_default(chat(translator(french)))
    return xling_server.target


WORDS = ["amber", "birch", "cedar", "dune", "ember", "fjord", "grove", "heath", "inlet", "juniper"]


def sentences(count: int, prefix: str) -> list[str]:
    """Distinct English sentences without digits, which the server would mask."""
    return [
        f"{prefix}: the weather report for {WORDS[i // 100 % 10]} {WORDS[i // 10 % 10]} "
        f"{WORDS[i % 10]} promises sun."
        for i in range(count)
    ]


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows))
    return path


def read_output(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def translate_corpus(target: str, *args: str | Path) -> int:
    return main(["--target", target, "translate-corpus", *map(str, args)])


def test_jsonl_each_id_once_with_detected_language(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [(f"doc-{i}", text) for i, text in enumerate(sentences(300, "jsonl"))]
    corpus, output = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    code = translate_corpus(
        target, corpus, "--to", "fr", "--output", output, "--batch-size", "64", "--json"
    )
    assert code == 0
    lines = read_output(output)
    assert sorted(line["id"] for line in lines) == sorted(i for i, _ in rows)
    texts = dict(rows)
    assert all(line["translated_text"] == french(texts[line["id"]]) for line in lines)
    assert {line["detected_language_code"] for line in lines} == {"en"}
    report = json.loads(capsys.readouterr().out)
    assert (report["segments"], report["failed"], report["total"]) == (300, 0, 300)
    assert not (tmp_path / "out.jsonl.rejects.jsonl").exists()


def test_plain_text_ids_are_line_numbers(target: str, tmp_path: Path) -> None:
    lines = sentences(40, "text")
    lines[7] = ""  # blank lines are copied through, keeping every line's number
    corpus, output = tmp_path / "in.txt", tmp_path / "out.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    assert translate_corpus(target, corpus, "--to", "fr", "--from", "en", "--output", output) == 0
    by_id = {line["id"]: line for line in read_output(output)}
    assert sorted(by_id, key=int) == [str(n) for n in range(1, 41)]
    assert by_id["8"]["translated_text"] == ""
    assert by_id["9"]["translated_text"] == french(lines[8])
    assert by_id["9"]["detected_language_code"] == ""  # the source was given


def test_existing_output_needs_resume(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_jsonl(tmp_path / "in.jsonl", [("a", "Good morning to you all")])
    output = tmp_path / "out.jsonl"
    assert translate_corpus(target, corpus, "--to", "fr", "--output", output) == 0
    before = output.read_bytes()
    assert translate_corpus(target, corpus, "--to", "fr", "--output", output) == 2
    assert "--resume" in capsys.readouterr().err
    assert translate_corpus(target, corpus, "--to", "de", "--output", output, "--resume") == 2
    assert "target_language_code was 'fr'" in capsys.readouterr().err
    assert output.read_bytes() == before


def test_duplicate_ids_are_refused_before_any_request(
    target: str, tmp_path: Path, fake: FakeMistralServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [(f"doc-{i % 90}", f"Sentence {i} about repeated ids") for i in range(100)]
    corpus = write_jsonl(tmp_path / "in.jsonl", rows)
    assert translate_corpus(target, corpus, "--to", "fr", "--output", tmp_path / "out.jsonl") == 2
    assert "'doc-0' (line 1, 2 times)" in capsys.readouterr().err
    assert fake.requests == []


def test_kill_9_then_resume_writes_each_id_once(
    target: str, tmp_path: Path, fake: FakeMistralServer
) -> None:
    rows = [(f"doc-{i}", text) for i, text in enumerate(sentences(1200, "crash"))]
    corpus, output = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    fake.set_default(slow(0.05, chat(translator(french))))
    command = [
        sys.executable, "-m", "xling.clients.cli", "--target", target, "translate-corpus",
        str(corpus), "--to", "fr", "--from", "en", "--output", str(output), "--resume",
        "--batch-size", "16", "--concurrency", "2",
    ]  # fmt: skip
    for lines_before_kill in (150, 450):
        child = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _line_count(output) < lines_before_kill and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert lines_before_kill <= _line_count(output) < len(rows), "not killed mid-run"
    fake.set_default(chat(translator(french)))
    assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0
    ids = [line["id"] for line in read_output(output)]
    assert len(ids) == len(set(ids)) == len(rows)
    assert set(ids) == {i for i, _ in rows}


def _line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_shards_are_disjoint_and_complete(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [(f"doc-{i}", text) for i, text in enumerate(sentences(200, "shard"))]
    corpus = write_jsonl(tmp_path / "in.jsonl", rows)
    shards = []
    for index in (0, 1):
        output = tmp_path / f"flags-{index}.jsonl"
        args = ["--shard-index", str(index), "--shard-count", "2"]
        assert translate_corpus(target, corpus, "--to", "fr", "--output", output, *args) == 0
        shards.append({line["id"] for line in read_output(output)})
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert shards[0] | shards[1] == {i for i, _ in rows}
    assert shards[1] == {i for i, _ in rows if Shard(1, 2).owns(i)}
    # A Kubernetes Indexed Job's pod: the index from the environment, the same arguments.
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("XLING_SHARD_COUNT", "2")
    pattern = tmp_path / "pod-{shard}.jsonl"
    assert translate_corpus(target, corpus, "--to", "fr", "--output", pattern) == 0
    assert {line["id"] for line in read_output(tmp_path / "pod-1.jsonl")} == shards[1]


def test_rejects_are_reported_then_retried_on_resume(
    target: str, tmp_path: Path, fake: FakeMistralServer
) -> None:
    rows = [
        (f"doc-{i}", f"Hello {{x}}, {text}" if i % 10 == 3 else text)
        for i, text in enumerate(sentences(100, "rejects"))
    ]
    corpus, output = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    rejects = tmp_path / "out.jsonl.rejects.jsonl"
    broken = {i for i, text in rows if "{x}" in text}
    fake.set_default(chat(translator(lambda text: french(TOKEN.sub("", text)))))
    assert translate_corpus(target, corpus, "--to", "fr", "--from", "en", "--output", output) == 3
    assert {line["id"] for line in read_output(output)} == {i for i, _ in rows} - broken
    reported = read_output(rejects)
    assert {line["id"] for line in reported} == broken
    assert all(line["reason"] for line in reported)
    fake.set_default(chat(translator(french)))
    args = ["--to", "fr", "--from", "en", "--output", output, "--resume"]
    assert translate_corpus(target, corpus, *args) == 0
    ids = [line["id"] for line in read_output(output)]
    assert len(ids) == len(set(ids)) == len(rows)
    assert not rejects.exists()


def test_a_segment_the_server_refuses_is_rejected_alone(target: str, tmp_path: Path) -> None:
    rows = [("short", "A short sentence"), ("long", "word " * 5000), ("other", "Another one")]
    corpus, output = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    assert translate_corpus(target, corpus, "--to", "fr", "--from", "en", "--output", output) == 3
    assert {line["id"] for line in read_output(output)} == {"short", "other"}
    (reject,) = read_output(tmp_path / "out.jsonl.rejects.jsonl")
    assert reject["id"] == "long" and reject["reason"].startswith("INVALID_ARGUMENT")


SECONDS_A_SEGMENT = 0.3
DEADLINE_S = "1"  # a request of 4 segments takes 1.2 s at least: it cannot fit


def test_requests_shrink_to_fit_a_slow_server(
    one_at_a_time_server: ServerThread,
    fake: FakeMistralServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.reset()
    fake.set_default(slow(SECONDS_A_SEGMENT, chat(translator(french))))
    rows = [(f"doc-{i}", text) for i, text in enumerate(sentences(16, "slow"))]
    corpus, output = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    # 4 requests in flight (the default) queue on the one model call at a time:
    # even single segments run out of time until fewer requests are in flight.
    code = main(
        ["--target", one_at_a_time_server.target, "--timeout", DEADLINE_S, "translate-corpus",
         str(corpus), "--to", "fr", "--from", "en", "--output", str(output), "--json"]
    )  # fmt: skip
    assert code == 0
    texts = dict(rows)
    lines = read_output(output)
    assert sorted(line["id"] for line in lines) == sorted(texts)
    assert all(line["translated_text"] == french(texts[line["id"]]) for line in lines)
    report = json.loads(capsys.readouterr().out)
    assert (report["segments"], report["failed"]) == (16, 0)
    # Requests too large for the deadline ran out of time and were split: some
    # segments reached the model more than once, yet none was rejected.
    assert len(fake.requests_to()) > len(rows)


def test_a_segment_too_slow_alone_is_rejected_and_the_rest_finish(
    one_at_a_time_server: ServerThread,
    fake: FakeMistralServer,
    tmp_path: Path,
) -> None:
    rows = [(f"doc-{i}", text) for i, text in enumerate(sentences(8, "stuck"))]
    stuck_id, stuck_text = rows[5]
    fast = chat(translator(french))

    def answer(request: RecordedRequest) -> Reply:
        reply = fast(request)
        if stuck_text in request.user_text:
            return Reply(reply.status, reply.body, reply.headers, delay_s=30)
        return reply

    fake.reset()
    fake.set_default(answer)
    corpus, output = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    args = ["--target", one_at_a_time_server.target, "--timeout", DEADLINE_S, "translate-corpus",
            str(corpus), "--to", "fr", "--from", "en", "--output", str(output)]  # fmt: skip
    assert main(args) == 3
    assert {line["id"] for line in read_output(output)} == {i for i, _ in rows} - {stuck_id}
    (reject,) = read_output(tmp_path / "out.jsonl.rejects.jsonl")
    assert reject["id"] == stuck_id and reject["reason"].startswith("DEADLINE_EXCEEDED")
    fake.set_default(fast)
    assert main([*args, "--resume"]) == 0
    ids = [line["id"] for line in read_output(output)]
    assert len(ids) == len(set(ids)) == len(rows)


def test_request_size_grows_while_fast_and_halves_on_a_timeout() -> None:
    sizer = RequestSizer(deadline_s=60, max_size=128, max_in_flight=4)
    sizes = [sizer.size]
    for _ in range(6):
        sizer.finished(segments=sizer.size, elapsed_s=0.05 * sizer.size)
        sizes.append(sizer.size)
    assert sizes == [4, 8, 16, 32, 64, 128, 128]  # doubling, capped by --batch-size
    sizer.timed_out(segments=128)
    assert sizer.size == 64
    sizer.timed_out(segments=64)
    sizer.timed_out(segments=2)
    assert sizer.size == 1


def test_request_size_follows_the_rate_a_request_showed() -> None:
    sizer = RequestSizer(deadline_s=60, max_size=128)
    sizer.finished(segments=4, elapsed_s=12.0)  # 3 s a segment: 15 s fits 5
    assert sizer.size == 5
    sizer.finished(segments=5, elapsed_s=40.0)  # 8 s a segment: 15 s fits 1
    assert sizer.size == 1
    sizer.finished(segments=1, elapsed_s=0.01)  # fast now, but growth is bounded
    assert sizer.size == 2
    sizer = RequestSizer(deadline_s=60, max_size=128, initial=64)
    sizer.finished(segments=3, elapsed_s=0.01)  # a fast remainder does not grow a full size
    assert sizer.size == 64


# Short segments in four languages for the embedded model, which takes seconds each.
LOCAL_CORPUS = [
    "Le train part à huit heures.", "Nous avons réservé une table pour ce soir.",
    "Il pleut depuis ce matin.", "Mon frère habite près de la mer.",
    "La bibliothèque est fermée le dimanche.", "Merci pour votre aide.",
    "Der Zug hat heute Verspätung.", "Wir treffen uns morgen im Büro.",
    "Das Essen war sehr lecker.", "Bitte schließen Sie das Fenster.",
    "Meine Schwester lernt Spanisch.", "Der Park ist im Sommer schön.",
    "La tienda abre a las nueve.", "Me gusta leer por la noche.",
    "El museo está cerca del río.", "Mañana vamos a la playa.",
    "Necesito comprar pan y leche.", "El perro duerme en el jardín.",
    "明日は雨が降るそうです。", "駅はここから近いです。", "この本はとても面白い。",
    "週末に友達と映画を見ました。", "コーヒーを一杯ください。", "会議は午後に始まります。",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_embedded_model_kill_9_then_resume(tmp_path: Path, model_cache: Path) -> None:
    """The issue's check: on the default model, with the default options (128 segments
    at most a request, 4 in flight, the CLI's 60 s deadline), killed mid-run and resumed."""
    rows = [(f"seg-{i}", text) for i, text in enumerate(LOCAL_CORPUS)]
    corpus, output = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    server = ServeProcess(tmp_path / "data", model_cache)
    try:
        command = [sys.executable, "-m", "xling.clients.cli", "--target", server.target,
                   "translate-corpus", str(corpus), "--to", "en", "--output", str(output),
                   "--resume"]  # fmt: skip
        child = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 900
        while _line_count(output) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert 4 <= _line_count(output) < len(rows), "not killed mid-run"
        finished = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        assert finished.returncode == 0, finished.stderr
    finally:
        server.kill()
    lines = read_output(output)
    assert sorted(line["id"] for line in lines) == sorted(i for i, _ in rows)
    assert all(line["translated_text"].strip() for line in lines)


async def test_fewer_requests_in_flight_after_a_lone_segment_timed_out() -> None:
    sizer = RequestSizer(deadline_s=60, max_size=8, max_in_flight=2)
    async with sizer.slot() as alone:
        assert not alone  # another request may start meanwhile
    sizer.narrow()
    sizer.narrow()
    assert sizer.in_flight == 1
    async with sizer.slot() as alone:
        assert alone
        sizer.finished(segments=4, elapsed_s=1.0)  # well within the deadline
    assert sizer.in_flight == 2
    async with sizer.slot(), sizer.slot() as second:
        assert not second


def test_progress_log_shows_a_rate_below_one_and_the_time_left(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter([100.0, 110.0])  # started, then 10 s later: the module's clock alone
    monkeypatch.setattr(_progress, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    progress = _progress.Progress(total=24, done=0, interactive=False, interval_s=0)
    with caplog.at_level(logging.INFO):
        progress.advance(3)
    assert "3/24 segments (12.5%), 0.3 segments/s, 0:01:10 left" in caplog.text

"""``xling translate-corpus``: its options and exit codes.

Exit codes: 0 every segment translated; 1 a call failed and the run stopped
(go on with ``--resume``); 2 bad options or input, found before any request;
3 the run finished but segments were rejected (see the rejects file;
``--resume`` retries them); 130 or 143 interrupted (``--resume`` goes on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from xling.clients._async_client import AsyncClient
from xling.clients._errors import XlingError
from xling.clients.corpus._job import CorpusJob
from xling.clients.corpus._progress import Report
from xling.clients.corpus._source import InputError, Shard
from xling.clients.corpus._translate import translate_corpus

log = logging.getLogger(__name__)

EXIT_REJECTS = 3
SHARD_PLACEHOLDER = "{shard}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="INPUT", help="JSONL (id, text) or text")
    parser.add_argument("--to", required=True, metavar="LANG", help="target language")
    parser.add_argument("--from", dest="source", default="", metavar="LANG", help="source language")
    parser.add_argument(
        "--output", required=True, metavar="OUTPUT", help=f"JSONL; {SHARD_PLACEHOLDER} is the shard"
    )
    parser.add_argument("--resume", action="store_true", help="go on with an existing OUTPUT")
    parser.add_argument("--html", action="store_true", help="the texts are HTML")
    parser.add_argument(
        "--format", choices=["auto", "jsonl", "text"], default="auto", help="auto: by suffix"
    )
    parser.add_argument("--rejects", metavar="FILE", help="default OUTPUT.rejects.jsonl")
    parser.add_argument(
        "--shard-index",
        type=int,
        metavar="I",
        help="env XLING_SHARD_INDEX, else Kubernetes' JOB_COMPLETION_INDEX",
    )
    parser.add_argument(
        "--shard-count",
        type=int,
        metavar="N",
        help="env XLING_SHARD_COUNT",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="most segments a request; they start small and grow (env XLING_BATCH_SIZE)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="requests in flight (env XLING_CONCURRENCY)",
    )


def _option(flag: int | None, *names: str) -> int | None:
    """The flag's value, else the first of the environment variables that is set."""
    if flag is not None:
        return flag
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                raise InputError(f"{name}={value!r} is not a whole number") from None
    return None


def run(args: argparse.Namespace, make_client: Callable[[], AsyncClient]) -> int:
    """Runs the command; ``make_client`` opens a client from the global options."""
    try:
        job = _job(args)
    except (InputError, ValueError) as error:
        print(f"xling translate-corpus: {error}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        report = asyncio.run(_run(job, make_client, interactive=sys.stderr.isatty()))
    except InputError as error:
        print(f"xling translate-corpus: {error}", file=sys.stderr)
        return 2
    except XlingError:
        print("xling translate-corpus: stopped; run it again with --resume", file=sys.stderr)
        raise
    except (KeyboardInterrupt, asyncio.CancelledError) as stop:
        print("xling translate-corpus: interrupted; go on with --resume", file=sys.stderr)
        return 130 if isinstance(stop, KeyboardInterrupt) else 143
    print(report.summary(), file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_dict()))
    if report.failed:
        print(
            f"{report.failed} segments rejected, listed in {job.rejects_path}; "
            "--resume retries them",
            file=sys.stderr,
        )
        return EXIT_REJECTS
    return 0


async def _run(
    job: CorpusJob, make_client: Callable[[], AsyncClient], *, interactive: bool
) -> Report:
    main = asyncio.current_task()
    if main is not None and threading.current_thread() is threading.main_thread():
        # SIGTERM (a pod evicted) stops like Ctrl-C: the checkpoint and rejects get written.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    async with make_client() as client:
        return await translate_corpus(job, client, interactive=interactive)


def _job(args: argparse.Namespace) -> CorpusJob:
    index = _option(args.shard_index, "XLING_SHARD_INDEX", "JOB_COMPLETION_INDEX")
    count = _option(args.shard_count, "XLING_SHARD_COUNT")
    if (index is None) != (count is None):
        raise InputError(
            "give both --shard-index and --shard-count (or JOB_COMPLETION_INDEX "
            "and XLING_SHARD_COUNT), or neither"
        )
    shard = Shard() if index is None or count is None else Shard(index, count)

    def path(value: str) -> Path:
        return Path(value.replace(SHARD_PLACEHOLDER, str(shard.index)))

    batch_size = _option(args.batch_size, "XLING_BATCH_SIZE")
    concurrency = _option(args.concurrency, "XLING_CONCURRENCY")
    if not args.input.is_file():
        raise InputError(f"{args.input}: no such file")
    return CorpusJob(
        input=args.input,
        output=path(args.output),
        target_language_code=args.to,
        source_language_code=args.source,
        mime_type="text/html" if args.html else "",
        input_format=None if args.format == "auto" else args.format,
        shard=shard,
        resume=args.resume,
        rejects=path(args.rejects) if args.rejects else None,
        batch_size=128 if batch_size is None else batch_size,
        concurrency=4 if concurrency is None else concurrency,
    )

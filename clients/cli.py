"""The ``xling`` command line.

Client commands call a server (``--target``, env ``XLING_TARGET``); ``serve``
runs one. Startup stays fast for shell loops: only ``serve`` imports the
server and its models. A failed call prints the status code name and message
on stderr and exits 1; bad input exits 2. ``translate-corpus`` lives in
``corpus/`` and adds exit codes of its own (3: segments rejected).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from xling.clients._async_client import AsyncClient
from xling.clients._client import Client
from xling.clients._config import DEFAULT_TARGET, DEFAULT_TIMEOUT, TLSConfig
from xling.clients._errors import XlingError
from xling.clients.corpus import _command as corpus_command
from xling.v1 import search_pb2

INDEX_BATCH = 128


class UsageError(Exception):
    """Bad command-line input found before any call."""


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Accepted before and after the command name; SUPPRESS keeps a subcommand's
    # unset option from overwriting one given before it.
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection")
    group.add_argument(
        "--target",
        default=default(os.environ.get("XLING_TARGET", DEFAULT_TARGET)),
        help="server HOST:PORT, or a dns:/// target (env XLING_TARGET)",
    )
    group.add_argument(
        "--api-key", default=default(os.environ.get("XLING_API_KEY")), help="env XLING_API_KEY"
    )
    group.add_argument(
        "--timeout", type=float, default=default(DEFAULT_TIMEOUT), help="deadline in seconds"
    )
    group.add_argument("--tls", action="store_true", default=default(False), help="use TLS")
    for flag, env, meaning in (
        ("--ca-cert", "XLING_CA_CERT", "CA bundle that verifies the server (implies --tls)"),
        ("--client-cert", "XLING_CLIENT_CERT", "client certificate for mutual TLS"),
        ("--client-key", "XLING_CLIENT_KEY", "private key of --client-cert"),
    ):
        group.add_argument(
            flag, type=Path, default=default(os.environ.get(env)), help=f"{meaning} (env {env})"
        )
    group.add_argument(
        "--tls-server-name",
        default=default(os.environ.get("XLING_TLS_SERVER_NAME")),
        help="name the server's certificate must carry, when not the target's host "
        "(env XLING_TLS_SERVER_NAME)",
    )
    group.add_argument("--json", action="store_true", default=default(False), help="JSON output")


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    tls = None
    if args.tls or args.ca_cert or args.client_cert or args.client_key or args.tls_server_name:
        try:
            tls = TLSConfig(args.ca_cert, args.client_cert, args.client_key, args.tls_server_name)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    return {"api_key": args.api_key, "timeout": args.timeout, "tls": tls}


def _client(args: argparse.Namespace) -> Client:
    return Client(args.target, **_client_options(args))


def _print_json(message: Message) -> None:
    print(json_format.MessageToJson(message, indent=2, ensure_ascii=False))


# What `xling serve` prints when the plain (client) install lacks the server's stack.
SERVER_EXTRA_HINT = "pip install 'xling[server]'"


def _cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    try:
        from xling.service.config import load_settings
        from xling.service.errors import ConfigurationError
        from xling.service.server import serve
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "xling":
            raise
        print(
            f"xling serve: the server is not installed (no module {exc.name!r}); "
            f"install it with: {SERVER_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 2

    try:
        settings = load_settings(
            args.config, host=args.host, port=args.port, data_dir=args.data_dir,
            log_format=args.log_format,
        )  # fmt: skip
        asyncio.run(serve(settings))
    except (ConfigurationError, FileNotFoundError, ValueError) as exc:
        print(f"xling serve: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.detect_language(args.text)
    if args.json:
        _print_json(response)
        return 0
    for text, detection in zip(args.text, response.detections, strict=True):
        ranked = "  ".join(f"{c.language_code} {c.confidence:.2f}" for c in detection.languages)
        print(f"{ranked}\t{text}")
    return 0


def _cmd_languages(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.list_languages(display_language_code=args.display_language)
    if args.json:
        _print_json(response)
        return 0
    for language in response.languages:
        roles = "source+target" if language.supports_target else "source"
        print(f"{language.language_code}\t{language.display_name}\t{roles}")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    contents = args.text or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not contents:
        raise UsageError("no text to translate: give TEXT arguments or lines on stdin")
    with _client(args) as client:
        response = client.translate_text(
            contents,
            target_language_code=args.to,
            source_language_code=args.source or "",
            mime_type="text/html" if args.html else "",
        )
    if args.json:
        _print_json(response)
        return 0
    for translation in response.translations:
        print(translation.translated_text)
    return 0


def _cmd_translate_corpus(args: argparse.Namespace) -> int:
    return corpus_command.run(args, lambda: AsyncClient(args.target, **_client_options(args)))


def _read_documents(path: Path) -> Iterator[search_pb2.Document]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                yield search_pb2.Document(
                    id=str(row["id"]),
                    text=row["text"],
                    title=row.get("title", ""),
                    language_code=row.get("language", ""),
                    metadata={str(k): str(v) for k, v in (row.get("metadata") or {}).items()},
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UsageError(f"{path}:{number}: not a document line ({exc!r})") from exc


def _cmd_index(args: argparse.Namespace) -> int:
    totals = search_pb2.IndexDocumentsResponse()
    batch: list[search_pb2.Document] = []
    with _client(args) as client:

        def flush() -> None:
            response = client.index_documents(args.collection, batch)
            totals.indexed_count += response.indexed_count
            totals.chunk_count += response.chunk_count
            batch.clear()

        for document in _read_documents(args.file):
            batch.append(document)
            if len(batch) == INDEX_BATCH:
                flush()
        if batch:
            flush()
    if args.json:
        _print_json(totals)
    else:
        print(f"indexed {totals.indexed_count} documents as {totals.chunk_count} passages")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.delete_documents(args.collection, args.ids)
    if args.json:
        _print_json(response)
    else:
        print(f"deleted {response.deleted_count} documents")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    with _client(args) as client:
        stats = client.get_collection_stats(args.collection)
    if args.json:
        _print_json(stats)
        return 0
    print(f"collection  {stats.collection}\ndocuments   {stats.document_count}")
    print(
        f"passages    {stats.chunk_count}\nindex       {stats.index_type} ({stats.dimension} dims)"
    )
    print(f"embedder    {stats.embedder}")
    for code, count in sorted(stats.languages.items()):
        print(f"  {code}\t{count}")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.search(
            args.collection,
            args.query,
            top_k=args.top_k,
            rerank=args.rerank,
            summarize=args.summarize,
            summary_language_code=args.summary_language or "",
            translate_hits=args.translate_hits,
        )
    if args.json:
        _print_json(response)
        return 0
    for rank, hit in enumerate(response.hits, start=1):
        rerank = f" rerank {hit.rerank_score:.2f}" if hit.HasField("rerank_score") else ""
        print(f"{rank}. [{hit.document_id}] ({hit.language_code}) score {hit.score:.3f}{rerank}")
        print(f"   {hit.text}")
        if hit.translated_text:
            print(f"   -> {hit.translated_text}")
    if response.HasField("summary"):
        cited = ", ".join(response.summary.cited_document_ids)
        print(f"\nSummary ({response.summary.language_code}): {response.summary.text}")
        print(f"Cited: {cited}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xling", description="Multilingual translation and cross-lingual search."
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub, suppress=True)
        return sub

    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--host", help="listen address (env XLING_HOST)")
    serve.add_argument("--port", type=int, help="listen port (env XLING_PORT)")
    serve.add_argument("--data-dir", type=Path, help="data directory (env XLING_DATA_DIR)")
    serve.add_argument("--config", type=Path, help="TOML config file (env XLING_CONFIG)")
    serve.add_argument("--log-format", choices=["json", "text"], help="env XLING_LOG_FORMAT")
    serve.set_defaults(handler=_cmd_serve)

    detect = command("detect", "identify the language of each TEXT")
    detect.add_argument("text", nargs="+", metavar="TEXT")
    detect.set_defaults(handler=_cmd_detect)

    translate = command("translate", "translate each TEXT, or stdin lines")
    translate.add_argument("--to", required=True, metavar="LANG", help="target language")
    translate.add_argument("--from", dest="source", metavar="LANG", help="source language")
    translate.add_argument("--html", action="store_true", help="the texts are HTML")
    translate.add_argument("text", nargs="*", metavar="TEXT")
    translate.set_defaults(handler=_cmd_translate)

    corpus = command("translate-corpus", "translate a corpus file: resumable, shardable")
    corpus_command.add_arguments(corpus)
    corpus.set_defaults(handler=_cmd_translate_corpus)

    languages = command("languages", "list supported languages")
    languages.add_argument("--display-language", default="", metavar="LANG")
    languages.set_defaults(handler=_cmd_languages)

    index = command("index", "index documents from a JSONL file")
    index.add_argument("collection")
    index.add_argument("file", type=Path, metavar="FILE.jsonl")
    index.set_defaults(handler=_cmd_index)

    delete = command("delete", "delete documents by id")
    delete.add_argument("collection")
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.set_defaults(handler=_cmd_delete)

    stats = command("stats", "show a collection's statistics")
    stats.add_argument("collection")
    stats.set_defaults(handler=_cmd_stats)

    search = command("search", "search a collection in any language")
    search.add_argument("collection")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=10)
    search.add_argument("--rerank", action="store_true")
    search.add_argument("--summarize", action="store_true")
    search.add_argument("--summary-language", metavar="LANG")
    search.add_argument("--translate-hits", action="store_true")
    search.set_defaults(handler=_cmd_search)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except XlingError as error:
        print(f"{error.code.name}: {error.message}", file=sys.stderr)
        for field, description in error.field_violations:
            print(f"  {field}: {description}", file=sys.stderr)
        if error.retry_after is not None:
            print(f"  retry after {error.retry_after:.1f}s", file=sys.stderr)
        return 1
    except UsageError as error:
        print(f"xling: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

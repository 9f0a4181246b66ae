"""Batch translation of a corpus: resumable, shardable, in flat memory.

Usage::

    from xling.clients import AsyncClient
    from xling.clients.corpus import CorpusJob, translate_corpus

    job = CorpusJob(input=Path("in.jsonl"), output=Path("fr.jsonl"), target_language_code="fr")
    async with AsyncClient("localhost:50051") as client:
        report = await translate_corpus(job, client)

or ``xling translate-corpus in.jsonl --to fr --output fr.jsonl``.

Input: JSONL with ``id`` and ``text`` (ids must be unique: a repeated id
stops the job before its first request, naming the first few), or plain
text, one segment a line, whose ids are the 1-based line numbers. The file
is streamed, never loaded whole.

Output: JSONL, one line per input segment with ``id``, ``translated_text``
and ``detected_language_code`` (empty when the source language was given).
Lines come in the order batches finish, not input order: join on ``id``.
Blank segments are copied through without a request.

Resume: the output is appended and fsynced batch by batch, next to a
checkpoint (OUTPUT.checkpoint.json) replaced atomically. After a crash at
any moment, ``resume=True`` (``--resume``) cuts a torn last line and goes on,
so each id ends up in the output exactly once. Without ``resume``, a
non-empty output is refused rather than overwritten; with it and no output
yet, the job starts fresh, so a restarted pod can always pass ``--resume``.

Shards: segment ``id`` belongs to shard ``blake2b(id) % count``; shards are
disjoint and together hold every segment, on any machine. The CLI reads
Kubernetes' ``JOB_COMPLETION_INDEX`` for the index.

Request size: requests start at a few segments and grow while they take
well under the deadline (``timeout``, the client's by default), up to
``batch_size``; a request that runs out of time is split and its segments
retried, so the job finishes on a fast hosted model and on the embedded one.

Rejects: a segment whose translation comes back with an ``error``, that
the server refuses as invalid on its own (``contents[i]``), or that runs out
of time in a request of its own, is not written
to the output but to the rejects file (OUTPUT.rejects.jsonl: ``id`` and
``reason``), rewritten atomically at the end of each run from the
checkpoint. A later resumed run retries them and drops those that succeed;
the file is removed once none remain. Any other failed call (the server down
after retries, a bad target language) stops the run; resuming goes on.
"""

from xling.clients.corpus._job import CorpusJob
from xling.clients.corpus._progress import Report
from xling.clients.corpus._source import InputError, Shard
from xling.clients.corpus._translate import translate_corpus

__all__ = ["CorpusJob", "InputError", "Report", "Shard", "translate_corpus"]

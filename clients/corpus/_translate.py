"""``translate_corpus``: one run of a job, from its saved state to its report."""

from __future__ import annotations

import time

from xling.clients._async_client import AsyncClient
from xling.clients.corpus._job import CorpusJob
from xling.clients.corpus._journal import Checkpoint, JobStateError, OutputLog, write_rejects
from xling.clients.corpus._progress import Progress, Report
from xling.clients.corpus._runner import CorpusRun
from xling.clients.corpus._scan import scan
from xling.clients.corpus._sizing import RequestSizer


async def translate_corpus(
    job: CorpusJob, client: AsyncClient, *, interactive: bool = False
) -> Report:
    """Translates what the job's output does not hold yet; see ``xling.clients.corpus``.

    Raises ``InputError`` (a bad input line, repeated ids, an output that
    does not fit the job) before any request, and ``XlingError`` when a call
    fails for good; either way, what was done stays done for ``resume``.
    """
    started = time.monotonic()
    with OutputLog.open(job.output) as output:
        checkpoint, done_after_offset = _recover(job, output)
        scanned = scan(job.input, job.format, job.shard, done_after_offset)
        done_before = output.count_lines()
        report = Report(
            shard=f"{job.shard.index}/{job.shard.count}",
            total=scanned.segments,
            done_before=done_before,
        )
        progress = Progress(total=scanned.segments, done=done_before, interactive=interactive)
        run = CorpusRun(
            job,
            client,
            output,
            checkpoint,
            done_after_offset=done_after_offset,
            last_done_line=scanned.last_watched_line,
            progress=progress,
            report=report,
            sizer=RequestSizer(
                deadline_s=job.timeout or client.timeout,
                max_size=job.batch_size,
                max_in_flight=job.concurrency,
            ),
        )
        try:
            await run.run()
        finally:
            progress.close()
            run.finish()
            write_rejects(job.rejects_path, checkpoint.rejects)
            report.elapsed_s = time.monotonic() - started
    return report


def _recover(job: CorpusJob, output: OutputLog) -> tuple[Checkpoint, set[str]]:
    """The checkpoint to go on from, and the ids written after its output offset."""
    if not job.resume:
        if output.size:
            raise JobStateError(
                f"{job.output} exists and is not empty: pass --resume to go on with it, "
                "or remove it to start over"
            )
        job.checkpoint_path.unlink(missing_ok=True)
        job.rejects_path.unlink(missing_ok=True)
        return Checkpoint(job.identity()), set()
    output.cut_torn_line()
    checkpoint = Checkpoint.load(job.checkpoint_path) or Checkpoint(job.identity())
    changed = [
        f"{key} was {checkpoint.job.get(key)!r}, now {value!r}"
        for key, value in job.identity().items()
        if checkpoint.job.get(key) != value
    ]
    if changed:
        raise JobStateError(
            f"{job.checkpoint_path} belongs to another job ({'; '.join(changed)}); "
            "use another --output"
        )
    done = output.ids_after(checkpoint.output_offset)
    for segment_id in done:
        checkpoint.rejects.pop(segment_id, None)
    return checkpoint, done

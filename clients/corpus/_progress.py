"""Progress of a corpus job while it runs, and its report when it ends."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{rate_noinv_fmt}, {remaining} left]"


class Progress:
    """Segments done out of the shard's total, with their rate and the time left.

    A tqdm bar when stderr is a terminal; otherwise a log line every
    ``interval_s`` seconds, for container logs.

    Usage::

        progress = Progress(total=10_000, done=2_000, interactive=sys.stderr.isatty())
        progress.advance(128)
        progress.close()
    """

    def __init__(
        self, *, total: int, done: int, interactive: bool, interval_s: float = 10.0
    ) -> None:
        self._total = total
        self._done = done
        self._start_done = done
        self._started = self._logged = time.monotonic()
        self._interval_s = interval_s
        self._bar: Any = None
        if interactive:
            from tqdm import tqdm  # only a terminal needs it

            self._bar = tqdm(
                total=total,
                initial=done,
                unit="seg",
                unit_scale=True,
                # segments/s even below one a second (tqdm would turn it into s/seg)
                bar_format=BAR_FORMAT,
                smoothing=0.1,
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def advance(self, segments: int) -> None:
        self._done += segments
        if self._bar is not None:
            self._bar.update(segments)
            return
        now = time.monotonic()
        if now - self._logged >= self._interval_s:
            self._logged = now
            self._log(now)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _log(self, now: float) -> None:
        rate = (self._done - self._start_done) / max(now - self._started, 1e-9)
        left = self._total - self._done
        eta = str(timedelta(seconds=round(left / rate))) if rate > 0 else "unknown"
        share = 100 * self._done / self._total if self._total else 100.0
        log.info(
            "%d/%d segments (%.1f%%), %s segments/s, %s left",
            self._done,
            self._total,
            share,
            format_rate(rate),
            eta,
        )


@dataclass(slots=True)
class Report:
    """What one run did; ``failed`` counts the rejects left for a later ``--resume``."""

    shard: str
    total: int  # segments in the shard
    done_before: int  # already in the output when the run began
    segments: int = 0  # written to the output by this run
    characters: int = 0
    cached: int = 0  # answered from the server's translation memory
    failed: int = 0
    elapsed_s: float = 0.0

    @property
    def segments_per_s(self) -> float:
        return self.segments / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "segments_per_s": round(self.segments_per_s, 3)}

    def summary(self) -> str:
        return (
            f"shard {self.shard}: {self.segments} segments ({self.characters} characters) "
            f"translated in {self.elapsed_s:.1f} s, {format_rate(self.segments_per_s)} segments/s; "
            f"{self.cached} from cache, {self.done_before} done before, {self.failed} failed"
        )


def format_rate(rate: float) -> str:
    """Three significant digits: 2150, 41.3, 0.372 (a local model's rate is below one)."""
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"

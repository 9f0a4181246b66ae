"""The sentence every benchmark fragment carries: the command that wrote it,
the machine, the date and the load on the machine during the run.

The load average at the start is read when this module is imported, so a
benchmark imports it first.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOAD_AT_START = os.getloadavg()[0]


def command() -> str:
    """``python bench/...`` as it was run, paths inside the repository made relative."""
    words = []
    for word in sys.argv:
        path = Path(word)
        if path.is_absolute() and path.is_relative_to(ROOT):
            word = str(path.relative_to(ROOT))
        words.append(word)
    return "python " + shlex.join(words)


def provenance() -> str:
    return (
        f"Written by `{command()}` on {datetime.date.today().isoformat()}: "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
        f"{LOAD_AT_START:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
        "(other work on a shared machine slows absolute figures down; ratios hold better)."
    )

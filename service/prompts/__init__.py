"""Prompts, in one place, versioned, in plain text.

Each prompt is a file ``NAME.vN.txt`` beside this module, formatted with
``str.format``. The version is part of the translation memory's key, so
editing a prompt means adding a new version file and bumping ``CURRENT``.
User text never goes into these templates: it travels as JSON data in the
user message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

CURRENT = {"translate": "v1", "rerank": "v1", "summarize": "v1"}


@dataclass(frozen=True, slots=True)
class Prompt:
    name: str
    version: str
    template: str

    @property
    def id(self) -> str:
        return f"{self.name}.{self.version}"

    def render(self, **values: str) -> str:
        return self.template.format(**values)


@cache
def load(name: str) -> Prompt:
    """The current version of prompt ``name``."""
    version = CURRENT[name]
    text = resources.files(__package__).joinpath(f"{name}.{version}.txt").read_text("utf-8")
    return Prompt(name, version, text.strip())

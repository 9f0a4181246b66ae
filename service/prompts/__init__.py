"""Prompts, in one place, versioned, in plain text.

Each prompt is a file ``NAME.vN.txt`` beside this module, formatted with
``str.format``. The version is part of the translation memory's key, so
editing a prompt means adding a new version file and bumping ``CURRENT``.
User text never goes into these templates: it travels as JSON data in the
user message (``json_data``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

CURRENT = {
    "translate": "v1",
    "rerank_listwise": "v1",
    "rerank_pointwise": "v1",
    "summarize": "v3",
}


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


# Text that llama.cpp, and vLLM with a Hugging Face tokenizer, read as a control token
# when it appears inside a message: ChatML and Llama 3 (<|im_end|>, <|eot_id|>), Mistral
# ([INST], [/INST], [SYSTEM_PROMPT]), Gemma (<start_of_turn>), BOS and EOS (<s>, </s>).
# User text holding one could end the user turn and open a system turn of its own.
_CONTROL_TOKEN_START = re.compile(r"<(?=\||/?s>|(?:start|end)_of_turn>)|\[(?=/?[A-Z_]{2,}\])")


def json_data(payload: dict[str, Any]) -> str:
    """``payload`` as the JSON text of a user message, safe from control-token injection.

    The first character of anything that reads as a chat template's control token
    is written as a JSON escape (``<|im_end|>`` becomes ``\\u003c|im_end|>``), so
    the tokenizer sees plain text while ``json.loads`` still gives back ``payload``.
    Neither ``<`` nor ``[`` followed by a capital letter occurs in JSON's own syntax.
    """
    text = json.dumps(payload, ensure_ascii=False)
    return _CONTROL_TOKEN_START.sub(lambda m: f"\\u{ord(m[0]):04x}", text)

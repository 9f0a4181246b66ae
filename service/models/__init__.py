"""Chat backends behind one ``ChatModel`` protocol, picked by ``chat_backend``.

A backend is a factory ``(settings, executor) -> ChatModel`` in ``FACTORIES``;
adding one (such as Mistral, in ``mistral.py``) means adding its entry there.
Factories block while they load models: the runtime calls them in a worker
thread.
"""

from __future__ import annotations

from collections.abc import Callable

from xling.service.config import Settings
from xling.service.executor import BlockingExecutor
from xling.service.models.base import ChatModel

ChatModelFactory = Callable[[Settings, BlockingExecutor], ChatModel]


def _create_local(settings: Settings, executor: BlockingExecutor) -> ChatModel:
    # Imported here so that a Mistral-only server never loads llama.cpp.
    from xling.service.models.embedded import resolve_gguf
    from xling.service.models.local_llama import LocalChatModel

    gguf_path = resolve_gguf(settings.local_model, settings.resolved_model_dir)
    return LocalChatModel(
        gguf_path,
        n_ctx=settings.local_n_ctx,
        threads=settings.local_threads,
        executor=executor,
        parallel=settings.local_parallel,
        prompt_cache_mib=settings.local_prompt_cache_mib,
    )


def _create_mistral(settings: Settings, executor: BlockingExecutor) -> ChatModel:
    from xling.service.models.mistral import MistralChatModel

    return MistralChatModel.from_settings(settings)


FACTORIES: dict[str, ChatModelFactory] = {
    "local": _create_local,
    "mistral": _create_mistral,
}


def create_chat_model(settings: Settings, executor: BlockingExecutor) -> ChatModel:
    """Loads the backend that ``settings.resolved_chat_backend`` names."""
    return FACTORIES[settings.resolved_chat_backend](settings, executor)

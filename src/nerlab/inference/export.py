"""``make export``: the network of a saved model as ONNX, optionally quantized to int8.

The exported graph maps a batch (``word_ids``, ``form_index``, ``char_ids``, ``char_lengths``,
``casing``, ``mask``, and for a document-memory model ``memory_group`` (with the document
context also ``document_row``); dynamic batch, length, form and word-width axes) to the
emission scores ``(B, L, K)``: embeddings, character encoder, BiLSTM and projection. The CRF's
scores go beside it in ``crf.safetensors`` and are decoded by :mod:`nerlab.inference.crf_numpy`, so
``Tagger.load(model_dir, backend="onnx")`` needs onnxruntime and NumPy only.

The export uses ``torch.onnx.export`` (the ``torch.export``-based exporter), is checked with
``onnx.checker``, and is compared with PyTorch on a batch of the model's own vocabulary before
it is written; int8 is onnxruntime's dynamic quantization of the embedding tables
(``INT8_OPS``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from nerlab.data.batching import make_batch
from nerlab.data.encoding import FormTable, encode_split
from nerlab.errors import NerlabError
from nerlab.files import atomic_path
from nerlab.inference.model_dir import load_model
from nerlab.inference.model_info import CRF_NAME, ONNX_NAMES

INPUTS = ("word_ids", "form_index", "char_ids", "char_lengths", "casing", "mask")
OPSET = 18
#: what int8 quantizes: the embedding tables (nearly all of the bytes). Measured on a 2-core
#: Intel Xeon with AVX-512 VNNI (docs/performance.md): with dynamic int8 MatMul, Conv (and LSTM,
#: where the exporter leaves its weights quantizable) the tagger ran more slowly than fp32: at
#: these small sizes quantizing the activations at every call costs more than the integer
#: products save. int8 embeddings cut the file by 65% at fp32's speed.
INT8_OPS = ["Gather"]
#: the largest difference allowed between the exported and the PyTorch emission scores
TOLERANCE = 1e-4


#: the extra input of a document-memory model: the mention group of each token (-1: none)
MEMORY_INPUT = "memory_group"


#: and with ``document_context``: the document of the batch each sentence belongs to
DOCUMENT_INPUT = "document_row"


class _Emissions(torch.nn.Module):
    """The network with positional inputs, as the exporter wants them (``names`` in order)."""

    def __init__(self, net, names: tuple[str, ...]) -> None:
        super().__init__()
        self.net = net
        self.names = names

    def forward(self, *inputs):
        return self.net(dict(zip(self.names, inputs, strict=True)))


def input_names(config) -> tuple[str, ...]:
    """The exported graph's inputs for a network of ``config``."""
    if not config.document_memory:
        return INPUTS
    if config.document_context:
        return (*INPUTS, MEMORY_INPUT, DOCUMENT_INPUT)
    return (*INPUTS, MEMORY_INPUT)


#: the sentence lengths of the batch the exported graph is checked on
CHECK_LENGTHS = (7, 3, 12, 1, 5, 9)
#: and of the batch it is traced with, shorter: PyTorch's decompositions step through each LSTM
#: once per time step of the longest sentence (a default model: 5.3 s against 6.7-7.1 s for the
#: export, warm). The lengths stay symbolic, and a check batch unlike the traced one catches a
#: graph that fixed them
TRACE_LENGTHS = (3, 2, 4, 1, 2, 3)


def sample_batch(
    vocabs, word_length, lengths: tuple[int, ...] = CHECK_LENGTHS, memory: bool = False
) -> dict[str, np.ndarray]:
    """A batch of sentences of ``lengths`` drawn from the model's own words; with ``memory``,
    two documents whose sentences repeat capitalized words (mention groups)."""
    rng = np.random.default_rng(0)
    words = list(vocabs.words.words[2:200]) or ["word"]
    token_lists = [[words[i] for i in rng.integers(0, len(words), size=n)] for n in lengths]
    if memory:  # the same names in several sentences of the document
        names = ["Jordan", "Chicago", "Bulls"]
        for i, tokens in enumerate(token_lists):
            tokens[: min(len(tokens), 2)] = names[i % 3 : i % 3 + 2][: len(tokens)]
    table = FormTable(vocabs.words, vocabs.chars, word_length)
    docs = (np.arange(len(token_lists)) >= 2).astype(np.int64) if memory else None
    split = encode_split([(t, ()) for t in token_lists], table, None, docs=docs)
    table.freeze()
    return make_batch(split, table, np.arange(len(token_lists)), memory=memory)


def export_onnx(model_dir: str | os.PathLike, quantize: str | None = None) -> dict:
    """Write ``model.onnx`` (and with ``quantize="int8"`` also ``model.int8.onnx``) and
    ``crf.safetensors`` into ``model_dir``; return what was written and the check's figures."""
    if quantize not in ONNX_NAMES:
        raise NerlabError(f"quantize must be int8 or none, found {quantize!r}")
    model_dir = Path(model_dir)
    net, vocabs, info = _exportable(model_dir)
    memory = net.config.document_memory
    names = input_names(net.config)
    word_length = (info.get("data") or {}).get("word_length")
    batch = sample_batch(vocabs, word_length, memory=memory)
    with torch.no_grad():
        reference = net({name: torch.from_numpy(batch[name]) for name in names}).numpy()
    trace = sample_batch(vocabs, word_length, TRACE_LENGTHS, memory=memory)
    args = tuple(torch.from_numpy(trace[name]) for name in names)
    written = {}
    fp32 = model_dir / ONNX_NAMES[None]
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "model.onnx"
        _export(net, args, exported, model_dir)
        written["onnx"] = _check_and_write(exported, fp32, batch, reference, model_dir)
        if quantize == "int8":
            written["int8"] = _quantize(fp32, model_dir / ONNX_NAMES["int8"], batch, reference)
    written.update(_write_crf(net, model_dir))
    return {"model_dir": str(model_dir), "opset": OPSET, **written}


def _exportable(model_dir: Path):
    """The saved model, in evaluation mode."""
    net, vocabs, info = load_model(model_dir)
    net.eval()
    return net, vocabs, info


def _export(net, args: tuple, path: Path, model_dir: Path) -> None:
    """``torch.onnx.export`` of the network (dynamic batch, length, forms and word width) to
    ``path``, quietly; a failure is one line naming the model."""
    dims = {n: torch.export.Dim(n) for n in ("batch", "length", "forms", "width")}
    tokens, forms = {0: dims["batch"], 1: dims["length"]}, {0: dims["forms"]}
    # in INPUTS order: word_ids, form_index, char_ids, char_lengths, casing, mask[, memory_group
    # [, document_row]]
    shapes = (tokens, tokens, {**forms, 1: dims["width"]}, forms, tokens, tokens)
    names = input_names(net.config)
    extra = {MEMORY_INPUT: tokens, DOCUMENT_INPUT: {0: dims["batch"]}}
    shapes = (*shapes, *(extra[n] for n in names[len(INPUTS) :]))
    module = _Emissions(net, names)
    _forget_lstm_kernels()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=True,
                input_names=list(names),
                output_names=["emissions"],
                dynamic_shapes=(shapes,),  # forward(*inputs): one tuple for the varargs
                opset_version=OPSET,
                external_data=False,
                verbose=False,
            )
    except Exception as err:  # the exporter raises many types; say which model failed
        raise NerlabError(
            f"{model_dir}: torch.onnx.export failed ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]})"
        ) from None
    finally:
        quiet.setLevel(level)
    _declare_dynamic_shapes(path)


def _forget_lstm_kernels() -> None:
    """Drop the LSTM operator's cached kernels, so that this export traces it as the first one
    in the process did. The exporter swaps in a while-loop decomposition of ``aten.lstm`` that
    keeps the length symbolic, but the operator's dispatch cache (torch 2.13) still holds the
    Python-loop kernel from the previous export's decompositions: every export after the first
    fixed the length to the example's, and the graph refused any other length."""
    for op in (torch.ops.aten.lstm.input, torch.ops.aten.lstm.data):
        getattr(op, "_dispatch_cache", {}).clear()


def _declare_dynamic_shapes(path: Path) -> None:
    """The graph's declared shapes as dynamic as its computation. Tracing steps through the
    LSTMs once per time step of the example, so the exporter annotates the emissions and the
    tensors after the LSTMs with the example's length (and derived sizes such as
    ``600//length + 201``), which onnxruntime then warns about for every other length. The
    emissions are ``(batch, length, tags)``; the annotations of intermediate tensors are
    optional and dropped (onnxruntime infers them)."""
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    (emissions,) = model.graph.output
    batch, length, _ = emissions.type.tensor_type.shape.dim
    batch.dim_param, length.dim_param = "batch", "length"
    onnx.save(model, str(path))


def _check_and_write(exported: Path, target: Path, batch, reference, model_dir: Path) -> dict:
    """``onnx.checker`` and the comparison with PyTorch's scores, then the file put in place."""
    import onnx

    onnx.checker.check_model(str(exported), full_check=True)
    try:
        difference = _max_difference(exported, batch, reference)
    except Exception as err:  # onnxruntime's errors have no common type of their own
        raise NerlabError(
            f"{model_dir}: the exported graph fails on sentences of other lengths than the "
            f"traced ones ({str(err).splitlines()[0][:200]}); not written"
        ) from None
    if difference > TOLERANCE:
        raise NerlabError(
            f"{model_dir}: the ONNX model's scores differ from PyTorch's by {difference:.2e} "
            f"(more than {TOLERANCE:g}); not written"
        )
    with atomic_path(target) as tmp:
        exported.replace(tmp)
    return {"file": target.name, "bytes": target.stat().st_size, "max_difference": difference}


def _write_crf(net, model_dir: Path) -> dict:
    """The CRF's scores (constraints added) beside the graph, or no such file without a CRF."""
    from safetensors.numpy import save_file

    if net.crf is None:
        (model_dir / CRF_NAME).unlink(missing_ok=True)
        return {}
    transitions, start, end = (t.numpy() for t in net.crf.inference_parameters())
    with atomic_path(model_dir / CRF_NAME) as target:
        save_file({"transitions": transitions, "start": start, "end": end}, str(target))
    return {"crf": {"file": CRF_NAME}}


def _max_difference(path, batch, reference) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    out = session.run(None, {n: batch[n] for n in names})[0]
    return float(np.abs(out - reference)[batch["mask"]].max())


def _quantize(fp32: Path, target: Path, batch, reference) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # the quantizer warns on the root logger about pre-processing
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantized = fp32.with_name("model.int8.onnx")
        quantize_dynamic(
            str(fp32), str(quantized), weight_type=QuantType.QInt8, op_types_to_quantize=INT8_OPS
        )
    finally:
        root.setLevel(level)
    _declare_dynamic_shapes(quantized)  # the quantizer's shape inference annotates them again
    with atomic_path(target) as tmp:
        quantized.replace(tmp)
    return {
        "file": target.name,
        "bytes": target.stat().st_size,
        "max_difference": _max_difference(target, batch, reference),
    }

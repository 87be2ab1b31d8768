"""What computes a tagger's emission scores: a PyTorch network or an ONNX model.

A runner takes a batch of NumPy arrays (``nerlab.data.batching.make_batch``) and returns the
emissions ``(B, L, K)`` as a float32 NumPy array; ``crf`` holds the CRF's scores for
:mod:`nerlab.inference.crf_numpy` (None for a softmax model). :class:`OnnxRunner` imports
onnxruntime and NumPy only: a tagger built on it never imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nerlab.errors import ModelLoadError, NerlabError
from nerlab.inference.model_info import CRF_NAME, ONNX_NAMES, read_info


class TorchRunner:
    """A :class:`~nerlab.models.bilstm_crf.BiLSTMTagger` on a device."""

    backend = "torch"

    def __init__(self, net, device="cpu", threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.crf_scores = None
        if net.crf is not None:
            self.crf_scores = tuple(t.numpy() for t in net.crf.inference_parameters())

    def emissions(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        from nerlab.data.batching import to_tensors

        with self.torch.inference_mode():
            emissions = self.net(to_tensors(batch, self.device))
        return emissions.float().cpu().numpy()

    def kbest(self, batch: dict[str, np.ndarray], k: int) -> np.ndarray:
        """The ``k`` best tag sequences ``(B, k, L)`` (the CRF's batched k-best Viterbi)."""
        from nerlab.data.batching import to_tensors

        with self.torch.inference_mode():
            tensors = to_tensors(batch, self.device)
            return self.net.decode(self.net(tensors), tensors["mask"], k=k).cpu().numpy()


class OnnxRunner:
    """An exported network (``make export``) run by onnxruntime on the CPU."""

    backend = "onnx"

    def __init__(
        self, model_dir: str | os.PathLike, quantize: str | None = None, threads: int | None = None
    ) -> None:
        import onnxruntime as ort
        from safetensors.numpy import load_file

        if quantize not in ONNX_NAMES:
            raise NerlabError(f"quantize must be int8 or none, found {quantize!r}")
        model_dir = Path(model_dir)
        path = model_dir / ONNX_NAMES[quantize]
        if not path.exists():
            flag = " quantize=int8" if quantize else ""
            raise ModelLoadError(
                f"{path}: missing; export the model first: make export model_dir={model_dir}{flag}"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # idle threads sleep instead of spinning: a tagger shares its cores (with a server's
        # HTTP process, with the caller's work); spinning costs them more than it saves
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"{path}: not a loadable ONNX model ({err})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.crf_scores = None
        crf_file = model_dir / CRF_NAME
        if crf_file.exists():
            scores = load_file(str(crf_file))
            self.crf_scores = tuple(scores[k] for k in ("transitions", "start", "end"))
        self.path = path
        self.quantize = quantize

    def emissions(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {name: batch[name] for name in self.inputs})[0]

    def kbest(self, batch, k):
        raise NerlabError("k-best paths need the torch backend (Tagger.load(..., backend='torch'))")


def load_runner(
    model_dir,
    *,
    model_path=None,
    model_info_path=None,
    device="cpu",
    backend="torch",
    quantize=None,
    threads=None,
    tracking_uri=None,
) -> tuple[Any, Any, dict]:
    """``(runner, vocabularies, info)`` of a saved model, for ``backend`` torch or onnx;
    ``model_dir`` may be a ``models:/`` or ``runs:/`` URI (of the store ``tracking_uri``)."""
    from nerlab.data.vocab import Vocabularies
    from nerlab.inference.model_uri import resolve_model_dir

    model_dir = resolve_model_dir(model_dir, tracking_uri)

    if backend == "torch":
        if quantize is not None:
            raise NerlabError("quantize=int8 needs backend=onnx (make export ... quantize=int8)")
        from nerlab.inference.model_dir import load_model

        net, vocabs, info = load_model(
            model_dir, model_path=model_path, model_info_path=model_info_path
        )
        return TorchRunner(net, device, threads), vocabs, info
    if backend != "onnx":
        raise NerlabError(f"backend must be torch or onnx, found {backend!r}")
    if model_dir is None:
        raise NerlabError("backend=onnx needs model_dir=DIR (where make export wrote the model)")
    if str(device) != "cpu":
        raise NerlabError(f"backend=onnx runs on the CPU, found device={device}")
    info = read_info(model_dir)
    try:
        vocabs = Vocabularies.from_json(info["vocabularies"])
    except (KeyError, TypeError, ValueError, NerlabError) as err:
        raise ModelLoadError(f"{info['_path']}: inconsistent vocabularies ({err})") from None
    return OnnxRunner(model_dir, quantize, threads), vocabs, info

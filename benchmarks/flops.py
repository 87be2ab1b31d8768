"""Floating-point operations per token of the tagger, counted from its settings, and this
machine's measured float32 matmul peak, to say what fraction of the peak the model reaches.

Counting conventions (a multiply-add is 2 operations):

* embedding lookups and gathers: 0;
* char CNN, per character position of each form and per kernel size ``k``: ``2 C F k`` for the
  convolution plus ``F`` for the max-pooling; a position is a column of the padded
  ``(U, W)`` char matrix (the CNN runs on padding too);
* char BiLSTM, per real character and direction: one LSTM cell (below);
* LSTM cell with input ``d`` and hidden ``H``: 4 gates x (d + H) x H x 2 for the matmuls plus
  ``12 H`` for biases, nonlinearities and the state update; a BiLSTM layer is 2 cells a token;
* projection: ``2 (2H) K + K``;
* CRF: ``2 K^2`` a token for the forward algorithm (training) and the same for Viterbi
  (inference);
* training: 3x the forward pass (backward ~2x forward), CRF normaliser included.

``char_positions_per_token`` depends on the batches (distinct forms per batch, padding): pass
the value :func:`char_positions` measures on real batches.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping


def lstm_cell_flops(input_dim: int, hidden: int) -> int:
    """One LSTM step for one token and one direction."""
    return 4 * (input_dim + hidden) * hidden * 2 + 12 * hidden


def flops_per_token(
    settings: Mapping,
    num_tags: int,
    *,
    char_positions_per_token: float = 8.0,
    chars_per_token: float = 5.0,
) -> dict[str, float]:
    """Operations per token of each part and of inference and training.

    ``settings`` holds the keys of ``conf/model/*.yaml`` (``word_embedding_dims``, ``char``,
    ``character_embedding_dims``, ``char_features_dims``, ``char_kernel_sizes``,
    ``char_features_lstm_dims``, ``casing_dims``, ``entity_tagger_lstm_dims``, ``lstm_layers``,
    ``crf``); missing keys take :class:`~nerlab.models.bilstm_crf.TaggerConfig`'s defaults.
    ``char_positions_per_token`` (padded char columns, for the CNN) and ``chars_per_token``
    (real characters, for the char LSTM) are per token of the batches.
    """
    get = settings.get
    char = get("char", "cnn")
    c_dim = int(get("character_embedding_dims", 25))
    char_encoder = 0.0
    char_out = 0
    if char == "cnn":
        filters = int(get("char_features_dims", 50))
        kernels = list(get("char_kernel_sizes", [3]))
        per_position = sum(2 * c_dim * filters * k + filters for k in kernels)
        char_encoder = per_position * char_positions_per_token
        char_out = filters * len(kernels)
    elif char == "lstm":
        hidden_c = int(get("char_features_lstm_dims", 25))
        char_encoder = 2 * lstm_cell_flops(c_dim, hidden_c) * chars_per_token
        char_out = 2 * hidden_c
    input_dim = int(get("word_embedding_dims", 50)) + char_out + int(get("casing_dims", 0))
    hidden = int(get("entity_tagger_lstm_dims", 100))
    bilstm = 0
    for layer in range(int(get("lstm_layers", 1))):
        bilstm += 2 * lstm_cell_flops(input_dim if layer == 0 else 2 * hidden, hidden)
    projection = 2 * (2 * hidden) * num_tags + num_tags
    has_crf = bool(get("crf", True))
    crf_forward = 2 * num_tags * num_tags if has_crf else 3 * num_tags  # else: softmax
    crf_viterbi = 2 * num_tags * num_tags if has_crf else num_tags  # else: argmax
    forward = char_encoder + bilstm + projection
    return {
        "char_encoder": float(char_encoder),
        "bilstm": float(bilstm),
        "projection": float(projection),
        "crf_forward": float(crf_forward),
        "crf_viterbi": float(crf_viterbi),
        "inference": float(forward + crf_viterbi),
        "training": float(3 * (forward + crf_forward)),
    }


def char_positions(batches: Iterable[Mapping], max_batches: int | None = None) -> dict[str, float]:
    """Per token of ``batches``: padded char-matrix columns (``U * W``) and real characters."""
    tokens = positions = chars = 0
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        tokens += int(batch["mask"].sum())
        positions += int(batch["char_ids"].numel())
        chars += int(batch["char_lengths"].sum())
    tokens = max(tokens, 1)
    return {"char_positions_per_token": positions / tokens, "chars_per_token": chars / tokens}


def peak_gflops(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best float32 ``(n, n) @ (n, n)`` rate over ``repeats`` runs, with torch's threads."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)
    torch.matmul(a, b, out=out)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return {
        "matmul_n": n,
        "seconds": best,
        "gflops": 2 * n**3 / best / 1e9,
        "torch_threads": torch.get_num_threads(),
    }


def achieved(flops_per_token_: float, tokens_per_s: float | None, peak: float | None) -> dict:
    """GFLOP/s reached at ``tokens_per_s`` and the fraction of ``peak`` GFLOP/s."""
    if not tokens_per_s:
        return {"gflops": None, "peak_fraction": None}
    gflops = flops_per_token_ * tokens_per_s / 1e9
    return {"gflops": gflops, "peak_fraction": gflops / peak if peak else None}

"""The CRF's inference in NumPy: Viterbi decoding, forward-backward and span probabilities.

A tagger decodes here whatever computed its emission scores (PyTorch or onnxruntime), so both
give the same tags for the same scores, and a tagger without torch needs nothing but NumPy.
``trans`` ``(K, K)``, ``start`` and ``end`` ``(K,)`` are the CRF's scores with its transition
constraints already added (``nerlab.models.crf.CRF.inference_parameters``); ``mask`` ``(B, L)``
is left-aligned. Ties resolve to the lowest tag index, as in the torch backend.

Span probabilities (:func:`window_log_probs`) use the forward and backward messages of the whole
sentence, computed once, and a constrained pass over only the positions a span's case names:
the cost of a span is its length, not the sentence's (a 10,000-token text with thousands of
entities takes milliseconds).
"""

from __future__ import annotations

import numpy as np


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    peak = x.max(axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(x - peak).sum(axis=axis, keepdims=True)) + peak
    return out.squeeze(axis)


def viterbi(
    emissions: np.ndarray, mask: np.ndarray, trans: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """The best tag sequence of each sentence, ``(B, L)`` int64, 0 at padded positions."""
    batch, length, num_tags = emissions.shape
    score = start[None, :] + emissions[:, 0]  # (B, K)
    history = np.zeros((batch, max(length - 1, 0), num_tags), dtype=np.int64)
    identity = np.arange(num_tags)[None, :]
    rows = np.arange(batch)[:, None]
    for t in range(1, length):
        candidates = score[:, :, None] + trans[None, :, :]  # (B, K_prev, K)
        back = candidates.argmax(axis=1)  # (B, K)
        best = candidates[rows, back, identity]
        step = mask[:, t, None]
        score = np.where(step, best + emissions[:, t], score)
        history[:, t - 1] = np.where(step, back, identity)
    last = (score + end[None, :]).argmax(axis=1)  # (B,)
    tags = np.zeros((batch, length), dtype=np.int64)
    tags[:, length - 1] = last
    flat = np.arange(batch)
    for t in range(length - 1, 0, -1):
        last = history[flat, t - 1, last]
        tags[:, t - 1] = last
    return np.where(mask, tags, 0)


def forward_backward(
    emissions: np.ndarray, mask: np.ndarray, trans: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward and backward log-messages ``(B, L, K)`` and ``log Z`` ``(B,)``.

    ``alpha[b, t, k]``: all paths of positions 0..t ending in tag k (emission at t included);
    ``beta[b, t, k]``: all continuations after t given tag k at t, the end score included.
    """
    emissions = emissions.astype(np.float64)
    trans, start, end = (a.astype(np.float64) for a in (trans, start, end))
    batch, length, num_tags = emissions.shape
    alpha = np.empty((batch, length, num_tags))
    beta = np.empty((batch, length, num_tags))
    alpha[:, 0] = start[None, :] + emissions[:, 0]
    for t in range(1, length):
        nxt = _logsumexp(alpha[:, t - 1, :, None] + trans[None], axis=1) + emissions[:, t]
        alpha[:, t] = np.where(mask[:, t, None], nxt, alpha[:, t - 1])
    end_b = np.broadcast_to(end[None, :], (batch, num_tags))
    beta[:, length - 1] = end_b
    for t in range(length - 2, -1, -1):
        ahead = emissions[:, t + 1] + beta[:, t + 1]  # (B, K)
        nxt = _logsumexp(trans[None] + ahead[:, None, :], axis=2)
        beta[:, t] = np.where(mask[:, t + 1, None], nxt, end_b)
    logz = _logsumexp(alpha[:, 0] + beta[:, 0], axis=1)
    return alpha, beta, logz


def window_log_probs(
    emissions: np.ndarray,
    messages: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    crf: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    rows: np.ndarray,
    lows: np.ndarray,
    allowed: np.ndarray,
) -> np.ndarray:
    """Log-probability, ``(N,)``, that sentence ``rows[i]``'s tag path keeps to ``allowed[i]``
    (``(N, W, K)`` bool: the tags allowed at positions ``lows[i]``, ``lows[i] + 1``, ...; rows
    past a window's end all True) and is free elsewhere.

    CRF (``crf`` the scores, ``messages`` :func:`forward_backward`'s): a pass over the window
    from the forward message before it to the backward message at its end. Without a CRF
    (``crf`` None, ``emissions`` per-token scores) the product of the allowed softmax mass.
    """
    n, width, num_tags = allowed.shape
    if n == 0:
        return np.zeros(0)
    length = emissions.shape[1]
    positions = lows[:, None] + np.arange(width)[None, :]  # (N, W)
    inside = positions < length
    # a window's positions past its last constrained one are left all-True: they only matter
    # up to the window's end, which is its last position that constrains anything
    constrained = ~allowed.all(axis=2) & inside  # (N, W)
    last = np.where(constrained.any(axis=1), width - 1 - constrained[:, ::-1].argmax(axis=1), 0)
    clipped = np.minimum(positions, length - 1)
    em = emissions[rows[:, None], clipped].astype(np.float64)  # (N, W, K)
    if crf is None:
        probs = np.exp(em - _logsumexp(em, axis=2)[..., None])
        kept = np.where(allowed, probs, 0.0).sum(axis=2)  # (N, W)
        take = np.arange(width)[None, :] <= last[:, None]
        with np.errstate(divide="ignore"):
            return np.where(take, np.log(np.maximum(kept, 1e-300)), 0.0).sum(axis=1)
    alpha, beta, logz = messages
    trans, start, _ = (a.astype(np.float64) for a in crf)
    barred = np.where(allowed, em, -np.inf)
    first = barred[:, 0]
    before = lows - 1
    prev = alpha[rows, np.maximum(before, 0)]  # (N, K)
    entering = _logsumexp(prev[:, :, None] + trans[None], axis=1) + first
    a = np.where((before >= 0)[:, None], entering, start[None, :] + first)
    for j in range(1, width):
        nxt = _logsumexp(a[:, :, None] + trans[None], axis=1) + barred[:, j]
        a = np.where((j <= last)[:, None], nxt, a)
    end_pos = lows + last
    with np.errstate(invalid="ignore"):
        return _logsumexp(a + beta[rows, end_pos], axis=1) - logz[rows]

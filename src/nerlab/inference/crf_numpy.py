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

from typing import NamedTuple

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


class Messages(NamedTuple):
    """Scaled forward and backward messages of a batch (:func:`forward_backward`)."""

    alpha: np.ndarray  # (B, L, K), each row summing to 1
    alpha_log_scale: np.ndarray  # (B, L): log alpha[b, t, k] = log(alpha) + this
    beta: np.ndarray  # (B, L, K), each row summing to 1
    beta_log_scale: np.ndarray  # (B, L)
    logz: np.ndarray  # (B,)


def _exp_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``exp(x - max)`` along the last axis and the max: exponentials that cannot overflow."""
    peak = x.max(axis=-1)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return np.exp(x - peak[..., None]), peak


def _normalise(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to sum to 1, and the log of their sums (-inf for an all-zero row: call
    under ``np.errstate(divide="ignore")``)."""
    total = a.sum(axis=-1)
    return a / np.where(total > 0, total, 1.0)[..., None], np.log(total)


def forward_backward(
    emissions: np.ndarray, mask: np.ndarray, trans: np.ndarray, start: np.ndarray, end: np.ndarray
) -> Messages:
    """The forward and backward messages of every position, computed in probability space
    with a scale per row (one small matrix product a step, not a log-sum-exp).

    ``alpha[b, t, k]``: all paths of positions 0..t ending in tag k (emission at t included);
    ``beta[b, t, k]``: all continuations after t given tag k at t, the end score included.
    """
    with np.errstate(divide="ignore"):
        return _forward_backward(emissions, mask, trans, start, end)


def _forward_backward(emissions, mask, trans, start, end) -> Messages:
    emissions = emissions.astype(np.float64)
    batch, length, num_tags = emissions.shape
    top = float(trans.max())
    step = np.exp(trans.astype(np.float64) - top)  # (K, K), at most 1
    ex, peaks = _exp_rows(emissions)  # (B, L, K), (B, L)
    first, first_peak = _exp_rows(start.astype(np.float64))
    last, last_peak = _exp_rows(end.astype(np.float64))
    alpha = np.empty((batch, length, num_tags))
    a_scale = np.empty((batch, length))
    a, log_c = _normalise(first[None, :] * ex[:, 0])
    alpha[:, 0], a_scale[:, 0] = a, log_c + peaks[:, 0] + first_peak
    for t in range(1, length):
        nxt, log_c = _normalise((alpha[:, t - 1] @ step) * ex[:, t])
        on = mask[:, t]
        alpha[:, t] = np.where(on[:, None], nxt, alpha[:, t - 1])
        a_scale[:, t] = np.where(
            on, a_scale[:, t - 1] + log_c + top + peaks[:, t], a_scale[:, t - 1]
        )
    beta = np.empty((batch, length, num_tags))
    b_scale = np.empty((batch, length))
    final = np.broadcast_to(last / last.sum(), (batch, num_tags))
    final_scale = last_peak + np.log(last.sum())
    beta[:, length - 1], b_scale[:, length - 1] = final, final_scale
    for t in range(length - 2, -1, -1):
        nxt, log_c = _normalise((ex[:, t + 1] * beta[:, t + 1]) @ step.T)
        on = mask[:, t + 1]
        beta[:, t] = np.where(on[:, None], nxt, final)
        b_scale[:, t] = np.where(on, b_scale[:, t + 1] + log_c + top + peaks[:, t + 1], final_scale)
    with np.errstate(divide="ignore"):
        logz = np.log((alpha[:, 0] * beta[:, 0]).sum(axis=1)) + a_scale[:, 0] + b_scale[:, 0]
    return Messages(alpha, a_scale, beta, b_scale, logz)


def window_log_probs(
    emissions: np.ndarray,
    messages: Messages | None,
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
    with np.errstate(divide="ignore", invalid="ignore"):
        return _window_log_probs(emissions, messages, crf, rows, lows, allowed)


def _window_log_probs(emissions, messages, crf, rows, lows, allowed) -> np.ndarray:
    n, width, num_tags = allowed.shape
    if n == 0:
        return np.zeros(0)
    length = emissions.shape[1]
    positions = lows[:, None] + np.arange(width)[None, :]  # (N, W)
    inside = positions < length
    # the window ends at its last position that constrains anything
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
    trans, start, _ = crf
    top = float(trans.max())
    step = np.exp(trans.astype(np.float64) - top)
    ex, peaks = _exp_rows(em)  # (N, W, K), (N, W)
    ex = np.where(allowed, ex, 0.0)
    first, first_peak = _exp_rows(start.astype(np.float64))
    before = np.maximum(lows - 1, 0)
    entering = messages.alpha[rows, before] @ step  # (N, K)
    has_before = (lows > 0)[:, None]
    a = np.where(has_before, entering, first[None, :]) * ex[:, 0]
    scale = (
        np.where(lows > 0, messages.alpha_log_scale[rows, before] + top, first_peak) + peaks[:, 0]
    )
    a, log_c = _normalise(a)
    scale = scale + log_c
    for j in range(1, width):
        nxt, log_c = _normalise((a @ step) * ex[:, j])
        on = j <= last
        a = np.where(on[:, None], nxt, a)
        scale = np.where(on, scale + log_c + top + peaks[:, j], scale)
    end_pos = lows + last
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.log((a * messages.beta[rows, end_pos]).sum(axis=1))
    return total + scale + messages.beta_log_scale[rows, end_pos] - messages.logz[rows]


def two_best_scores(
    emissions: np.ndarray, mask: np.ndarray, trans: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """The scores of the best and the second-best tag sequence of each sentence, ``(B, 2)``
    (float64; -inf when a sentence has a single possible sequence): a Viterbi pass that keeps
    the two best partial scores per tag (distinct paths), so ``exp(score - logz)`` is the exact
    probability of each. Used to rank texts by how sure the model is (``make select``)."""
    emissions = emissions.astype(np.float64)
    trans = trans.astype(np.float64)
    batch, length, num_tags = emissions.shape
    top = np.full((batch, num_tags, 2), -np.inf)  # (B, K, 2): the two best ending in each tag
    top[:, :, 0] = start[None, :] + emissions[:, 0]
    for t in range(1, length):
        # (B, K_prev, 2, K): every kept partial path extended by every next tag
        candidates = top[:, :, :, None] + trans[None, :, None, :]
        flat = candidates.reshape(batch, num_tags * 2, num_tags)
        best2 = -np.sort(-flat, axis=1)[:, :2, :]  # (B, 2, K)
        nxt = best2.transpose(0, 2, 1) + emissions[:, t, :, None]
        top = np.where(mask[:, t, None, None], nxt, top)
    final = (top + end[None, :, None]).reshape(batch, num_tags * 2)
    return -np.sort(-final, axis=1)[:, :2]

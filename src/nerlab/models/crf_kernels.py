"""Numba kernels for the linear-chain CRF in :mod:`nerlab.crf`.

Everything here works on NumPy arrays and knows nothing about autograd: the CRF wraps the
kernels in a ``torch.autograd.Function``. Conventions shared by all kernels:

* ``em`` is ``(B, L, K)`` float32 or float64 emissions, C-contiguous;
* ``lengths`` is ``(B,)`` int64, ``1 <= lengths[b] <= L`` (left-aligned masks);
* ``trans`` ``(K, K)`` scores a move from tag ``i`` to tag ``j``, ``start`` and ``end`` ``(K,)``
  score the first and last tag. Constraint penalties are already added by the caller.

Arithmetic is float64 inside the kernels whatever the input dtype; outputs have the dtype of
``em``.

Each batch driver comes in a serial and a ``prange`` flavour (over sentences). The serial one
is the default. On an idle 2-core machine ``prange`` is 1.1-1.8x faster for a batch of 32
CoNLL sentences, but when another process keeps the second core busy every parallel region
waits for a scheduler time slice, and a call became up to 30x slower than the serial kernel
(measured here while another job ran). Set ``NERLAB_CRF_PARALLEL=1`` (or pass
``parallel=True``, or set ``CRF.parallel``) on a machine with cores to spare; even then the
serial kernel serves batches below ``PARALLEL_MIN_WORK_*`` (batch * length * K * K), where the
thread pool's start-up costs more than it saves.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import njit, prange

# A scale factor at or below this (or not finite) means the scaled forward-backward lost the
# sentence to underflow; it is then recomputed in log space.
_TINY = 1e-250
# The marginals of a sentence must sum to its length within this relative error, otherwise
# the scaled backward pass overflowed and the sentence is recomputed in log space.
_MARGINAL_TOL = 1e-6
#: Use the prange drivers by default (for batches above the thresholds below).
PARALLEL = os.environ.get("NERLAB_CRF_PARALLEL", "0") == "1"
# Batch * length * K * K from which prange pays off (measured on 2 cores, numba's omp layer).
PARALLEL_MIN_WORK_FB = 12_000
PARALLEL_MIN_WORK_VITERBI = 30_000


def _use_parallel(parallel, em, min_work):
    if parallel is not None:
        return bool(parallel)
    B, L, K = em.shape
    return PARALLEL and B > 1 and B * L * K * K >= min_work


@njit(nogil=True, cache=True)
def mask_lengths(mask):
    """Sentence lengths of a left-aligned ``(B, L)`` bool mask.

    Returns ``(lengths, bad_row, status)``: status 0 is fine, 1 means row ``bad_row`` has
    ``mask[bad_row, 0] == False``, 2 means row ``bad_row`` has a True after a False.
    """
    B, L = mask.shape
    lengths = np.empty(B, np.int64)
    for b in range(B):
        if not mask[b, 0]:
            return lengths, b, 1
        n = 1
        while n < L and mask[b, n]:
            n += 1
        for t in range(n + 1, L):
            if mask[b, t]:
                return lengths, b, 2
        lengths[b] = n
    return lengths, -1, 0


@njit(nogil=True, cache=True)
def _exp_shifted(x):
    """``(exp(x - max(x)), max(x))`` in float64, for a vector or a matrix."""
    flat = x.ravel()
    top = -np.inf
    for v in flat:
        if v > top:
            top = v
    out = np.empty(x.shape, np.float64)
    out_flat = out.ravel()
    for i in range(flat.size):
        out_flat[i] = math.exp(flat[i] - top)
    return out, top


@njit(nogil=True, cache=True)
def _logsumexp(v):
    top = -np.inf
    for x in v:
        if x > top:
            top = x
    if top == -np.inf:
        return top
    s = 0.0
    for x in v:
        s += math.exp(x - top)
    return top + math.log(s)


@njit(nogil=True, cache=True)
def _sentence_scaled(
    em,
    n,
    eT,
    eTt,
    e_start,
    e_end,
    off_T,
    off_start,
    off_end,
    need_grad,
    alpha,
    u,
    scale,
    marg,
    pair,
    last,
):
    """Forward-backward for one sentence in scaled probability space (Rabiner).

    ``alpha[t]`` holds the forward vector normalised to sum 1 and ``scale[t]`` its
    normaliser, so ``logZ = sum_t (log scale[t] + max em[t]) + offsets``. ``eT = exp(trans -
    off_T)`` (forbidden transitions are exactly 0) and ``eTt`` its transpose; ``e_start`` and
    ``e_end`` likewise. With ``need_grad`` the backward vectors are scaled by the same
    factors, so that ``alpha[t] * beta[t]`` is directly the unary marginal; pairwise marginals
    are summed over time into ``pair`` (float64, zeroed by the caller).

    Returns logZ, or NaN when a scale factor underflowed or the marginals do not add up.
    """
    K = em.shape[1]
    # t = 0
    top = -np.inf
    for k in range(K):
        if em[0, k] > top:
            top = em[0, k]
    s = 0.0
    for k in range(K):
        a = e_start[k] * math.exp(em[0, k] - top)
        alpha[0, k] = a
        s += a
    if not (s > _TINY and s < np.inf):
        return np.nan
    inv = 1.0 / s
    for k in range(K):
        alpha[0, k] *= inv
    scale[0] = s
    logz = top + off_start + math.log(s)
    for t in range(1, n):
        top = -np.inf
        for k in range(K):
            if em[t, k] > top:
                top = em[t, k]
        for k in range(K):
            u[t, k] = math.exp(em[t, k] - top)
        s = 0.0
        for j in range(K):
            acc = 0.0
            for i in range(K):
                acc += alpha[t - 1, i] * eTt[j, i]
            a = acc * u[t, j]
            alpha[t, j] = a
            s += a
        if not (s > _TINY and s < np.inf):
            return np.nan
        inv = 1.0 / s
        for k in range(K):
            alpha[t, k] *= inv
        scale[t] = s
        logz += top + off_T + math.log(s)
    z = 0.0
    for k in range(K):
        z += alpha[n - 1, k] * e_end[k]
    if not (z > _TINY and z < np.inf):
        return np.nan
    logz += off_end + math.log(z)
    if not need_grad:
        return logz

    # Backward pass: beta[n-1] = e_end / z, beta[t] = eT @ (u[t+1] * beta[t+1]) / scale[t+1].
    beta = np.empty(K)
    beta_prev = np.empty(K)
    tmp = np.empty(K)
    inv = 1.0 / z
    total = 0.0
    for k in range(K):
        beta[k] = e_end[k] * inv
        p = alpha[n - 1, k] * beta[k]
        marg[n - 1, k] = p
        last[k] = p
        total += p
    for t in range(n - 2, -1, -1):
        inv = 1.0 / scale[t + 1]
        for j in range(K):
            tmp[j] = u[t + 1, j] * beta[j] * inv
        for i in range(K):
            ai = alpha[t, i]
            acc = 0.0
            for j in range(K):
                w = eT[i, j] * tmp[j]
                acc += w
                pair[i, j] += ai * w
            beta_prev[i] = acc
            p = ai * acc
            marg[t, i] = p
            total += p
        beta, beta_prev = beta_prev, beta
    if not abs(total - n) <= _MARGINAL_TOL * n:
        return np.nan
    return logz


@njit(nogil=True, cache=True)
def _sentence_log(em, n, trans, start, end, need_grad, alpha, marg, pair, last):
    """Forward-backward for one sentence in log space: slow (L*K*K exps) but never
    underflows. Same outputs as :func:`_sentence_scaled`; ``pair`` is zeroed here."""
    K = em.shape[1]
    for k in range(K):
        alpha[0, k] = start[k] + em[0, k]
    col = np.empty(K)
    for t in range(1, n):
        for j in range(K):
            for i in range(K):
                col[i] = alpha[t - 1, i] + trans[i, j]
            alpha[t, j] = _logsumexp(col) + em[t, j]
    for k in range(K):
        col[k] = alpha[n - 1, k] + end[k]
    logz = _logsumexp(col)
    if not need_grad:
        return logz

    pair[:, :] = 0.0
    beta = np.empty(K)
    beta_prev = np.empty(K)
    tmp = np.empty(K)
    for k in range(K):
        beta[k] = end[k]
        p = math.exp(alpha[n - 1, k] + beta[k] - logz)
        marg[n - 1, k] = p
        last[k] = p
    for t in range(n - 2, -1, -1):
        for j in range(K):
            tmp[j] = em[t + 1, j] + beta[j]
        for i in range(K):
            for j in range(K):
                col[j] = trans[i, j] + tmp[j]
                pair[i, j] += math.exp(alpha[t, i] + col[j] - logz)
            beta_prev[i] = _logsumexp(col)
            marg[t, i] = math.exp(alpha[t, i] + beta_prev[i] - logz)
        beta, beta_prev = beta_prev, beta
    return logz


@njit(nogil=True, cache=True)
def _fb_one(b, em, lengths, prep, need_grad, force_log, logz, marg, pair, last):
    """Scaled forward-backward of sentence ``b``, falling back to log space when needed."""
    eT, eTt, e_start, e_end, off_T, off_start, off_end, trans64, start64, end64 = prep
    K = em.shape[2]
    n = lengths[b]
    alpha = np.empty((n, K))
    marg_b = np.zeros((n, K))
    pair_b = np.zeros((K, K))
    last_b = np.empty(K)
    z = np.nan
    if not force_log:
        u = np.empty((n, K))
        scale = np.empty(n)
        z = _sentence_scaled(
            em[b],
            n,
            eT,
            eTt,
            e_start,
            e_end,
            off_T,
            off_start,
            off_end,
            need_grad,
            alpha,
            u,
            scale,
            marg_b,
            pair_b,
            last_b,
        )
    if np.isnan(z):
        z = _sentence_log(
            em[b], n, trans64, start64, end64, need_grad, alpha, marg_b, pair_b, last_b
        )
    logz[b] = z
    if need_grad:
        for t in range(n):
            for k in range(K):
                marg[b, t, k] = marg_b[t, k]
        for i in range(K):
            last[b, i] = last_b[i]
            for j in range(K):
                pair[b, i, j] = pair_b[i, j]


@njit(nogil=True, cache=True)
def _prepare(trans, start, end):
    eT, off_T = _exp_shifted(trans)
    e_start, off_start = _exp_shifted(start)
    e_end, off_end = _exp_shifted(end)
    eTt = np.ascontiguousarray(eT.T)
    return (
        eT,
        eTt,
        e_start,
        e_end,
        off_T,
        off_start,
        off_end,
        trans.astype(np.float64),
        start.astype(np.float64),
        end.astype(np.float64),
    )


@njit(nogil=True, cache=True)
def _alloc_fb(em, need_grad):
    B, L, K = em.shape
    nb = B if need_grad else 0
    logz = np.empty(B, em.dtype)
    marg = np.zeros((nb, L, K), em.dtype)
    pair = np.empty((nb, K, K), em.dtype)
    last = np.empty((nb, K), em.dtype)
    return logz, marg, pair, last


@njit(nogil=True, cache=True)
def _forward_backward_serial(em, lengths, trans, start, end, need_grad, force_log):
    prep = _prepare(trans, start, end)
    logz, marg, pair, last = _alloc_fb(em, need_grad)
    for b in range(em.shape[0]):
        _fb_one(b, em, lengths, prep, need_grad, force_log, logz, marg, pair, last)
    return logz, marg, pair, last


@njit(nogil=True, cache=True, parallel=True)
def _forward_backward_parallel(em, lengths, trans, start, end, need_grad, force_log):
    prep = _prepare(trans, start, end)
    logz, marg, pair, last = _alloc_fb(em, need_grad)
    for b in prange(em.shape[0]):
        _fb_one(b, em, lengths, prep, need_grad, force_log, logz, marg, pair, last)
    return logz, marg, pair, last


def forward_backward(
    em, lengths, trans, start, end, need_grad=True, force_log=False, parallel=None
):
    """Log-partition ``(B,)`` and, with ``need_grad``, its gradients.

    Returns ``(logz, marg, pair, last)``: ``marg`` ``(B, L, K)`` unary marginals (0 at padded
    positions) = d logZ / d em, ``pair`` ``(B, K, K)`` pairwise marginals summed over time =
    d logZ / d trans, ``last`` ``(B, K)`` marginals at each sentence's last position = d logZ /
    d end (d logZ / d start is ``marg[:, 0]``). Without ``need_grad`` the last three have batch
    size 0. ``force_log`` skips the scaled kernel (to test the log-space fallback).
    ``parallel``: True/False forces the prange/serial driver, None follows :data:`PARALLEL`
    and the work threshold.
    """
    parallel = _use_parallel(parallel, em, PARALLEL_MIN_WORK_FB)
    fn = _forward_backward_parallel if parallel else _forward_backward_serial
    return fn(em, lengths, trans, start, end, need_grad, force_log)


@njit(nogil=True, cache=True)
def _viterbi_one(b, em, lengths, transT, start, end, out):
    """Max-product Viterbi of sentence ``b`` into ``out[b]`` (``transT`` is trans transposed,
    float64, so the inner loop over previous tags is contiguous)."""
    K = em.shape[2]
    n = lengths[b]
    score = np.empty(K)
    nxt = np.empty(K)
    back = np.empty((n, K), np.int32)
    for k in range(K):
        score[k] = start[k] + em[b, 0, k]
    for t in range(1, n):
        for j in range(K):
            row = transT[j]
            best = score[0] + row[0]
            arg = 0
            for i in range(1, K):
                v = score[i] + row[i]
                if v > best:
                    best = v
                    arg = i
            nxt[j] = best + em[b, t, j]
            back[t, j] = arg
        score, nxt = nxt, score
    best = score[0] + end[0]
    arg = 0
    for k in range(1, K):
        v = score[k] + end[k]
        if v > best:
            best = v
            arg = k
    out[b, n - 1] = arg
    for t in range(n - 1, 0, -1):
        arg = back[t, arg]
        out[b, t - 1] = arg


@njit(nogil=True, cache=True)
def _viterbi_serial(em, lengths, trans, start, end):
    B, L, K = em.shape
    transT = np.ascontiguousarray(trans.T).astype(np.float64)
    start64 = start.astype(np.float64)
    end64 = end.astype(np.float64)
    out = np.zeros((B, L), np.int64)
    for b in range(B):
        _viterbi_one(b, em, lengths, transT, start64, end64, out)
    return out


@njit(nogil=True, cache=True, parallel=True)
def _viterbi_parallel(em, lengths, trans, start, end):
    B, L, K = em.shape
    transT = np.ascontiguousarray(trans.T).astype(np.float64)
    start64 = start.astype(np.float64)
    end64 = end.astype(np.float64)
    out = np.zeros((B, L), np.int64)
    for b in prange(B):
        _viterbi_one(b, em, lengths, transT, start64, end64, out)
    return out


def viterbi(em, lengths, trans, start, end, parallel=None):
    """Best tag sequence per sentence, ``(B, L)`` int64 with 0 at padded positions
    (``parallel`` as in :func:`forward_backward`)."""
    parallel = _use_parallel(parallel, em, PARALLEL_MIN_WORK_VITERBI)
    fn = _viterbi_parallel if parallel else _viterbi_serial
    return fn(em, lengths, trans, start, end)

"""Tests for nerlab.crf: exactness against brute-force enumeration, agreement of the numba and
torch backends, gradients (the marginals), constraints, mixed precision, errors, and the torch
backend's kernel count, which must not grow with the sentence length."""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest
import torch

from nerlab.crf import CRF, FORBIDDEN_SCORE, numba_log_partition
from nerlab.models import crf_kernels

# "numba-log" is the numba backend with its log-space fallback forced for every sentence.
BACKENDS = ["numba", "numba-log", "torch"]

# Hand-written BIO constraints over O, B-X, I-X, B-Y, I-Y; START = 5, END = 6.
OUT, BX, IX, BY, IY = range(5)
START, END = 5, 6
BIO_ALLOWED = (
    [(i, j) for i in range(5) for j in (OUT, BX, BY)]
    + [(BX, IX), (IX, IX), (BY, IY), (IY, IY)]
    + [(START, OUT), (START, BX), (START, BY)]
    + [(i, END) for i in range(5)]
)


def make_crf(num_tags, backend, allowed=None, seed=0, dtype=torch.float64):
    """A CRF with N(0, 1) scores (larger than the default init, so paths differ clearly)."""
    crf = CRF(num_tags, allowed_transitions=allowed, backend=backend.split("-")[0])
    crf._force_log_space = backend == "numba-log"
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return crf.to(dtype)


def random_batch(batch_size, seq_len, num_tags, seed, dtype=torch.float64, min_len=1):
    gen = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch_size, seq_len, num_tags, generator=gen, dtype=dtype)
    tags = torch.randint(num_tags, (batch_size, seq_len), generator=gen)
    lengths = torch.randint(min_len, seq_len + 1, (batch_size,), generator=gen)
    lengths[0] = seq_len  # at least one full-length sentence
    mask = torch.arange(seq_len).unsqueeze(0) < lengths.unsqueeze(1)
    return emissions, tags, mask


def marginals(crf, emissions, mask):
    """Posterior marginals ``(B, L, K)`` as the training gradient gives them: d llh / d
    emissions is one-hot(gold) - marginals at real positions (0 at padding)."""
    emissions = emissions.detach().clone().requires_grad_(True)
    tags = torch.zeros(emissions.shape[:2], dtype=torch.long)
    (grad,) = torch.autograd.grad(crf.log_likelihood(emissions, tags, mask).sum(), emissions)
    gold = torch.zeros_like(grad)
    gold[..., 0] = mask.to(grad.dtype)
    return gold - grad


def penalty_fn(num_tags, allowed):
    """penalty(i, j) of the hand-written constraint list (0 when unconstrained)."""
    if allowed is None:
        return lambda i, j: 0.0
    allowed = set(allowed)
    return lambda i, j: 0.0 if (i, j) in allowed else FORBIDDEN_SCORE


def brute_force(crf, emissions, mask, allowed=None):
    """Enumerate every tag sequence: per sentence (logZ, best path, marginals (L, K)) and a
    function scoring any path, all in float64 and independent of the CRF code."""
    num_tags = crf.num_tags
    pen = penalty_fn(num_tags, allowed)
    trans = crf.transitions.detach().double()
    start = crf.start_transitions.detach().double()
    end = crf.end_transitions.detach().double()
    em = emissions.detach().double()

    def path_score(b, path):
        s = start[path[0]] + pen(num_tags, path[0]) + em[b, 0, path[0]]
        for t in range(1, len(path)):
            s = s + trans[path[t - 1], path[t]] + pen(path[t - 1], path[t]) + em[b, t, path[t]]
        return float(s + end[path[-1]] + pen(path[-1], num_tags + 1))

    results = []
    for b in range(em.size(0)):
        n = int(mask[b].sum())
        paths = list(itertools.product(range(num_tags), repeat=n))
        scores = torch.tensor([path_score(b, p) for p in paths], dtype=torch.float64)
        logz = torch.logsumexp(scores, 0)
        probs = (scores - logz).exp()
        marg = torch.zeros(em.size(1), num_tags, dtype=torch.float64)
        for p, prob in zip(paths, probs, strict=True):
            for t, tag in enumerate(p):
                marg[t, tag] += prob
        results.append((float(logz), list(paths[int(scores.argmax())]), marg))
    return results, path_score


# ---------------------------------------------------------------- exactness vs brute force


def random_allowed(num_tags, seed):
    """About 70% of all (i, j) pairs, START and END included, START -> 0 and 0 -> END kept so
    that every length has an allowed path."""
    gen = torch.Generator().manual_seed(seed)
    keep = torch.rand(num_tags + 2, num_tags + 2, generator=gen) < 0.7
    keep[num_tags, 0] = keep[0, num_tags + 1] = keep[0, 0] = True
    return [tuple(ij) for ij in keep.nonzero().tolist()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("constraints", ["none", "bio", "random"])
@pytest.mark.parametrize("seed", range(3))
def test_log_likelihood_decode_marginals_match_brute_force(backend, constraints, seed):
    num_tags = {"none": 2 + seed, "bio": 5, "random": 3 + seed}[constraints]
    allowed = {"none": None, "bio": BIO_ALLOWED, "random": random_allowed(num_tags, seed)}
    allowed = allowed[constraints]
    crf = make_crf(num_tags, backend, allowed, seed=seed)
    emissions, tags, mask = random_batch(5, 4, num_tags, seed=100 + seed)
    constrained = constraints == "bio"
    if constrained:
        tags[0, :2] = torch.tensor([OUT, IX])  # a gold path through a forbidden transition
    truth, path_score = brute_force(crf, emissions, mask, allowed)

    llh = crf.log_likelihood(emissions, tags, mask)
    decoded = crf.decode(emissions, mask)
    marg = marginals(crf, emissions, mask)
    assert llh.shape == (5,) and llh.dtype == torch.float64
    for b, (logz, best, marg_b) in enumerate(truth):
        n = int(mask[b].sum())
        expected = path_score(b, tags[b, :n].tolist()) - logz
        assert llh[b].item() == pytest.approx(expected, abs=1e-5)
        assert decoded[b, :n].tolist() == best
        assert decoded[b, n:].eq(0).all()
        torch.testing.assert_close(marg[b], marg_b, atol=1e-6, rtol=0)
    if constrained:
        assert llh[0].item() < FORBIDDEN_SCORE / 2  # the forbidden gold path is penalised


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_log_likelihood_matches_brute_force(backend):
    crf = make_crf(4, backend, seed=7, dtype=torch.float32)
    emissions, tags, mask = random_batch(6, 4, 4, seed=8, dtype=torch.float32)
    truth, path_score = brute_force(crf, emissions, mask)
    llh = crf.log_likelihood(emissions, tags, mask)
    assert llh.dtype == torch.float32
    for b, (logz, _, _) in enumerate(truth):
        n = int(mask[b].sum())
        assert llh[b].item() == pytest.approx(path_score(b, tags[b, :n].tolist()) - logz, abs=1e-5)


def test_underflow_falls_back_to_log_space():
    """A sentence whose scaled forward pass underflows (the second best path is e^-700 less
    likely after the first step) must still be exact, through the log-space fallback."""
    emissions = torch.tensor([[[0.0, 800.0], [800.0, 0.0]]], dtype=torch.float64)
    trans = torch.tensor([[0.0, -1500.0], [-1500.0, 0.0]], dtype=torch.float64)
    zeros = torch.zeros(2, dtype=torch.float64)
    lengths = np.array([2])
    # The scaled kernel alone gives up on this sentence...
    prep = crf_kernels._prepare(trans.numpy(), zeros.numpy(), zeros.numpy())
    eT, eTt, e_start, e_end, off_t, off_s, off_e = prep[:7]
    work = [np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2), np.zeros((2, 2)), np.zeros((2, 2))]
    z = crf_kernels._sentence_scaled(
        emissions[0].numpy(), 2, eT, eTt, e_start, e_end, off_t, off_s, off_e, True,
        *work, np.zeros(2),
    )  # fmt: skip
    assert math.isnan(z)
    # ...and the driver recomputes it in log space: paths 00 and 11 both score 800.
    logz, marg, pair, last = crf_kernels.forward_backward(
        emissions.numpy(), lengths, trans.numpy(), zeros.numpy(), zeros.numpy()
    )
    assert logz[0] == pytest.approx(800 + math.log(2), abs=1e-9)
    np.testing.assert_allclose(marg[0], [[0.5, 0.5], [0.5, 0.5]], atol=1e-9)
    np.testing.assert_allclose(pair[0], [[0.5, 0.0], [0.0, 0.5]], atol=1e-9)
    np.testing.assert_allclose(last[0], [0.5, 0.5], atol=1e-9)
    crf = CRF(2, backend="numba").double()
    with torch.no_grad():
        crf.transitions.copy_(trans)
        crf.start_transitions.zero_()
        crf.end_transitions.zero_()
    em = emissions.clone().requires_grad_(True)
    llh = crf.log_likelihood(em, torch.tensor([[0, 0]]), torch.ones(1, 2, dtype=torch.bool))
    assert llh.item() == pytest.approx(-math.log(2), abs=1e-9)
    llh.sum().backward()
    # d llh / d em = one-hot(gold) - marginals
    torch.testing.assert_close(em.grad[0], torch.tensor([[0.5, -0.5], [0.5, -0.5]]).double())


# ---------------------------------------------------------------- constraints


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_constrained_decode_never_returns_forbidden_transition(backend):
    allowed = set(BIO_ALLOWED)
    constrained = make_crf(5, backend, BIO_ALLOWED, seed=3, dtype=torch.float32)
    free = make_crf(5, backend, None, seed=3, dtype=torch.float32)
    emissions, _, mask = random_batch(64, 12, 5, seed=4, dtype=torch.float32)
    emissions[:, :, [IX, IY]] += 2.0  # tempt the decoder towards I- tags everywhere

    def violations(paths):
        count = 0
        for b in range(paths.size(0)):
            path = [START] + paths[b, : int(mask[b].sum())].tolist() + [END]
            count += sum((i, j) not in allowed for i, j in itertools.pairwise(path))
        return count

    assert violations(free.decode(emissions, mask)) > 0  # the test can fail
    assert violations(constrained.decode(emissions, mask)) == 0


def test_constraints_buffer_is_persistent_and_reloads():
    crf = make_crf(5, "numba", BIO_ALLOWED, dtype=torch.float32)
    state = crf.state_dict()
    assert state["transition_constraints"].shape == (7, 7)
    assert state["transition_constraints"][START, IX] == FORBIDDEN_SCORE
    assert state["transition_constraints"][BX, IX] == 0.0
    fresh = CRF(5, backend="numba")
    fresh.load_state_dict(state)
    emissions, tags, mask = random_batch(16, 10, 5, seed=5, dtype=torch.float32)
    emissions[:, :, IX] += 2.0
    torch.testing.assert_close(fresh.decode(emissions, mask), crf.decode(emissions, mask))
    torch.testing.assert_close(
        fresh.log_likelihood(emissions, tags, mask), crf.log_likelihood(emissions, tags, mask)
    )
    clone = pickle.loads(pickle.dumps(fresh))  # e.g. spawned workers, torch.save(model)
    assert torch.equal(clone.decode(emissions, mask), crf.decode(emissions, mask))


# ---------------------------------------------------------------- numba vs torch backends


@pytest.mark.parametrize("num_tags", [9, 17])
@pytest.mark.parametrize("constrained", [False, True])
def test_backends_agree(num_tags, constrained):
    allowed = None
    if constrained:  # START -> even tags only, even -> odd tags forbidden, tag 1 cannot end

        def ok(i, j):
            if i == num_tags:
                return j % 2 == 0
            if j == num_tags + 1:
                return i != 1
            return i % 2 == 1 or j % 2 == 0

        allowed = [(i, j) for i in range(num_tags + 2) for j in range(num_tags + 2) if ok(i, j)]
    results = {}
    for backend in ("numba", "torch"):
        crf = make_crf(num_tags, backend, allowed, seed=11, dtype=torch.float32)
        emissions, tags, mask = random_batch(8, 20, num_tags, seed=12, dtype=torch.float32)
        if constrained:  # gold paths through forbidden transitions score about -10000,
            tags = crf.decode(emissions, mask)  # beyond float32's 1e-4 resolution
        emissions.requires_grad_(True)
        llh = crf.log_likelihood(emissions, tags, mask)
        grads = torch.autograd.grad(
            llh.sum(),
            [emissions, crf.transitions, crf.start_transitions, crf.end_transitions],
        )
        decoded = crf.decode(emissions, mask)
        results[backend] = (llh, grads, decoded, marginals(crf, emissions, mask))
    (llh_n, grads_n, dec_n, marg_n), (llh_t, grads_t, dec_t, marg_t) = results.values()
    torch.testing.assert_close(llh_n, llh_t, atol=1e-4, rtol=1e-5)
    for g_n, g_t in zip(grads_n, grads_t, strict=True):
        assert g_n.abs().sum() > 0
        torch.testing.assert_close(g_n, g_t, atol=1e-5, rtol=1e-4)
    assert torch.equal(dec_n, dec_t)
    torch.testing.assert_close(marg_n, marg_t, atol=1e-5, rtol=1e-4)


def test_parallel_and_serial_kernels_agree():
    emissions, _, mask = random_batch(12, 15, 6, seed=13, dtype=torch.float32)
    lengths = mask.sum(1).numpy()
    gen = torch.Generator().manual_seed(14)
    trans, start, end = (torch.randn(s, generator=gen).numpy() for s in ((6, 6), (6,), (6,)))
    em = emissions.numpy()
    serial = crf_kernels.forward_backward(em, lengths, trans, start, end, parallel=False)
    parallel = crf_kernels.forward_backward(em, lengths, trans, start, end, parallel=True)
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        crf_kernels.viterbi(em, lengths, trans, start, end, parallel=False),
        crf_kernels.viterbi(em, lengths, trans, start, end, parallel=True),
    )
    no_grad = crf_kernels.forward_backward(em, lengths, trans, start, end, need_grad=False)
    np.testing.assert_allclose(no_grad[0], serial[0], rtol=1e-6)
    assert no_grad[1].shape == (0, 15, 6)
    # The CRF's knob reaches the kernels: same numbers either way.
    crf = make_crf(6, "numba", seed=15, dtype=torch.float32)
    tags = crf.decode(emissions, mask)
    outputs = []
    for parallel in (False, True):
        crf.parallel = parallel
        em_grad = emissions.clone().requires_grad_(True)
        llh = crf.log_likelihood(em_grad, tags, mask)
        llh.sum().backward()
        outputs.append((llh, em_grad.grad, crf.decode(emissions, mask)))
    for a, b in zip(*outputs, strict=True):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("force_log_space", [False, True])
def test_gradcheck_numba_log_partition(force_log_space):
    gen = torch.Generator().manual_seed(21)
    emissions = torch.randn(3, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    trans = torch.randn(3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    start = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    end = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    lengths = np.array([4, 2, 1])  # padding in two sentences

    def fn(em, tr, st, en):
        return numba_log_partition(em, lengths, tr, st, en, force_log_space)

    assert torch.autograd.gradcheck(fn, (emissions, trans, start, end), eps=1e-6, atol=1e-7)
    # The gradient at padded positions is exactly zero.
    (grad,) = torch.autograd.grad(fn(emissions, trans, start, end).sum(), emissions)
    assert grad[1, 2:].eq(0).all() and grad[2, 1:].eq(0).all()


def test_gradcheck_full_log_likelihood_numba():
    crf = make_crf(3, "numba", seed=22)
    emissions, tags, mask = random_batch(3, 4, 3, seed=23)
    emissions.requires_grad_(True)
    params = (crf.transitions, crf.start_transitions, crf.end_transitions)

    def fn(em, *_params):
        return crf.log_likelihood(em, tags, mask)

    assert torch.autograd.gradcheck(fn, (emissions, *params), eps=1e-6, atol=1e-7)


# ---------------------------------------------------------------- marginals, losses


@pytest.mark.parametrize("backend", BACKENDS)
def test_marginals_sum_to_one_on_unmasked_positions(backend):
    crf = make_crf(9, backend, seed=31, dtype=torch.float32)
    emissions, _, mask = random_batch(8, 20, 9, seed=32, dtype=torch.float32)
    marg = marginals(crf, emissions, mask)
    assert marg.shape == (8, 20, 9) and marg.dtype == torch.float32
    sums = marg.sum(2)
    torch.testing.assert_close(sums[mask], torch.ones(int(mask.sum())))
    assert sums[~mask].eq(0).all() and (marg >= 0).all()


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_forward_reductions(backend):
    crf = make_crf(5, backend, seed=41, dtype=torch.float32)
    emissions, tags, mask = random_batch(6, 7, 5, seed=42, dtype=torch.float32)
    emissions.requires_grad_(True)
    nll = -crf.log_likelihood(emissions, tags, mask)
    assert (nll > 0).all() and nll.requires_grad
    with torch.no_grad():  # the numba backend then skips its backward pass
        torch.testing.assert_close(-crf.log_likelihood(emissions, tags, mask), nll.detach())
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="none"), nll)
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="sum"), nll.sum())
    torch.testing.assert_close(crf(emissions, tags, mask), nll.mean())
    torch.testing.assert_close(
        crf(emissions, tags, mask, reduction="token_mean"), nll.sum() / mask.sum()
    )
    with pytest.raises(ValueError, match="reduction must be one of"):
        crf(emissions, tags, mask, reduction="avg")


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_defaults_and_tags_at_padding_are_ignored(backend):
    crf = make_crf(4, backend, seed=51, dtype=torch.float32)
    emissions, tags, mask = random_batch(5, 6, 4, seed=52, dtype=torch.float32)
    padded = tags.masked_fill(~mask, -100)  # e.g. an ignore-index used for padding
    torch.testing.assert_close(
        crf.log_likelihood(emissions, padded, mask), crf.log_likelihood(emissions, tags, mask)
    )
    full = torch.ones_like(mask)
    torch.testing.assert_close(
        crf.log_likelihood(emissions, tags), crf.log_likelihood(emissions, tags, full)
    )
    assert torch.equal(crf.decode(emissions), crf.decode(emissions, full))


def test_default_initialisation_is_uniform_in_pm_0_1():
    crf = CRF(40)
    for p in crf.parameters():
        assert p.abs().max() <= 0.1 and p.std() > 0.03
    assert crf.transitions.shape == (40, 40) and crf.start_transitions.shape == (40,)
    assert crf.transition_constraints.eq(0).all()


# ---------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bf16_autocast_computes_in_float32(backend):
    crf = make_crf(9, backend, seed=61, dtype=torch.float32)
    proj = torch.nn.Linear(16, 9)
    x = torch.randn(4, 11, 16)
    _, tags, mask = random_batch(4, 11, 9, seed=62)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emissions = proj(x)
        assert emissions.dtype == torch.bfloat16
        llh = crf.log_likelihood(emissions, tags, mask)
        loss = crf(emissions, tags, mask)
        decoded = crf.decode(emissions, mask)
    assert llh.dtype == torch.float32 and loss.dtype == torch.float32
    assert torch.isfinite(llh).all() and (llh < 0).all()
    # Identical to running on the bf16 values promoted to float32 outside autocast.
    reference = emissions.detach().float()
    torch.testing.assert_close(llh, crf.log_likelihood(reference, tags, mask))
    assert torch.equal(decoded, crf.decode(reference, mask))
    loss.backward()
    assert proj.weight.grad is not None and torch.isfinite(proj.weight.grad).all()
    assert torch.isfinite(crf.transitions.grad).all()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_shape_errors_name_both_numbers(backend):
    crf = CRF(9, backend=backend)
    emissions = torch.randn(2, 3, 9)
    tags = torch.zeros(2, 3, dtype=torch.long)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="emissions have 7 tags but the CRF was built for 9"):
        crf.log_likelihood(torch.randn(2, 3, 7), tags, mask)
    with pytest.raises(ValueError, match="emissions have 7 tags but the CRF was built for 9"):
        crf.decode(torch.randn(2, 3, 7), mask)
    with pytest.raises(ValueError, match="emissions must have 3 dimensions"):
        crf.decode(torch.randn(3, 9))
    with pytest.raises(ValueError, match="tags have length 4 but emissions have length 3"):
        crf.log_likelihood(emissions, torch.zeros(2, 4, dtype=torch.long), mask)
    with pytest.raises(ValueError, match="tags have batch size 1 but emissions have batch size 2"):
        crf.log_likelihood(emissions, tags[:1], mask)
    with pytest.raises(ValueError, match="mask has batch size 3 but emissions have batch size 2"):
        crf.decode(emissions, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask has length 5 but emissions have length 3"):
        crf.decode(emissions, torch.ones(2, 5, dtype=torch.bool))
    bad = mask.clone()
    bad[1, 0] = False
    with pytest.raises(ValueError, match=r"mask\[:, 0\] must be all True.*mask\[1, 0\] is False"):
        crf.log_likelihood(emissions, tags, bad)
    with pytest.raises(ValueError, match=r"mask\[:, 0\] must be all True"):
        crf.decode(emissions, bad)
    holey = mask.clone()
    holey[0, 1] = False
    with pytest.raises(ValueError, match="left-aligned"):
        crf.decode(emissions, holey)


def test_constructor_errors():
    with pytest.raises(ValueError, match="out of range for 5 tags"):
        CRF(5, allowed_transitions=[(0, 7)])
    with pytest.raises(ValueError, match="backend must be one of"):
        CRF(5, backend="cuda")
    with pytest.raises(ValueError, match="num_tags must be positive"):
        CRF(0)


# ---------------------------------------------------------------- kernel launches


def count_ops(fn) -> int:
    """The number of ATen operators ``fn`` dispatches (each is at least one kernel on a GPU)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Counter.count += 1
            return func(*args, **(kwargs or {}))

    with Counter():
        fn()
    return Counter.count


@pytest.mark.parametrize("constrained", [False, True])
def test_torch_backend_launches_log_l_kernels(constrained):
    """Training (log-likelihood, forward and backward) and decoding dispatch a number of
    operators that grows by a constant per doubling of the length (log L), not with L."""
    num_tags = 17
    allowed = random_allowed(num_tags, 0) if constrained else None

    def train_step(length):
        crf = make_crf(num_tags, "torch", allowed, dtype=torch.float32)
        emissions, tags, mask = random_batch(32, length, num_tags, seed=1, dtype=torch.float32)
        emissions.requires_grad_(True)
        return lambda: crf.log_likelihood(emissions, tags, mask).sum().backward()

    def decode(length):
        crf = make_crf(num_tags, "torch", allowed, dtype=torch.float32)
        emissions, _, mask = random_batch(32, length, num_tags, seed=1, dtype=torch.float32)
        return lambda: crf.decode(emissions, mask)

    for make in (train_step, decode):
        counts = [count_ops(make(length)) for length in (9, 17, 33, 65)]  # 8..64 steps
        per_doubling = counts[1] - counts[0]
        assert [b - a for a, b in itertools.pairwise(counts)] == [per_doubling] * 3, counts
        # 8 times the steps, under twice the operators (a loop over time steps: 8 times)
        assert 0 < per_doubling and counts[-1] < 2 * counts[0], counts


# ---------------------------------------------------------------- k best paths


@pytest.mark.parametrize("constraints", ["none", "random"])
@pytest.mark.parametrize("seed", range(3))
def test_k_best_paths_match_brute_force(constraints, seed):
    num_tags, k = 3, 5
    allowed = random_allowed(num_tags, seed) if constraints == "random" else None
    crf = CRF(num_tags, allowed_transitions=allowed, backend="torch")
    torch.manual_seed(seed)
    emissions = torch.randn(3, 4, num_tags)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    paths, scores = crf.decode(emissions, mask, k=k, return_scores=True)
    assert paths.shape == (3, k, 4) and scores.shape == (3, k)
    _, path_score = brute_force(crf, emissions, mask, allowed)
    for b in range(3):
        n = int(mask[b].sum())
        every = sorted(
            itertools.product(range(num_tags), repeat=n), key=lambda p: -path_score(b, p)
        )
        found = min(k, len(every))  # the last sentence has only 3 paths
        expected = every[:found]
        assert [tuple(p[:n]) for p in paths[b, :found].tolist()] == expected
        torch.testing.assert_close(
            scores[b, :found].double(),
            torch.tensor([path_score(b, p) for p in expected], dtype=torch.float64),
            rtol=1e-6,  # float32 scores of paths through -10000 penalties
            atol=1e-5,
        )
        assert torch.isinf(scores[b, found:]).all()
        assert (paths[b, :, n:] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_best_path_is_todays_decode(backend):
    crf = make_crf(9, backend, seed=41, dtype=torch.float32)
    emissions, _, mask = random_batch(8, 20, 9, seed=42, dtype=torch.float32)
    best = crf.decode(emissions, mask)
    paths, scores = crf.decode(emissions, mask, k=1, return_scores=True)
    assert torch.equal(paths[:, 0], best)
    many, many_scores = crf.decode(emissions, mask, k=4, return_scores=True)
    assert torch.equal(many[:, 0], best)
    torch.testing.assert_close(many_scores[:, 0], scores[:, 0])
    assert (many_scores[:, :-1] >= many_scores[:, 1:]).all()  # best first
    with pytest.raises(ValueError, match="k must be a positive number"):
        crf.decode(emissions, mask, k=0)


# ---------------------------------------------------------------- span probabilities

SCHEME_TAGS = {
    "bio": ["O", "B-A", "I-A", "B-B", "I-B"],
    "iobes": ["O", "B-A", "I-A", "E-A", "S-A"],
}


@pytest.mark.parametrize("scheme", ["bio", "iobes"])
@pytest.mark.parametrize("constrained", [True, False])
def test_span_probabilities_match_brute_force(scheme, constrained):
    """P(exactly this labelled span) from span_cases' constrained passes over a window (the
    NumPy decoder taggers use) equals the total probability of the paths whose conlleval
    reading contains the span."""
    from nerlab.data.tag_schemes import allowed_transitions, conlleval_spans, span_cases
    from nerlab.inference import crf_numpy

    tags = SCHEME_TAGS[scheme]
    allowed = allowed_transitions(scheme, tags) if constrained else None
    crf = CRF(len(tags), allowed_transitions=allowed, backend="torch").double()
    torch.manual_seed(7)
    with torch.no_grad():
        for p in (crf.transitions, crf.start_transitions, crf.end_transitions):
            p.normal_()
    emissions = torch.randn(2, 4, len(tags), dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    _, path_score = brute_force(crf, emissions, mask, allowed)
    scores = tuple(t.detach().numpy() for t in crf._cast(emissions)[1:])  # float64
    em, mask_np = emissions.numpy(), mask.numpy()
    messages = crf_numpy.forward_backward(em, mask_np, *scores)
    for b in range(2):
        n = int(mask[b].sum())
        paths = list(itertools.product(range(len(tags)), repeat=n))
        path_scores = torch.tensor([path_score(b, p) for p in paths], dtype=torch.float64)
        probs = (path_scores - torch.logsumexp(path_scores, 0)).exp()
        assert messages.logz[b] == pytest.approx(float(torch.logsumexp(path_scores, 0)), abs=1e-6)
        expected: dict = {}
        for path, prob in zip(paths, probs.tolist(), strict=True):
            for span in conlleval_spans([tags[i] for i in path]):
                expected[span] = expected.get(span, 0.0) + prob
        assert len(expected) >= n * (n + 1) // 2  # every span of every type is possible
        for (label, first, last), want in expected.items():
            got = 0.0
            for case in span_cases(tags, label, first, last, n):
                low = min(case)
                keep = np.ones((1, max(case) - low + 1, len(tags)), dtype=bool)
                for position, ids in case.items():
                    keep[0, position - low] = False
                    keep[0, position - low, list(ids)] = True
                log_p = crf_numpy.window_log_probs(
                    em, messages, scores, np.array([b]), np.array([low]), keep
                )
                got += float(np.exp(log_p[0]))
            assert got == pytest.approx(want, abs=1e-9), (label, first, last)

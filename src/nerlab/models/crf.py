"""Linear-chain conditional random field (Lafferty et al. 2001), batch-first.

The API follows pytorch-crf: ``transitions[i, j]`` scores a move from tag ``i`` to tag ``j``,
``start_transitions`` and ``end_transitions`` score the first and the last tag, and the mask is
left-aligned (``mask[:, 0]`` all true). Two interchangeable backends compute the same maths:

* ``"torch"``: batched PyTorch, a loop over time steps (logsumexp for the normaliser, max for
  Viterbi) with autograd for the gradients. Works on any device and can be exported with
  TorchScript: :func:`log_partition_torch` and :func:`viterbi_decode_torch` are scriptable.
* ``"numba"``: CPU only. The normaliser is a custom autograd function running the scaled
  forward-backward algorithm in a compiled kernel, whose marginals are the exact gradient;
  Viterbi is a compiled loop. Per-time-step op dispatch dominates a PyTorch loop on the CPU,
  which is what this backend removes.

``backend="auto"`` uses numba for CPU tensors (if numba imports) and torch otherwise. In both
backends the gold-path score is vectorised torch, so autograd handles it.

Hard constraints (``allowed_transitions``) add ``-10000`` to every forbidden transition, in
training and decoding alike; the penalties live in the persistent buffer
``transition_constraints`` of shape ``(K + 2, K + 2)`` where index ``K`` is START and ``K + 1``
is END (AllenNLP's convention).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

import torch
from torch import Tensor, nn

# numba is a dependency of the project, but its kernels are compiled code that costs about
# 120 MB of memory once imported: they are imported on first use of the numba backend, so a
# process that only decodes with the torch backend (a served tagger) never loads them.
NUMBA_AVAILABLE = importlib.util.find_spec("numba") is not None


class _LazyKernels:
    """``nerlab.models.crf_kernels``, imported on first attribute access."""

    def __getattr__(self, name: str):
        from nerlab.models import crf_kernels

        return getattr(crf_kernels, name)


_kernels = _LazyKernels()

__all__ = [
    "CRF",
    "FORBIDDEN_SCORE",
    "NUMBA_AVAILABLE",
    "log_partition_torch",
    "viterbi_decode_torch",
]

#: Score added to a transition that ``allowed_transitions`` does not permit.
FORBIDDEN_SCORE = -10000.0

_BACKENDS = ("auto", "torch", "numba")
_REDUCTIONS = ("none", "sum", "mean", "token_mean")
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def log_partition_torch(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """Log-partition function ``log Z`` per sentence, ``(B,)``, by the forward algorithm.

    ``emissions`` ``(B, L, K)``, ``mask`` ``(B, L)`` bool and left-aligned. Differentiable by
    autograd; TorchScript-scriptable.
    """
    seq_len = emissions.size(1)
    alpha = start.unsqueeze(0) + emissions[:, 0]  # (B, K)
    trans = transitions.unsqueeze(0)  # (1, K, K)
    for t in range(1, seq_len):
        # (B, K, 1) + (1, K, K) -> logsumexp over the previous tag -> (B, K)
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
    return torch.logsumexp(alpha + end.unsqueeze(0), dim=1)


def marginals_torch(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """Posterior marginals ``(B, L, K)`` by the forward-backward algorithm in log space.

    No autograd (so it also runs under ``torch.inference_mode``); values at padded positions
    are meaningless. ``mask`` ``(B, L)`` bool and left-aligned.
    """
    seq_len = emissions.size(1)
    trans = transitions.unsqueeze(0)  # (1, K, K)
    alphas = [start.unsqueeze(0) + emissions[:, 0]]  # (B, K) each
    for t in range(1, seq_len):
        nxt = torch.logsumexp(alphas[-1].unsqueeze(2) + trans, dim=1) + emissions[:, t]
        alphas.append(torch.where(mask[:, t].unsqueeze(1), nxt, alphas[-1]))
    end_b = end.unsqueeze(0).expand_as(alphas[0])  # (B, K)
    betas = [end_b]  # beta of the last position; a sentence's last word also gets `end`
    for t in range(seq_len - 2, -1, -1):
        ahead = (emissions[:, t + 1] + betas[-1]).unsqueeze(1)  # (B, 1, K)
        nxt = torch.logsumexp(trans + ahead, dim=2)  # (B, K)
        betas.append(torch.where(mask[:, t + 1].unsqueeze(1), nxt, end_b))
    alpha = torch.stack(alphas, dim=1)  # (B, L, K)
    beta = torch.stack(betas[::-1], dim=1)  # (B, L, K)
    logz = torch.logsumexp(alpha[:, 0] + beta[:, 0], dim=1)  # (B,)
    # rounding can put a certain tag a hair above probability 1
    return (alpha + beta - logz[:, None, None]).exp().clamp_(0.0, 1.0)


def viterbi_decode_torch(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """Most likely tag sequence per sentence, ``(B, L)`` int64 with 0 at padded positions.

    Pure batched torch (no Python lists of per-sentence tags), TorchScript-scriptable. Padded
    steps carry the scores over unchanged and store identity back-pointers, so one backtrack
    from the last column serves every sentence length. Ties resolve to the lowest tag index.
    """
    batch_size, seq_len, num_tags = emissions.shape
    score = start.unsqueeze(0) + emissions[:, 0]  # (B, K)
    trans = transitions.unsqueeze(0)  # (1, K, K)
    identity = torch.arange(num_tags, device=emissions.device).unsqueeze(0).expand(batch_size, -1)
    history: list[Tensor] = []
    for t in range(1, seq_len):
        # (B, K, 1) + (1, K, K) -> best previous tag for every current tag -> (B, K)
        best, back = torch.max(score.unsqueeze(2) + trans, dim=1)
        step = mask[:, t].unsqueeze(1)  # (B, 1)
        score = torch.where(step, best + emissions[:, t], score)
        history.append(torch.where(step, back, identity))
    last = torch.argmax(score + end.unsqueeze(0), dim=1)  # (B,)
    tags = torch.zeros(batch_size, seq_len, dtype=torch.long, device=emissions.device)
    tags[:, seq_len - 1] = last
    for t in range(seq_len - 1, 0, -1):
        last = history[t - 1].gather(1, last.unsqueeze(1)).squeeze(1)
        tags[:, t - 1] = last
    return tags.masked_fill(~mask, 0)


def kbest_viterbi_torch(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """The ``k`` best tag sequences per sentence, best first: paths ``(B, k, L)`` int64 (0 at
    padded positions) and their scores ``(B, k)``.

    List Viterbi: each tag keeps the ``k`` best partial paths ending in it, so a step takes the
    top ``k`` of ``K * k`` candidates per tag. A sentence with fewer than ``k`` paths (``K**n <
    k``) fills the remaining ranks with score ``-inf``. Padded steps carry the scores over with
    identity back-pointers, as :func:`viterbi_decode_torch` does.
    """
    batch_size, seq_len, num_tags = emissions.shape
    device = emissions.device
    score = emissions.new_full((batch_size, num_tags, k), float("-inf"))  # (B, K, k)
    score[:, :, 0] = start.unsqueeze(0) + emissions[:, 0]
    same_tag = torch.arange(num_tags, device=device)[None, :, None].expand(batch_size, -1, k)
    same_rank = torch.arange(k, device=device)[None, None, :].expand(batch_size, num_tags, -1)
    trans = transitions[None, :, None, :]  # (1, K_prev, 1, K)
    back_tags: list[Tensor] = []
    back_ranks: list[Tensor] = []
    for t in range(1, seq_len):
        candidates = (score.unsqueeze(3) + trans).reshape(batch_size, num_tags * k, num_tags)
        best, where_from = candidates.topk(k, dim=1)  # (B, k, K): over (previous tag, rank)
        best, where_from = best.transpose(1, 2), where_from.transpose(1, 2)  # (B, K, k)
        step = mask[:, t][:, None, None]  # (B, 1, 1)
        score = torch.where(step, best + emissions[:, t].unsqueeze(2), score)
        back_tags.append(torch.where(step, where_from // k, same_tag))
        back_ranks.append(torch.where(step, where_from % k, same_rank))
    final = (score + end[None, :, None]).reshape(batch_size, num_tags * k)
    scores, flat = final.topk(k, dim=1)  # (B, k)
    tag, rank = flat // k, flat % k
    paths = torch.zeros(batch_size, k, seq_len, dtype=torch.long, device=device)
    paths[:, :, seq_len - 1] = tag
    for t in range(seq_len - 1, 0, -1):
        flat = tag * k + rank  # (B, k): row of (tag, rank) in the flattened (K * k) history
        tag = back_tags[t - 1].reshape(batch_size, -1).gather(1, flat)
        rank = back_ranks[t - 1].reshape(batch_size, -1).gather(1, flat)
        paths[:, :, t - 1] = tag
    return paths.masked_fill(~mask.unsqueeze(1), 0), scores


class _NumbaLogPartition(torch.autograd.Function):
    """``log Z`` ``(B,)`` by the numba forward-backward kernel.

    The kernel computes the marginals in the forward pass whenever any input needs a gradient
    (they are the gradient: d logZ / d emissions = unary marginals, d / d transitions = summed
    pairwise marginals, d / d start and d / d end = marginals at the first and last position),
    so backward is only a few products with the incoming gradient.
    """

    @staticmethod
    def forward(ctx, emissions, lengths, transitions, start, end, force_log_space, parallel):
        need_grad = any(ctx.needs_input_grad)
        logz, marg, pair, last = _kernels.forward_backward(
            emissions.detach().numpy(),
            lengths,
            transitions.detach().numpy(),
            start.detach().numpy(),
            end.detach().numpy(),
            need_grad,
            force_log_space,
            parallel,
        )
        if need_grad:
            ctx.marg = torch.from_numpy(marg)  # (B, L, K)
            ctx.pair = torch.from_numpy(pair)  # (B, K, K)
            ctx.last = torch.from_numpy(last)  # (B, K)
        return torch.from_numpy(logz)

    @staticmethod
    def backward(ctx, grad_logz):
        g = grad_logz.contiguous()
        need_em, _, need_trans, need_start, need_end, _, _ = ctx.needs_input_grad
        grad_em = grad_trans = grad_start = grad_end = None
        if need_em:
            grad_em = ctx.marg * g.view(-1, 1, 1)
        if need_trans:
            num_tags = ctx.pair.size(1)
            grad_trans = (g @ ctx.pair.view(g.size(0), -1)).view(num_tags, num_tags)
        if need_start:
            grad_start = g @ ctx.marg[:, 0]
        if need_end:
            grad_end = g @ ctx.last
        return grad_em, None, grad_trans, grad_start, grad_end, None, None


def numba_log_partition(
    emissions: Tensor,
    lengths,
    transitions: Tensor,
    start: Tensor,
    end: Tensor,
    force_log_space: bool = False,
    parallel: bool | None = None,
) -> Tensor:
    """Differentiable ``log Z`` ``(B,)`` on the numba backend (CPU tensors of one float dtype,
    ``emissions`` contiguous, ``lengths`` an int64 NumPy array). ``force_log_space`` skips the
    scaled kernel and runs its log-space fallback for every sentence; ``parallel`` picks the
    kernel driver (see :func:`nerlab.models.crf_kernels.forward_backward`)."""
    if torch.is_grad_enabled() and (
        emissions.requires_grad
        or transitions.requires_grad
        or start.requires_grad
        or end.requires_grad
    ):
        return _NumbaLogPartition.apply(
            emissions, lengths, transitions, start, end, force_log_space, parallel
        )
    # No graph to build (e.g. evaluation under no_grad): skip the backward pass. Inside
    # Function.forward this cannot be told, as needs_input_grad ignores the grad mode.
    logz, _, _, _ = _kernels.forward_backward(
        emissions.detach().numpy(),
        lengths,
        transitions.detach().numpy(),
        start.detach().numpy(),
        end.detach().numpy(),
        False,
        force_log_space,
        parallel,
    )
    return torch.from_numpy(logz)


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags; inputs are batch-first.

    Args:
        num_tags: number of tags ``K``.
        allowed_transitions: optional iterable of permitted ``(i, j)`` pairs, where ``i`` or
            ``j`` may be ``K`` (START) or ``K + 1`` (END), as produced by AllenNLP's
            ``allowed_transitions``. Every other transition scores ``FORBIDDEN_SCORE`` more,
            so constrained decoding never returns a forbidden transition. ``None``: no
            constraints.
        backend: ``"numba"`` (CPU only), ``"torch"`` or ``"auto"`` (numba for CPU tensors).

    Emissions in float16/bfloat16 (e.g. under autocast) are computed in float32 with autocast
    disabled, and the results are float32.
    """

    def __init__(
        self,
        num_tags: int,
        allowed_transitions: Iterable[tuple[int, int]] | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if num_tags <= 0:
            raise ValueError(f"num_tags must be positive, got {num_tags}")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        if backend == "numba" and not NUMBA_AVAILABLE:
            raise ImportError("backend='numba' needs numba, which is not installed")
        self.num_tags = num_tags
        self.backend = backend
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        constraints = torch.zeros(num_tags + 2, num_tags + 2)
        if allowed_transitions is not None:
            constraints.fill_(FORBIDDEN_SCORE)
            for i, j in allowed_transitions:
                if not (0 <= i < num_tags + 2 and 0 <= j < num_tags + 2):
                    raise ValueError(
                        f"allowed transition ({i}, {j}) is out of range for {num_tags} tags "
                        f"(indices 0..{num_tags + 1}, START={num_tags}, END={num_tags + 1})"
                    )
                constraints[i, j] = 0.0
        self.register_buffer("transition_constraints", constraints)
        self._refresh_constrained()
        #: numba backend: True/False forces the prange/serial kernels, None (default) follows
        #: ``NERLAB_CRF_PARALLEL`` (off unless set to 1; see :mod:`nerlab.models.crf_kernels`).
        self.parallel: bool | None = None
        #: Testing hook: run the numba normaliser's log-space fallback for every sentence.
        self._force_log_space = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the scores uniformly in [-0.1, 0.1], like pytorch-crf."""
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def _refresh_constrained(self) -> None:
        # Cached as a Python bool so that unconstrained CRFs skip three additions per call;
        # refreshed by load_state_dict. Change the buffer through load_state_dict (or call
        # this method after editing it in place).
        self._constrained = bool((self.transition_constraints != 0).any())

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh_constrained()

    def extra_repr(self) -> str:
        return (
            f"num_tags={self.num_tags}, backend={self.backend!r}, constrained={self._constrained}"
        )

    # ------------------------------------------------------------------ public API

    def forward(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: str = "mean"
    ) -> Tensor:
        """Negative log-likelihood of ``tags``, reduced by ``"none"`` (``(B,)``), ``"sum"``,
        ``"mean"`` (over sentences) or ``"token_mean"`` (over unmasked tokens)."""
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        nll = -self.log_likelihood(emissions, tags, mask)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        num_tokens = nll.new_tensor(tags.numel()) if mask is None else mask.sum().to(nll.dtype)
        return nll.sum() / num_tokens

    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Log-likelihood ``log p(tags | emissions)`` per sentence, ``(B,)``.

        ``emissions`` ``(B, L, K)``, ``tags`` ``(B, L)`` long, ``mask`` ``(B, L)`` bool
        (default all true). Tags at masked positions are ignored (any value is accepted).
        """
        emissions, mask = self._check(emissions, mask, tags)
        with torch.autocast(emissions.device.type, enabled=False):
            emissions, transitions, start, end = self._cast(emissions)
            lengths = self._lengths(emissions, mask)
            tags = torch.where(mask, tags.long(), 0)
            score = self._score(emissions, tags, mask, lengths, transitions, start, end)
            return score - self._normalizer(emissions, mask, lengths, transitions, start, end)

    def decode(
        self,
        emissions: Tensor,
        mask: Tensor | None = None,
        k: int | None = None,
        return_scores: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Viterbi decoding: the most likely tag sequence per sentence, ``(B, L)`` int64 on
        the emissions' device, 0 at padded positions.

        With ``k``, the ``k`` best sequences, ``(B, k, L)``, best first (``k=1`` is the best
        path above); ``return_scores=True`` also returns their unnormalised scores, ``(B,)`` or
        ``(B, k)``: a path's log-probability is its score minus the sentence's log-partition.
        """
        emissions, mask = self._check(emissions, mask)
        if k is not None and k < 1:
            raise ValueError(f"k must be a positive number of paths, got {k}")
        with torch.no_grad(), torch.autocast(emissions.device.type, enabled=False):
            emissions, transitions, start, end = self._cast(emissions)
            lengths = self._lengths(emissions, mask)
            if k is None or k == 1:
                best = self._viterbi(emissions, mask, lengths, transitions, start, end)
                paths, scores = best, None
                if return_scores:
                    scores = self._score(emissions, best, mask, lengths, transitions, start, end)
                if k == 1:
                    paths = best.unsqueeze(1)
                    scores = scores.unsqueeze(1) if scores is not None else None
            else:
                paths, scores = kbest_viterbi_torch(emissions, mask, transitions, start, end, k)
        return (paths, scores) if return_scores else paths

    def inference_parameters(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(transitions, start, end)`` with the transition constraints added, float32 on the
        CPU: what decoding outside this module (NumPy, an exported model) needs."""
        with torch.no_grad():
            _, transitions, start, end = self._cast(torch.zeros(1, 1, self.num_tags))
        return tuple(t.detach().float().cpu() for t in (transitions, start, end))

    def constrained_log_partition(
        self, emissions: Tensor, mask: Tensor | None, allowed: Tensor
    ) -> Tensor:
        """``log Z`` over the tag paths whose tag at every position is allowed, ``(B,)``:
        ``allowed`` is ``(B, L, K)`` bool. With every tag allowed this is the log-partition
        function; the ratio of the two is the probability that the path keeps to ``allowed``
        (``exp(constrained - full)``). ``-inf`` where no path does. Not differentiable."""
        emissions, mask = self._check(emissions, mask)
        if allowed.shape != emissions.shape:
            raise ValueError(
                f"allowed must have the emissions' shape {tuple(emissions.shape)}, "
                f"got {tuple(allowed.shape)}"
            )
        with torch.no_grad(), torch.autocast(emissions.device.type, enabled=False):
            emissions, transitions, start, end = self._cast(emissions)
            self._lengths(emissions, mask)  # the mask must be left-aligned
            barred = emissions.masked_fill(~allowed.to(emissions.device), float("-inf"))
            return log_partition_torch(barred, mask, transitions, start, end)

    def marginals(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """Posterior marginals ``p(y_t = k | emissions)``, ``(B, L, K)``: they sum to 1 over
        tags at unmasked positions and are 0 at padded positions. Not differentiable."""
        emissions, mask = self._check(emissions, mask)
        with torch.no_grad(), torch.autocast(emissions.device.type, enabled=False):
            emissions, transitions, start, end = self._cast(emissions)
            lengths = self._lengths(emissions, mask)
            if self._use_numba(emissions):
                _, marg, _, _ = _kernels.forward_backward(
                    emissions.detach().numpy(),
                    lengths.numpy(),
                    transitions.detach().numpy(),
                    start.detach().numpy(),
                    end.detach().numpy(),
                    True,
                    self._force_log_space,
                    self.parallel,
                )
                return torch.from_numpy(marg)
            marg = marginals_torch(emissions, mask, transitions, start, end)
        return marg.masked_fill(~mask.unsqueeze(2), 0.0)

    # ------------------------------------------------------------------ the maths

    def _score(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor,
        lengths: Tensor,
        transitions: Tensor,
        start: Tensor,
        end: Tensor,
    ) -> Tensor:
        """Score of the gold path, ``(B,)``: start + emissions + transitions + end, all by
        gathers (no loop over time).

        The lookups are ``index_select``s, not advanced indexing, whose backward (``index_put_``
        with accumulate) adds in thread order on the CPU: same inputs, different gradients.
        """
        maskf = mask.to(emissions.dtype)  # (B, L)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, L)
        score = start.index_select(0, tags[:, 0]) + (emit * maskf).sum(1)
        if tags.size(1) > 1:
            pairs = tags[:, :-1] * self.num_tags + tags[:, 1:]  # (B, L - 1): flat (i, j)
            trans = transitions.reshape(-1).index_select(0, pairs.reshape(-1)).view_as(pairs)
            score = score + (trans * maskf[:, 1:]).sum(1)
        last_tags = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return score + end.index_select(0, last_tags)

    def _normalizer(
        self,
        emissions: Tensor,
        mask: Tensor,
        lengths: Tensor,
        transitions: Tensor,
        start: Tensor,
        end: Tensor,
    ) -> Tensor:
        """Log-partition function ``log Z``, ``(B,)``."""
        if self._use_numba(emissions):
            return numba_log_partition(
                emissions,
                lengths.numpy(),
                transitions,
                start,
                end,
                self._force_log_space,
                self.parallel,
            )
        return log_partition_torch(emissions, mask, transitions, start, end)

    def _viterbi(
        self,
        emissions: Tensor,
        mask: Tensor,
        lengths: Tensor,
        transitions: Tensor,
        start: Tensor,
        end: Tensor,
    ) -> Tensor:
        """Best path per sentence, ``(B, L)`` int64."""
        if self._use_numba(emissions):
            out = _kernels.viterbi(
                emissions.detach().numpy(),
                lengths.numpy(),
                transitions.detach().numpy(),
                start.detach().numpy(),
                end.detach().numpy(),
                self.parallel,
            )
            return torch.from_numpy(out)
        return viterbi_decode_torch(emissions, mask, transitions, start, end)

    # ------------------------------------------------------------------ plumbing

    def _use_numba(self, emissions: Tensor) -> bool:
        if self.backend == "torch":
            return False
        if self.backend == "numba":
            if emissions.device.type != "cpu":
                raise ValueError(
                    f"backend='numba' runs on the CPU only, got emissions on {emissions.device}; "
                    "use backend='auto' or 'torch'"
                )
            return True
        return NUMBA_AVAILABLE and emissions.device.type == "cpu"

    def _check(
        self, emissions: Tensor, mask: Tensor | None, tags: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Validate shapes; return the emissions and a bool mask (all true if ``None``)."""
        if emissions.dim() != 3:
            raise ValueError(
                f"emissions must have 3 dimensions (batch, length, num_tags), "
                f"got {emissions.dim()} with shape {tuple(emissions.shape)}"
            )
        batch_size, seq_len, num_tags = emissions.shape
        if num_tags != self.num_tags:
            raise ValueError(
                f"emissions have {num_tags} tags but the CRF was built for {self.num_tags}"
            )
        if seq_len == 0:
            raise ValueError("emissions have length 0; every sentence needs at least one token")
        for name, verb, other in (("tags", "have", tags), ("mask", "has", mask)):
            if other is None:
                continue
            if other.dim() != 2:
                raise ValueError(
                    f"{name} must have 2 dimensions (batch, length), got {other.dim()} "
                    f"with shape {tuple(other.shape)}"
                )
            if other.size(0) != batch_size:
                raise ValueError(
                    f"{name} {verb} batch size {other.size(0)} but emissions have batch size "
                    f"{batch_size}"
                )
            if other.size(1) != seq_len:
                raise ValueError(
                    f"{name} {verb} length {other.size(1)} but emissions have length {seq_len}"
                )
        if mask is None:
            mask = torch.ones(batch_size, seq_len, dtype=torch.bool, device=emissions.device)
        elif mask.dtype != torch.bool:
            mask = mask != 0
        return emissions, mask

    def _lengths(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Sentence lengths ``(B,)`` int64; raises if the mask is not left-aligned."""
        if self._use_numba(emissions):
            lengths, row, status = _kernels.mask_lengths(mask.contiguous().numpy())
            if status == 0:
                return torch.from_numpy(lengths)
            bad = row
        else:
            first = mask[:, 0]
            if bool(first.all()) and not bool((mask[:, 1:] & ~mask[:, :-1]).any()):
                return mask.sum(1)
            status = 1 if not bool(first.all()) else 2
            bad = int((~first).nonzero()[0, 0]) if status == 1 else -1
        if status == 1:
            raise ValueError(
                f"mask[:, 0] must be all True (every sentence starts at position 0), "
                f"but mask[{bad}, 0] is False"
            )
        where = f" (row {bad})" if bad >= 0 else ""
        raise ValueError(f"mask must be left-aligned: a True follows a False{where}")

    def _cast(self, emissions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Emissions and the constrained scores in one float dtype (at least float32), the
        emissions contiguous. Returns ``(emissions, transitions, start, end)``."""
        dtype = torch.promote_types(emissions.dtype, self.transitions.dtype)
        if dtype in _LOW_PRECISION or not dtype.is_floating_point:
            dtype = torch.float32
        emissions = emissions.to(dtype).contiguous()
        transitions = self.transitions.to(dtype)
        start = self.start_transitions.to(dtype)
        end = self.end_transitions.to(dtype)
        if self._constrained:
            c = self.transition_constraints.to(dtype)
            k = self.num_tags
            transitions = transitions + c[:k, :k]
            start = start + c[k, :k]
            end = end + c[:k, k + 1]
        return emissions, transitions, start, end

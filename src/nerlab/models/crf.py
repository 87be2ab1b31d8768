"""Linear-chain conditional random field (Lafferty et al. 2001), batch-first.

The API follows pytorch-crf: ``transitions[i, j]`` scores a move from tag ``i`` to tag ``j``,
``start_transitions`` and ``end_transitions`` score the first and the last tag, and the mask is
left-aligned (``mask[:, 0]`` all true). Two interchangeable backends compute the same maths:

* ``"torch"``: batched PyTorch without a loop over time steps: the normaliser is a tree of
  log-semiring matrix products (``log2 L`` rounds) with autograd for the gradients, Viterbi a
  max-plus prefix scan and a pointer-doubling backtrack. The number of kernels a call launches
  grows as ``log L``, which is what a GPU needs (a loop of small kernels per time step leaves it
  waiting on launches). Works on any device.
* ``"numba"``: CPU only. The normaliser is a custom autograd function running the scaled
  forward-backward algorithm in a compiled kernel, whose marginals are the exact gradient;
  Viterbi is a compiled loop. Per-time-step op dispatch dominates a PyTorch loop on the CPU,
  which is what this backend removes.

``backend="auto"`` uses numba for CPU tensors (if numba imports) and torch otherwise (CUDA).
In both backends the gold-path score is vectorised torch, so autograd handles it.

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


#: The off-diagonal of the log-semiring identity that stands in for padded steps: finite, so no
#: row is all -inf and no gradient turns into NaN, yet so low that its exp() is exactly 0 in
#: float32 and float64 (sums of a few of them stay far from overflow).
IDENTITY_OFF_DIAGONAL = -1e30


def _identity(num_tags: int, like: Tensor) -> Tensor:
    """``(K, K)``: the identity of the log and max-plus semirings, with a finite off-diagonal."""
    eye = like.new_full((num_tags, num_tags), IDENTITY_OFF_DIAGONAL)
    return eye.fill_diagonal_(0.0)


def _step_matrices(emissions: Tensor, mask: Tensor, transitions: Tensor) -> Tensor:
    """``(B, L - 1, K, K)``: the step into position ``t + 1`` scores ``transitions[i, j] +
    emissions[:, t + 1, j]`` where that position is real and is the identity where it is
    padding."""
    steps = transitions[None, None] + emissions[:, 1:, None, :]
    return torch.where(mask[:, 1:, None, None], steps, _identity(emissions.size(2), emissions))


def _log_matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product in the log semiring over the last two dimensions, as an ordinary matrix
    product of exponentials: each row of ``a`` is shifted by its maximum and each column of
    ``b`` by its own, so nothing overflows, and a sum under the smallest normal number (a
    pair ``(i, j)`` whose every path is that far below the best ones through ``i`` and into
    ``j``: about 700 nats in float64) is held there instead of becoming ``-inf``. The shifts
    cancel exactly, so they are constants for autograd."""
    row = a.detach().amax(dim=-1, keepdim=True)
    col = b.detach().amax(dim=-2, keepdim=True)
    product = torch.matmul((a - row).exp(), (b - col).exp())
    return product.clamp_min(torch.finfo(product.dtype).tiny).log() + row + col


def _max_matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product in the max-plus semiring over the last two dimensions."""
    return (a.unsqueeze(-2) + b.transpose(-1, -2).unsqueeze(-3)).amax(dim=-1)


def log_partition_torch(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """Log-partition function ``log Z`` per sentence, ``(B,)``, by a parallel reduction.

    The ``L - 1`` step matrices (padding: the identity) are multiplied pairwise in the log
    semiring, a tree of ``ceil(log2(L - 1))`` rounds, so the number of kernels a call launches
    (forward and autograd's backward) grows as ``log L``, not ``L`` (Rush 2020, Torch-Struct's
    linear chain). The tree computes in float64 (see :func:`_log_matmul`) and the result comes
    back in the emissions' dtype. ``emissions`` ``(B, L, K)``, ``mask`` ``(B, L)`` bool and
    left-aligned.
    """
    dtype = emissions.dtype
    emissions, transitions = emissions.double(), transitions.double()
    start, end = start.double(), end.double()
    alpha = start.unsqueeze(0) + emissions[:, 0]  # (B, K)
    if emissions.size(1) == 1:
        return torch.logsumexp(alpha + end.unsqueeze(0), dim=1).to(dtype)
    steps = _pad_to_power_of_two(_step_matrices(emissions, mask, transitions))  # (B, W, K, K)
    while steps.size(1) > 1:
        steps = _log_matmul(steps[:, 0::2], steps[:, 1::2])
    total = alpha.unsqueeze(2) + steps[:, 0] + end[None, None, :]  # (B, K, K)
    return torch.logsumexp(total.flatten(1), dim=1).to(dtype)


def _pad_to_power_of_two(steps: Tensor) -> Tensor:
    """``steps`` ``(B, T, K, K)`` padded with identities to the next power of two along ``T``."""
    count = steps.size(1)
    width = 1 << (count - 1).bit_length()
    if width == count:
        return steps
    identity = _identity(steps.size(-1), steps).expand(steps.size(0), width - count, -1, -1)
    return torch.cat([steps, identity], dim=1)


def viterbi_decode_torch(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """Most likely tag sequence per sentence, ``(B, L)`` int64 with 0 at padded positions.

    Every step runs on the whole batch and sentence at once, in ``O(log L)`` rounds: a tree of
    max-plus products of the step matrices (up), the best score of every prefix passed back
    down the tree as vectors (a work-efficient scan), the back-pointers of every position in
    one step, and the backtrack as a scan composing the back-pointer maps (pointer doubling).
    Padded steps are identities, so one backtrack from the last column serves every sentence
    length. Ties resolve to the lowest tag index.
    """
    seq_len, num_tags = emissions.size(1), emissions.size(2)
    first = start.unsqueeze(0) + emissions[:, 0]  # (B, K)
    if seq_len == 1:
        return torch.argmax(first + end.unsqueeze(0), dim=1).unsqueeze(1)
    count = seq_len - 1
    tree = [_pad_to_power_of_two(_step_matrices(emissions, mask, transitions))]  # (B, W, K, K)
    while tree[-1].size(1) > 1:
        tree.append(_max_matmul(tree[-1][:, 0::2], tree[-1][:, 1::2]))
    # down: the best score of each block's prefix enters it; a right child's is its left
    # sibling's entering score carried through the left sibling
    entering = first.unsqueeze(1)  # (B, 1, K)
    for level in reversed(tree[:-1]):
        left = level[:, 0::2]  # (B, n, K, K)
        through = (entering.unsqueeze(3) + left).amax(dim=2)  # (B, n, K)
        entering = torch.stack([entering, through], dim=2).flatten(1, 2)  # (B, 2n, K)
    scores = entering[:, :count]  # (B, T, K): the best score ending in each tag at 0..T-1
    final = (first.unsqueeze(2) + tree[-1][:, 0]).amax(dim=1)  # (B, K): at the last column
    # back[:, t, j]: the best tag at t for tag j at t + 1 (the identity at padded steps)
    back = (scores.unsqueeze(3) + transitions).argmax(dim=2)  # (B, T, K)
    identity = torch.arange(num_tags, device=emissions.device)
    back = torch.where(mask[:, 1:, None], back, identity)
    # compose the maps from the end: back[:, t] becomes back_t o back_{t+1} o ... o back_{T-1}
    shift = 1
    while shift < count:
        composed = back[:, :-shift].gather(2, back[:, shift:])
        back = torch.cat([composed, back[:, count - shift :]], dim=1)
        shift *= 2
    last = torch.argmax(final + end.unsqueeze(0), dim=1)  # (B,)
    earlier = back.gather(2, last[:, None, None].expand(-1, count, 1)).squeeze(2)  # (B, T)
    tags = torch.cat([earlier, last.unsqueeze(1)], dim=1)
    return tags.masked_fill(~mask, 0)


def kbest_viterbi_torch(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """The ``k`` best tag sequences per sentence, best first: paths ``(B, k, L)`` int64 (0 at
    padded positions) and their scores ``(B, k)``.

    List Viterbi: each tag keeps the ``k`` best partial paths ending in it, so a step takes the
    top ``k`` of ``K * k`` candidates per tag. A sentence with fewer than ``k`` paths (``K**n <
    k``) fills the remaining ranks with score ``-inf``. Padded steps carry the scores over with
    identity back-pointers. A loop over time steps: the ``k`` best paths are asked for one
    sentence at a time (``Tagger.tag(..., k=...)``), not in training.
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
        elif emissions.device.type == "cuda":
            # checked on the device: reading a flag back to the host would stall every step
            torch._assert_async(
                mask[:, 0].all() & ~(mask[:, 1:] & ~mask[:, :-1]).any(),
                "mask must be left-aligned with mask[:, 0] all True",
            )
            return mask.sum(1)
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

"""The BiLSTM-CRF network of Lample et al. (2016), wired from small modules.

word embedding (+ char features, + optional casing embedding) -> dropout -> BiLSTM over packed
sequences -> dropout -> dense layer per token -> CRF (or a softmax, for the ablation).
The network only wires parts; it knows nothing about Lightning, files or tag strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from nerlab.data.encoding import CASINGS
from nerlab.data.tag_schemes import allowed_transitions, canonical_scheme
from nerlab.errors import ConfigError
from nerlab.models.char_encoder import CHAR_ENCODERS, build_char_encoder
from nerlab.models.crf import CRF
from nerlab.models.document_memory import (
    MentionAttention,
    mean_of_mentions,
    mean_of_other_sentences,
)
from nerlab.models.dropout import SequenceDropout, keep_mask
from nerlab.models.embeddings import WordEmbedding
from nerlab.models.encoder import BiLSTMEncoder

POOLINGS = ("mean", "attention")


@dataclass
class TaggerConfig:
    """Every hyper-parameter needed to rebuild the network (saved in ``model_info.json``).

    Names follow NLP Architect's NER example where it had one. This is the one place the
    network's settings are checked: a wrong value fails here, naming the setting and the value.
    """

    num_words: int
    num_chars: int
    num_tags: int
    word_embedding_dims: int = 50
    char: str = "cnn"  # cnn | lstm | none
    character_embedding_dims: int = 25
    char_features_dims: int = 50  # filters of the char CNN
    char_kernel_sizes: list[int] = field(default_factory=lambda: [3])
    char_features_lstm_dims: int = 25  # hidden size per direction of the char LSTM
    casing_dims: int = 0  # 0 disables the word-shape embedding
    entity_tagger_lstm_dims: int = 100  # hidden size per direction of the sentence BiLSTM
    lstm_layers: int = 1
    dropout: float = 0.5
    variational_dropout: bool = False
    # in training, each token's word vector is zeroed with this probability (flair's
    # WordDropout), so the tagger learns to read the char features and the context too
    word_dropout: float = 0.0
    # dropout on the character embeddings before the char encoder (Ma & Hovy use 0.5)
    char_dropout: float = 0.0
    crf: bool = True
    # a fixed penalty on the transitions the tag scheme forbids (O -> I-PER in IOBES)
    constrain_transitions: bool = True
    freeze_embeddings: bool = False
    # each capitalized token also reads the encoder states of the other tokens with its
    # lowercased form in its document (batches then hold whole documents): pooled by their
    # mean, or by attention; with document_encoder_dims > 0 a second BiLSTM of that size reads
    # [state; memory; flag], so the memory reaches the neighbouring words too
    document_memory: bool = False
    document_pooling: str = "mean"  # mean | attention
    document_attention_dims: int = 64
    document_encoder_dims: int = 0
    # with the document memory: each token also reads the mean encoder state of the other
    # sentences of its document (what the document is about), with a flag
    document_context: bool = False

    def __post_init__(self) -> None:
        for name in (
            "num_words",
            "num_chars",
            "num_tags",
            "word_embedding_dims",
            "entity_tagger_lstm_dims",
            "lstm_layers",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be positive, found {getattr(self, name)}")
        for name in ("dropout", "word_dropout", "char_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), found {getattr(self, name)}")
        if self.char not in CHAR_ENCODERS:
            raise ConfigError(
                f"model.char must be one of {', '.join(CHAR_ENCODERS)}, found {self.char!r}"
            )
        if self.char != "none":
            sizes = {"character_embedding_dims": self.character_embedding_dims}
            if self.char == "cnn":
                sizes["char_features_dims"] = self.char_features_dims
            else:
                sizes["char_features_lstm_dims"] = self.char_features_lstm_dims
            for name, value in sizes.items():
                if value < 1:
                    raise ConfigError(f"model.{name} must be positive, found {value}")
        if self.char == "cnn" and (not self.char_kernel_sizes or min(self.char_kernel_sizes) < 1):
            raise ConfigError(
                f"model.char_kernel_sizes must be positive widths, found {self.char_kernel_sizes}"
            )
        if self.casing_dims < 0:
            raise ConfigError(f"model.casing_dims must be >= 0, found {self.casing_dims}")
        if self.document_pooling not in POOLINGS:
            raise ConfigError(
                f"model.document_pooling must be one of {', '.join(POOLINGS)}, "
                f"found {self.document_pooling!r}"
            )
        if self.document_attention_dims < 1:
            raise ConfigError(
                "model.document_attention_dims must be positive, "
                f"found {self.document_attention_dims}"
            )
        if self.document_encoder_dims < 0:
            raise ConfigError(
                f"model.document_encoder_dims must be >= 0, found {self.document_encoder_dims}"
            )
        if self.document_context and not self.document_memory:
            raise ConfigError(
                "model.document_context needs model.document_memory=true (batches of whole "
                "documents)"
            )
        self.char_kernel_sizes = list(self.char_kernel_sizes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TaggerConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown model settings {sorted(unknown)}")
        return cls(**data)


class BiLSTMTagger(nn.Module):
    """Emission scores for every token, and the CRF (or softmax) that turns them into tags."""

    def __init__(
        self, config: TaggerConfig, allowed_transitions: list[tuple[int, int]] | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.words = WordEmbedding(
            config.num_words, config.word_embedding_dims, freeze=config.freeze_embeddings
        )
        self.chars = build_char_encoder(config)
        input_dim = config.word_embedding_dims + (self.chars.output_dim if self.chars else 0)
        self.casing = None
        if config.casing_dims > 0:
            self.casing = nn.Embedding(len(CASINGS), config.casing_dims, padding_idx=0)
            input_dim += config.casing_dims
        self.input_dropout = SequenceDropout(config.dropout, config.variational_dropout)
        self.encoder = BiLSTMEncoder(
            input_dim, config.entity_tagger_lstm_dims, config.lstm_layers, config.dropout
        )
        self.output_dropout = SequenceDropout(config.dropout, config.variational_dropout)
        hidden = 2 * config.entity_tagger_lstm_dims
        projected = hidden
        self.mentions = None
        self.document_encoder = None
        if config.document_memory:
            if config.document_pooling == "attention":
                self.mentions = MentionAttention(hidden, config.document_attention_dims)
            # [own state; the pooled state of the other mentions; whether there are any]
            projected = 2 * hidden + 1
            if config.document_context:  # [...; the other sentences' mean state; flag]
                projected += hidden + 1
            if config.document_encoder_dims:
                self.document_encoder = BiLSTMEncoder(projected, config.document_encoder_dims)
                self.document_dropout = SequenceDropout(config.dropout, config.variational_dropout)
                projected += self.document_encoder.output_dim
        self.projection = nn.Linear(projected, config.num_tags)
        self.crf = (
            CRF(config.num_tags, allowed_transitions=allowed_transitions) if config.crf else None
        )

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token representations fed to the BiLSTM, ``(B, L, D_in)``."""
        words = self.words(batch["word_ids"])  # (B, L, D_w)
        if self.training and self.config.word_dropout > 0.0:
            # the whole vector of a token, unscaled (flair's WordDropout)
            keep = keep_mask(words.shape[:2], self.config.word_dropout, words.device)
            words = words * keep.unsqueeze(-1).to(words.dtype)
        parts = [words]
        if self.chars is not None:
            per_form = self.chars(batch["char_ids"], batch["char_lengths"])  # (U, D_c)
            # an embedding lookup, not per_form[form_index]: the backward of advanced indexing
            # (index_put_ with accumulate) adds in thread order on the CPU, which made two runs
            # with the same seed differ; the embedding's backward adds in a fixed order
            parts.append(F.embedding(batch["form_index"], per_form))  # (B, L, D_c)
        if self.casing is not None:
            parts.append(self.casing(batch["casing"]))
        return torch.cat(parts, dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Emission scores ``(B, L, K)``; positions outside ``batch["mask"]`` are meaningless."""
        x = self.input_dropout(self.features(batch))
        h = self.encoder(x, batch["mask"])  # (B, L, 2H)
        if self.config.document_memory:
            groups = batch["memory_group"]
            pooled = self.mentions(h, groups) if self.mentions else mean_of_mentions(h, groups)
            if self.config.document_context:
                context = mean_of_other_sentences(h, batch["mask"], batch["document_row"])
                pooled = (*pooled, *context)
            h = torch.cat([h, *pooled], dim=-1)  # (B, L, 4H + 1), 6H + 2 with the context
            if self.document_encoder is not None:
                again = self.document_encoder(self.document_dropout(h), batch["mask"])
                h = torch.cat([h, again], dim=-1)
        return self.projection(self.output_dropout(h))  # (B, L, K)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per sentence (CRF) or cross entropy per sentence."""
        if self.crf is not None:
            return -self.crf.log_likelihood(emissions, tags, mask).mean()
        logits = emissions.float().log_softmax(-1)  # (B, L, K)
        nll = -logits.gather(-1, tags.unsqueeze(-1)).squeeze(-1)  # (B, L)
        return (nll * mask).sum() / mask.shape[0]

    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor, k: int | None = None
    ) -> torch.Tensor:
        """Best tag ids ``(B, L)``, or with ``k`` the ``k`` best sequences ``(B, k, L)``, best
        first (CRF only); positions outside the mask are 0."""
        if k is not None:
            if self.crf is None:
                raise ConfigError("k best tag sequences need a CRF model (model.crf=true)")
            return self.crf.decode(emissions, mask, k=k)
        if self.crf is not None:
            tags = self.crf.decode(emissions, mask)
        else:
            tags = emissions.argmax(-1)
        return tags.masked_fill(~mask, 0)


def check_settings(settings: Mapping) -> TaggerConfig:
    """Check network settings before the data are read (sizes that come from the data, when
    missing, stand in as 1), so a wrong value fails before any work."""
    return TaggerConfig.from_dict({"num_words": 1, "num_chars": 1, "num_tags": 1, **settings})


def build_tagger(
    settings: TaggerConfig | Mapping,
    tags: Sequence[str],
    tag_scheme: str,
) -> BiLSTMTagger:
    """The network for ``tags`` (strings of ``tag_scheme``, in id order): the one builder that
    training and loading a saved model both use.

    ``settings`` is a :class:`TaggerConfig` or its fields as a mapping (``num_tags`` may be
    left out: it is ``len(tags)``). With ``constrain_transitions`` and a CRF, transitions the
    scheme forbids (``O -> I-PER`` in IOBES) get a fixed penalty.
    """
    if isinstance(settings, TaggerConfig):
        config = settings
    else:
        config = TaggerConfig.from_dict({"num_tags": len(tags), **settings})
    if config.num_tags != len(tags):
        raise ConfigError(f"model.num_tags is {config.num_tags} but there are {len(tags)} tags")
    allowed = (
        allowed_transitions(canonical_scheme(tag_scheme), list(tags))
        if config.constrain_transitions and config.crf
        else None
    )
    return BiLSTMTagger(config, allowed)

"""The default model of ``make train``, built the way :mod:`nerlab.train` builds it.

The configuration is composed from ``conf/`` with Hydra's compose API, so the bench measures
whatever ``conf/model/bilstm_crf.yaml``, ``conf/data/conll2003.yaml`` and the trainer and
optimizer defaults say today; only the data folder is pointed at the bench's ``data_dir``
(and downloads are switched off).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass
class DefaultModel:
    cfg: DictConfig
    datamodule: Any  # NERDataModule, after setup()
    module: Any  # NERModule
    vectors: Any  # PretrainedVectors or None


def compose_config(data_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """``conf/train.yaml`` with its defaults, reading the three files of ``data_dir``."""
    from hydra import compose, initialize_config_dir

    from nerlab.train import CONF_DIR

    data_dir = Path(data_dir).resolve()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[
                f"data.dir={data_dir}",
                "data.download=false",
                "data.local_copies=[]",
                *overrides,
            ],
        )


def build_default_model(cfg: DictConfig, *, load_vectors: bool = True) -> DefaultModel:
    """Pretrained vectors -> DataModule (set up) -> NERModule, as ``nerlab.train.train`` does.

    ``load_vectors=False`` skips the pretrained vectors (random embeddings; the vocabulary then
    lacks the validation/test words that ``embeddings_extend_vocab`` would add).
    """
    from hydra.utils import instantiate

    from nerlab.errors import ConfigError
    from nerlab.lightning_module import NERModule
    from nerlab.models.embeddings import load_pretrained
    from nerlab.train import _model_settings

    vectors = None
    if load_vectors and cfg.model.embeddings:
        vectors = load_pretrained(cfg.model.embeddings)
        if vectors.dim != cfg.model.word_embedding_dims:
            raise ConfigError(
                f"model.embeddings={cfg.model.embeddings} has {vectors.dim} dimensions but "
                f"model.word_embedding_dims={cfg.model.word_embedding_dims}"
            )
    extend = vectors is not None and cfg.model.embeddings_extend_vocab
    datamodule = instantiate(cfg.data, extra_words=vectors.__contains__ if extend else None)
    datamodule.prepare_data()
    datamodule.setup("fit")
    vocabs = datamodule.vocabs
    settings = _model_settings(cfg)
    settings.update(num_words=len(vocabs.words), num_chars=len(vocabs.chars))
    module = NERModule(
        model=settings,
        tags=vocabs.tags.tags,
        tag_scheme=vocabs.tags.scheme,
        entity_types=datamodule.entity_types,
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True),
        constrain_transitions=cfg.model.constrain_transitions,
    )
    if vectors is not None:
        module.net.words.load_pretrained(vocabs.words, vectors)
    return DefaultModel(cfg=cfg, datamodule=datamodule, module=module, vectors=vectors)


def model_settings(cfg: DictConfig) -> dict[str, Any]:
    """The network hyper-parameters of ``cfg`` (the keys of ``conf/model/*.yaml`` that
    :class:`~nerlab.models.tagger.TaggerConfig` takes)."""
    from nerlab.train import _model_settings

    return _model_settings(cfg)

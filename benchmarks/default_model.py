"""The default model of ``make train``, built the way :func:`nerlab.training.run.train` builds it.

The configuration is composed from ``conf/`` with Hydra's compose API, so the bench measures
whatever ``conf/model/bilstm_crf.yaml``, ``conf/data/conll2003.yaml`` and the trainer and
optimizer defaults say today; only the data folder is pointed at the bench's ``data_dir``
(and downloads are switched off).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig


@dataclass
class DefaultModel:
    cfg: DictConfig
    datamodule: Any  # NERDataModule, after setup()
    module: Any  # NERModule
    vectors: Any  # PretrainedVectors or None


def bench_config(data_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """``conf/train.yaml`` with its defaults, reading the three files of ``data_dir``."""
    from nerlab.training.config import compose

    data_dir = Path(data_dir).resolve()
    overrides = [f"data.dir={data_dir}", "data.download=false", "data.local_copies=[]", *overrides]
    return compose(overrides, output_dir=tempfile.mkdtemp(prefix="nerlab-bench-run-"))


def build_default_model(cfg: DictConfig, *, load_vectors: bool = True) -> DefaultModel:
    """Pretrained vectors -> DataModule (set up) -> NERModule, as
    :func:`nerlab.training.run.train` does (through ``build_data_and_model``).

    ``load_vectors=False`` skips the pretrained vectors (random embeddings; the vocabulary then
    lacks the validation/test words that ``vectors.extend_vocab`` would add).
    """
    from nerlab.training.run import build_data_and_model

    datamodule, module, vectors = build_data_and_model(cfg, load_vectors=load_vectors)
    return DefaultModel(cfg=cfg, datamodule=datamodule, module=module, vectors=vectors)


def model_settings(cfg: DictConfig, net: Any = None) -> dict[str, Any]:
    """The network's hyper-parameters: those of the built ``net`` (its ``TaggerConfig``) when
    given, else the ``model`` group of ``cfg`` as composed (keys that are not network sizes
    are harmless to :func:`benchmarks.flops.flops_per_token`, which reads what it needs)."""
    if net is not None:
        return asdict(net.config)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg.model, resolve=True)

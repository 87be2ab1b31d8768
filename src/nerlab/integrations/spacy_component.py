"""A spaCy pipeline component that tags with a nerlab model.

Registered through spaCy's ``spacy_factories`` entry point, so on any English pipeline::

    nlp = spacy.blank("en")                      # or spacy.load("en_core_web_sm")
    nlp.add_pipe("nerlab", config={"model": "DIR or models:/NAME@ALIAS"})
    doc = nlp("John lives in London.")
    [(e.text, e.label_, e._.confidence) for e in doc.ents]

The model reads the document's text with its own tokenizer (as ``Tagger.predict`` does: a
document model tags the text as one document); each entity's character span is then aligned
with spaCy's tokens (``Doc.char_span``, ``alignment_mode`` ``expand`` by default: a span that
ends inside a spaCy token takes the whole token). Entities go to ``doc.ents`` (replacing what
was there), or with ``spans_key`` to ``doc.spans[spans_key]``, leaving ``doc.ents`` alone.
Every span carries the model's probability of exactly that labelled span as
``span._.confidence``. ``nlp.pipe`` tags ``batch_size`` texts at a time. ``nlp.to_disk`` writes
the model directory into the pipeline's folder, so ``spacy.load`` needs nothing else.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, Span

from nerlab.errors import NerlabError
from nerlab.inference import Tagger
from nerlab.inference.model_info import INFO_NAME

if not Span.has_extension("confidence"):
    Span.set_extension("confidence", default=None)

#: what ``to_disk`` copies of a model directory (the weights' file name comes from the info)
MODEL_FILES = (INFO_NAME, "MODEL_CARD.md", "model.onnx", "model.int8.onnx", "crf.safetensors")


class NerlabComponent:
    """The pipeline component: entities of a nerlab model on spaCy ``Doc`` objects."""

    def __init__(
        self,
        nlp: Language,
        name: str,
        model: str | None,
        *,
        spans_key: str | None = None,
        batch_size: int = 256,
        min_confidence: float = 0.0,
        backend: str = "torch",
        alignment_mode: str = "expand",
        tracking_uri: str | None = None,
    ) -> None:
        if alignment_mode not in ("strict", "contract", "expand"):
            raise NerlabError(
                f"alignment_mode must be strict, contract or expand, found {alignment_mode!r}"
            )
        self.name = name
        self.model = model
        self.spans_key = spans_key
        self.batch_size = batch_size
        self.min_confidence = min_confidence
        self.backend = backend
        self.alignment_mode = alignment_mode
        self.tracking_uri = tracking_uri
        self._tagger: Tagger | None = None

    @property
    def tagger(self) -> Tagger:
        """The model, loaded on first use (``spacy.load`` points it at the pipeline's copy
        before that)."""
        if self._tagger is None:
            if not self.model:
                raise NerlabError(
                    'the nerlab component needs a model: nlp.add_pipe("nerlab", '
                    'config={"model": "DIR or models:/NAME@ALIAS"})'
                )
            self._tagger = Tagger.load(
                self.model,
                backend=self.backend,
                batch_size=self.batch_size,
                tracking_uri=self.tracking_uri,
            )
        return self._tagger

    def __call__(self, doc: Doc) -> Doc:
        self._set(doc, self.tagger.predict([doc.text], self.min_confidence)[0])
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int | None = None) -> Iterator[Doc]:
        size = batch_size or self.batch_size
        batch: list[Doc] = []
        for doc in stream:
            batch.append(doc)
            if len(batch) >= size:
                yield from self._tag_batch(batch)
                batch = []
        if batch:
            yield from self._tag_batch(batch)

    def _tag_batch(self, docs: list[Doc]) -> list[Doc]:
        found = self.tagger.predict([doc.text for doc in docs], self.min_confidence)
        for doc, entities in zip(docs, found, strict=True):
            self._set(doc, entities)
        return docs

    def _set(self, doc: Doc, entities: list[dict]) -> None:
        spans, last_end = [], -1
        for entity in entities:
            span = doc.char_span(
                entity["start"],
                entity["end"],
                label=entity["label"],
                alignment_mode=self.alignment_mode,
            )
            if span is None or span.start < last_end:  # no tokens to align to, or an overlap
                continue
            span._.confidence = entity.get("confidence")
            spans.append(span)
            last_end = span.end
        if self.spans_key is None:
            doc.ents = spans
        else:
            doc.spans[self.spans_key] = spans

    # ------------------------------------------------------------------ serialization
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """The model directory's files into ``path`` (the component's folder of the pipeline)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        info_file = Path(self.tagger.info["_path"])
        source = info_file.parent
        weights = source / self.tagger.info.get("weights", "model.safetensors")
        for name in (*MODEL_FILES, weights.name):
            if (source / name).exists():
                shutil.copyfile(source / name, path / name)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> NerlabComponent:
        self.model = str(path)
        self._tagger = None
        _ = self.tagger  # a missing or broken copy fails here, at spacy.load
        return self


@Language.factory(
    "nerlab",
    default_config={
        "model": None,
        "spans_key": None,
        "batch_size": 256,
        "min_confidence": 0.0,
        "backend": "torch",
        "alignment_mode": "expand",
        "tracking_uri": None,
    },
)
def make_nerlab(
    nlp: Language,
    name: str,
    model: str | None,
    spans_key: str | None,
    batch_size: int,
    min_confidence: float,
    backend: str,
    alignment_mode: str,
    tracking_uri: str | None,
) -> NerlabComponent:
    return NerlabComponent(
        nlp,
        name,
        model,
        spans_key=spans_key,
        batch_size=batch_size,
        min_confidence=min_confidence,
        backend=backend,
        alignment_mode=alignment_mode,
        tracking_uri=tracking_uri,
    )

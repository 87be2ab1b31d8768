"""The ``integrations`` part: nerlab inside spaCy and on Spark, each beside nerlab's own path
on the same texts (:mod:`benchmarks.integrations_bench`)."""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part
from benchmarks.report import Row


def _spacy(ctx) -> dict:
    from benchmarks import integrations_bench as bench

    texts = bench.texts_of(ctx.test_sentences())
    return bench.run_spacy(ctx.model_dir(), texts, repeats=ctx.repeats())


def _spark(ctx) -> dict:
    from benchmarks import integrations_bench as bench

    texts = bench.texts_of(ctx.test_sentences())
    got = bench.run_spark(ctx.model_dir(), texts, copies=1 if ctx.quick else 10)
    if "skipped" in got:
        ctx.notes["spark"] = got["skipped"]
        return {}
    return got


def keys(ctx, earlier: dict) -> dict:
    spacy, spark = ctx.result("spacy_component"), ctx.result("spark")
    return {
        "integration_spacy_texts_per_s": spacy.get("component_texts_per_s"),
        "integration_spacy_predict_texts_per_s": spacy.get("predict_texts_per_s"),
        "integration_spacy_overhead": spacy.get("overhead"),
        "integration_spark_texts_per_s": spark.get("spark_texts_per_s"),
        "integration_spark_predict_texts_per_s": spark.get("predict_texts_per_s"),
        "integration_spark_vs_predict": spark.get("spark_vs_predict"),
        "integration_spark_same_entities": spark.get("same_entities"),
    }


def rows(ctx, k: dict) -> list[Row]:
    spacy, spark = ctx.result("spacy_component"), ctx.result("spark")
    spacy_note = (
        f"{spacy['texts']} test texts, batch {spacy['batch_size']}; ratio: component / predict"
        if spacy
        else ctx.why("spacy_component")
    )
    spark_note = (
        f"{spark['texts']} texts, whole commands; same entities: {spark['same_entities']}"
        if spark
        else ctx.why("spark")
    )
    component, predict = (
        k["integration_spacy_texts_per_s"],
        k["integration_spacy_predict_texts_per_s"],
    )
    return [
        Row(
            "spaCy component, nlp.pipe (texts/s); peer: Tagger.predict",
            component,
            "Tagger.predict",
            predict,
            # texts/s against texts/s, as every ratio of the table: below 1, the component is slower
            component / predict if component and predict else None,
            spacy_note,
        ),
        Row(
            "make spark-predict, local[2] (texts/s); peer: make predict",
            k["integration_spark_texts_per_s"],
            "make predict",
            k["integration_spark_predict_texts_per_s"],
            k["integration_spark_vs_predict"],
            spark_note,
        ),
    ]


PART = Part(
    "integrations",
    (Measurement("spacy_component", _spacy), Measurement("spark", _spark)),
    keys,
    rows,
)

"""Training: the LightningModule, optimizers and schedules, metrics, MLflow tracking, checkpoint
IO and the run itself (:func:`nerlab.training.run.train`). Imports Lightning; nothing below
(``data``, ``models``, ``inference``) imports this package."""

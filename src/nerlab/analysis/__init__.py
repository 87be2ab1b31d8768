"""What the notebooks compute, one module per notebook, and the results table.

- :mod:`~nerlab.analysis.corpus` (``01-data-exploration``): a data set at a glance;
- :mod:`~nerlab.analysis.runs` (``02-training-runs``): MLflow runs side by side;
- :mod:`~nerlab.analysis.error_analysis` (``03-error-analysis``): where a model fails;
- :mod:`~nerlab.analysis.results` (``make results``): test F1 over seeds per recipe;
- :mod:`~nerlab.analysis.calibration` (``make evaluate``): how well span probabilities are
  calibrated (imported by the evaluation, not re-exported here).

The notebooks only choose inputs, call these functions and display what they return (pandas
DataFrames, matplotlib Figures, HTML strings), so everything they show is tested code; they
reach all of it as ``analysis.<name>``. Scores are fractions in [0, 1]. Nothing here touches the
network.
"""

from nerlab.analysis.corpus import *  # noqa: F403
from nerlab.analysis.error_analysis import *  # noqa: F403
from nerlab.analysis.runs import *  # noqa: F403
from nerlab.training.config import compose as compose_config  # noqa: F401

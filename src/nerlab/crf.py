"""``nerlab.crf``: the public import path of the CRF, whose code lives in ``nerlab.models.crf``.

This module *is* that module (the same object in ``sys.modules``), so ``from nerlab.crf import
CRF`` and ``from nerlab.models.crf import CRF`` give the same class.
"""

import sys

from nerlab.models import crf as _crf

sys.modules[__name__] = _crf

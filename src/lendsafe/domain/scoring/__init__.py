"""Credit scoring domain: points scorecards, scaling, reason codes, stability and calibration.

Pure code: numpy only, no I/O, no pandas or scikit-learn. Training lives in
``lendsafe.adapters.ml``; this package only knows how to score and judge a fitted model.
"""

from lendsafe.domain.scoring.scaling import PointsScaling
from lendsafe.domain.scoring.scorecard import (
    MISSING_CODE,
    UNSEEN_CODE,
    Bin,
    Characteristic,
    Kind,
    Scorecard,
    ScoredApplication,
    UnseenRule,
)

__all__ = [
    "MISSING_CODE",
    "UNSEEN_CODE",
    "Bin",
    "Characteristic",
    "Kind",
    "PointsScaling",
    "Scorecard",
    "ScoredApplication",
    "UnseenRule",
]

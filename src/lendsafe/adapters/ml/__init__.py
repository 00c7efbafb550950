"""Machine-learning adapters: data loading, scorecard and LightGBM training, model registry.

Training uses optbinning, scikit-learn and LightGBM; fitted models are exported to plain
artifacts (a :class:`lendsafe.domain.scoring.Scorecard` or a LightGBM model string) that score
on numpy arrays.
"""

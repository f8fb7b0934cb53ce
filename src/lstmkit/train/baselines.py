"""Classical baselines reported beside the recurrent model.

* text classification: character 1-3-gram TF-IDF + logistic regression (scikit-learn);
* forecasting: an AR(p) model fitted by least squares on the training part (the same
  estimate as statsmodels' ``AutoReg``), scored on one-step forecasts over the test part.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np


def fit_tfidf_logreg(train, ngram_range: tuple[int, int] = (1, 3), C: float = 4.0):
    """Fit char TF-IDF + logistic regression on ``train`` (texts, labels); returns
    ``predict(texts) -> list[label]``. Needs scikit-learn."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, sublinear_tf=True, min_df=2)
    clf = LogisticRegression(C=C, max_iter=2000).fit(vec.fit_transform(train.texts), train.labels)
    return lambda texts: clf.predict(vec.transform(texts)).tolist()


def tfidf_logreg(data, ngram_range: tuple[int, int] = (1, 3), C: float = 4.0) -> dict:
    """Fit on ``data.train``, report accuracy on valid and test. Skipped without scikit-learn."""
    if importlib.util.find_spec("sklearn") is None:
        return {"skipped": "the TF-IDF baseline needs scikit-learn: pip install scikit-learn"}
    t0 = time.perf_counter()
    predict = fit_tfidf_logreg(data.train, ngram_range, C)
    out = {"name": f"char {ngram_range[0]}-{ngram_range[1]}-gram TF-IDF + logistic regression"}
    for split in ("valid", "test"):
        part = getattr(data, split)
        hits = [p == y for p, y in zip(predict(part.texts), part.labels)]
        out[f"{split}_accuracy"] = sum(hits) / len(hits)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def ar_forecast_rmse(values: np.ndarray, test_start: int, test_end: int, lags: int = 9) -> dict:
    """AR(``lags``) with intercept, OLS on ``values[:test_start]``; one-step RMSE on the test."""
    v = np.asarray(values, dtype=np.float64)

    def design(ts: range) -> np.ndarray:
        return np.array([np.r_[1.0, v[t - lags : t][::-1]] for t in ts])

    w = np.linalg.lstsq(design(range(lags, test_start)), v[lags:test_start], rcond=None)[0]
    pred = design(range(test_start, test_end)) @ w
    err = pred - v[test_start:test_end]
    return {
        "name": f"AR({lags}) least squares",
        "test_rmse": float(np.sqrt(np.mean(err**2))),
        "test_mae": float(np.mean(np.abs(err))),
    }

"""Baseline: cleanlab recipe = 5-fold cross-validated LogisticRegression(C=0.05) probabilities on the
standardised features + cleanlab.filter.find_label_issues(filter_by="prune_by_noise_rate").
Score for AUROC/AP: p_given (out-of-fold), i.e. self-confidence; lower = more suspicious.
Saves the out-of-fold probabilities to /work/cache/research/lr_oof_<set>.npy for reuse.
Run: PYTHONPATH=src python benchmarks/research/baseline_cleanlab.py [max_iter]
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues
from common import SETS, evaluate, folds, load_data, log_result, set_threads
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

set_threads(2)
max_iter = int(sys.argv[1]) if len(sys.argv) > 1 else 100
x, labels = load_data()
out = Path("/work/cache/research")
out.mkdir(parents=True, exist_ok=True)
for s in SETS:
    y = labels[s]
    truth = y != labels["clean"]
    t0, c0 = time.time(), time.process_time()
    probs = np.zeros((len(y), 10))
    n_warn = 0
    iters = []
    for tr, te in folds(y, 5, 0):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always", ConvergenceWarning)
            clf = LogisticRegression(C=0.05, max_iter=max_iter).fit(x[tr], y[tr])
        n_warn += sum(issubclass(i.category, ConvergenceWarning) for i in w)
        iters.append(int(clf.n_iter_.max()))
        probs[te] = clf.predict_proba(x[te])
    t_fit = time.time() - t0
    flagged = find_label_issues(y, probs, filter_by="prune_by_noise_rate")
    wall = time.time() - t0
    np.save(out / f"lr_oof_{s}_it{max_iter}.npy", probs.astype(np.float32))
    m = evaluate(truth, flagged, probs[np.arange(len(y)), y])
    acc = float((probs.argmax(1) == labels["clean"]).mean())
    log_result(f"cleanlab LR(C=0.05) 5-fold max_iter={max_iter}", s, m, wall, fit_s=round(t_fit, 1), cpu_s=round(time.process_time() - c0, 1),
               not_converged_folds=n_warn, n_iter=iters, oof_acc_vs_clean=round(acc, 4))

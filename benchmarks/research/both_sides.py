"""Cross-fitted MLP heads on CIFAR-10N recording both sides: held-out (the fold left out) and in-sample
(the training batches), and the detector on each posterior and on their mean.
Run: python benchmarks/research/both_sides.py aggre worse  (needs the cached features, see extract_features.py)
"""
import csv, sys, time
import numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "src"))
from labeltrace.train.crossfit import stratified_folds
from labeltrace.train import TrainConfig, make_optimizer, run_epoch, predict_logits
from labeltrace.record import Recorder
from labeltrace.models import build_model
from labeltrace.score import probs
from labeltrace.decide import cutoffs as threshold
from sklearn.metrics import roc_auc_score
torch.set_num_threads(2)
x = np.load("/work/cache/features/cifar10n_effl0_96.npy").astype(np.float32)
x = (x - x.mean(0)) / (x.std(0) + 1e-6)
rows = list(csv.DictReader(open("/work/cache/cifar10n/labels.csv")))
for s in sys.argv[1:]:
    y = np.array([int(r[s]) for r in rows]); clean = np.array([int(r["clean"]) for r in rows]); truth = y != clean
    cfg = TrainConfig(epochs=10, batch_size=256, lr=0.05, weight_decay=1e-3, seed=2000)
    folds = stratified_folds(y, 5, seed=2000)
    xt = torch.from_numpy(x); yt = torch.tensor(y)
    models = []
    for k in range(5):
        torch.manual_seed(2000 + 101 * k); models.append(build_model("mlp", num_classes=10, in_dim=1280, hidden=256))
    opts = [make_optimizer(m, cfg) for m in models]
    held = Recorder(len(y), 10); ins = Recorder(len(y), 10)
    t0 = time.time()
    for ep in range(10):
        for k in range(5):
            tr = torch.as_tensor(np.flatnonzero(folds != k)); te = torch.as_tensor(np.flatnonzero(folds == k))
            run_epoch(models[k], opts[k], xt, yt, config=cfg, epoch=ep, device=torch.device("cpu"), subset=tr, on_batch=ins.update)
            held.update(te, predict_logits(models[k], xt, te, device=torch.device("cpu")), yt[te])
        held.end_epoch(); ins.end_epoch()
    wall = time.time() - t0
    ph = held.dynamics().mean_posterior(); pi = ins.dynamics().mean_posterior()
    def ev(name, post, n):
        pg = post[np.arange(len(y)), y]
        fl = threshold.flag(pg, threshold.top_fraction(pg, n / len(y)))
        tp = (fl & truth).sum(); f1 = 2 * tp / (fl.sum() + truth.sum())
        print(f"{s:8s} {name:28s} F1 {f1:.3f} AUROC {roc_auc_score(truth, -pg):.3f} n {n}", flush=True)
    nh = probs.num_label_issues(ph / ph.sum(1, keepdims=True), y)
    ev("held-out", ph, nh); ev("in-sample (4 fold models)", pi, nh); ev("mean of both", (ph + pi) / 2, nh)
    for w in (0.25, 0.75):
        ev(f"w_in={w}", (1 - w) * ph + w * pi, nh)
    print(f"{s} wall {wall:.0f}s", flush=True)

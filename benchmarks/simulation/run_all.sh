#!/usr/bin/env bash
# Regenerate every simulation in benchmarks/simulation/results/ (see benchmarks/RESULTS.md §7).
# Needs the frozen EfficientNet-Lite0 features (benchmarks/research/extract_features.py) in
# /work/cache/features/. One thread: the runs share a small machine (about 1.5 h in all).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -f .venv/bin/activate ]; then source .venv/bin/activate; fi
export PYTHONPATH=src OMP_NUM_THREADS=1
R=benchmarks/simulation/results
SIM="python -m labeltrace.cli simulate --seeds 5 --budget-factor 3 --epochs 20 --curve-every 25 --quiet"
H="--votes /work/cache/simulation/cifar10h_votes.csv --features /work/cache/features/cifar10h_effl0_96.npy"
N="--votes /work/cache/simulation/cifar10n_votes_10k.csv --features /work/cache/simulation/cifar10n_effl0_96_10k.npy"
CF="--folds 5"                            # cross-fitted head: every posterior held out
PROP="--active-every 10 --active-method propagation"

python benchmarks/simulation/prepare_data.py

# CIFAR-10H: in-sample head (trained once on the initial noisy labels), 15 % and 30 % noise
$SIM $H --noise-rate 0.15 --out $R/cifar10h_n15 --title "CIFAR-10H, 15% noise, static MLP"
$SIM $H --noise-rate 0.30 --out $R/cifar10h_n30 --title "CIFAR-10H, 30% noise, static MLP"
# the queue closer to the oracle: a cross-fitted head (the held-out posterior)
$SIM $H --noise-rate 0.15 $CF --out $R/cifar10h_n15_crossfit --title "CIFAR-10H, 15% noise, cross-fitted MLP (5 folds)"
$SIM $H --noise-rate 0.30 $CF --out $R/cifar10h_n30_crossfit --title "CIFAR-10H, 30% noise, cross-fitted MLP (5 folds)"
# live re-ranking, cheap: label propagation every 10 relabels
$SIM $H --noise-rate 0.15 $PROP --out $R/cifar10h_n15_propagation --title "CIFAR-10H, 15% noise, static MLP + label propagation every 10"
$SIM $H --noise-rate 0.15 $CF $PROP --out $R/cifar10h_n15_crossfit_propagation --title "CIFAR-10H, 15% noise, cross-fitted MLP, label propagation every 10"
$SIM $H --noise-rate 0.30 $CF $PROP --out $R/cifar10h_n30_crossfit_propagation --title "CIFAR-10H, 30% noise, cross-fitted MLP, label propagation every 10"
# live re-ranking, expensive: the head retrained on the current labels
$SIM $H --noise-rate 0.15 --active-every 500 --out $R/cifar10h_n15_active --title "CIFAR-10H, 15% noise, MLP retrained every 500"
$SIM $H --noise-rate 0.30 --active-every 1000 --out $R/cifar10h_n30_active --title "CIFAR-10H, 30% noise, MLP retrained every 1000"
$SIM $H --noise-rate 0.15 $CF --active-every 500 --selectors random,cross_entropy,joint,oracle --out $R/cifar10h_n15_crossfit_active --title "CIFAR-10H, 15% noise, cross-fitted MLP retrained every 500"
# ablations (static, in-sample): posterior over the last 5 epochs; a memorising head (lr 0.05)
$SIM $H --noise-rate 0.15 --posterior last --out $R/cifar10h_n15_last --title "CIFAR-10H, 15% noise, last-5-epoch posterior"
$SIM $H --noise-rate 0.15 --lr 0.05 --out $R/cifar10h_n15_lr005 --title "CIFAR-10H, 15% noise, lr 0.05"

# CIFAR-10N (3 annotations per image; seeded 10,000-image subset): 30 % is out of reach
$SIM $N --noise-rate 0.15 --out $R/cifar10n_n15 --title "CIFAR-10N (10k), 15% noise, static MLP"
$SIM $N --noise-rate 0.15 $CF --out $R/cifar10n_n15_crossfit --title "CIFAR-10N (10k), 15% noise, cross-fitted MLP (5 folds)"
$SIM $N --noise-rate 0.15 $CF $PROP --out $R/cifar10n_n15_crossfit_propagation --title "CIFAR-10N (10k), 15% noise, cross-fitted MLP, label propagation every 10"
$SIM $N --noise-rate 0.15 --active-every 500 --out $R/cifar10n_n15_active --title "CIFAR-10N (10k), 15% noise, MLP retrained every 500"
$SIM $N --noise-rate 0.15 --lr 0.05 --out $R/cifar10n_n15_lr005 --title "CIFAR-10N (10k), 15% noise, lr 0.05"

# features at the backbone's native 224 px (extract first: RES=224 python benchmarks/research/extract_features.py
# cifar10h cifar10n_10k); CIFAR-10N is the dev cell for this change, CIFAR-10H the bar's (benchmarks/SPLIT.md)
H224="--votes /work/cache/simulation/cifar10h_votes.csv --features /work/cache/features/cifar10h_effl0_224.npy"
N224="--votes /work/cache/simulation/cifar10n_votes_10k.csv --features /work/cache/features/cifar10n_effl0_224_10k.npy"
$SIM $N224 --noise-rate 0.15 --out $R/cifar10n_n15_224 --title "CIFAR-10N (10k), 15% noise, static MLP, 224 px features"
$SIM $N224 --noise-rate 0.15 $CF --out $R/cifar10n_n15_crossfit_224 --title "CIFAR-10N (10k), 15% noise, cross-fitted MLP (5 folds), 224 px features"
$SIM $H224 --noise-rate 0.15 --out $R/cifar10h_n15_224 --title "CIFAR-10H, 15% noise, static MLP, 224 px features"
$SIM $H224 --noise-rate 0.15 $CF --out $R/cifar10h_n15_crossfit_224 --title "CIFAR-10H, 15% noise, cross-fitted MLP (5 folds), 224 px features"
$SIM $H224 --noise-rate 0.15 $CF --active-every 500 --selectors random,cross_entropy,joint,oracle --out $R/cifar10h_n15_crossfit_active_224 --title "CIFAR-10H, 15% noise, cross-fitted MLP retrained every 500, 224 px features"
$SIM $H224 --noise-rate 0.15 --active-every 500 --out $R/cifar10h_n15_active_224 --title "CIFAR-10H, 15% noise, MLP retrained every 500, 224 px features"
# chosen on the dev cell (results/dev_head, below): 3 heads averaged at lr 0.005
$SIM $H224 --noise-rate 0.15 --lr 0.005 --ensemble 3 --active-every 500 --selectors random,cross_entropy,joint,oracle --out $R/cifar10h_n15_active_224_ens3 --title "CIFAR-10H, 15% noise, 3 MLPs (lr 0.005) retrained every 500, 224 px features"
# the same with flip-averaged 224 px features (FLIP=1 RES=224 python benchmarks/research/extract_features.py cifar10h),
# taken to the bar cell after the dev cell's +0.017 (dev_head.md: cifar10n_n15_224tta_s20)
HTTA=/work/cache/features/cifar10h_effl0_224tta.npy
python -c "import numpy as np; np.save('$HTTA', ((np.load('/work/cache/features/cifar10h_effl0_224.npy') + np.load('/work/cache/features/cifar10h_effl0_224_flip.npy')) / 2).astype(np.float32))"
$SIM --votes /work/cache/simulation/cifar10h_votes.csv --features $HTTA --noise-rate 0.15 --lr 0.005 --ensemble 3 --active-every 500 --selectors random,cross_entropy,joint,oracle --out $R/cifar10h_n15_active_224tta_ens3 --title "CIFAR-10H, 15% noise, 3 MLPs (lr 0.005) retrained every 500, flip-averaged 224 px features"

# DEV (benchmarks/SPLIT.md): the head that feeds the queue, on the CIFAR-10N dev cell at 224 px, 20 seeds
# (10 for the live run), random / cross_entropy / oracle only; read with
#   python benchmarks/simulation/tables.py benchmarks/simulation/results/dev_head > benchmarks/simulation/dev_head.md
D=$R/dev_head
DEV="$SIM --seeds 20 --selectors random,cross_entropy,oracle --noise-rate 0.15 --votes /work/cache/simulation/cifar10n_votes_10k.csv"
F224=/work/cache/features/cifar10n_effl0_224_10k.npy
CAT=/work/cache/features/cifar10n_effl0_96+224_10k.npy    # the 96 px and 224 px features side by side
python -c "import numpy as np; np.save('$CAT', np.concatenate([np.load('/work/cache/simulation/cifar10n_effl0_96_10k.npy'), np.load('$F224')], 1))"
$DEV --features $F224 --out $D/cifar10n_n15_224_s20
$DEV --features $F224 --lr 0.005 --out $D/cifar10n_n15_224_s20_lr0005
$DEV --features $F224 --ensemble 3 --out $D/cifar10n_n15_224_s20_ens3
$DEV --features $F224 --ensemble 3 --lr 0.005 --out $D/cifar10n_n15_224_s20_ens3_lr0005
$DEV --features $CAT --out $D/cifar10n_n15_cat_s20
$DEV --features $CAT --lr 0.005 --out $D/cifar10n_n15_cat_s20_lr0005
$DEV --features $F224 $CF --out $D/cifar10n_n15_224_s20_crossfit
$DEV --features $F224 $CF --lr 0.005 --out $D/cifar10n_n15_224_s20_crossfit_lr0005
$DEV --features $CAT $CF --out $D/cifar10n_n15_cat_s20_crossfit
$DEV --seeds 10 --features $F224 --active-every 500 --out $D/cifar10n_n15_224_s10_active
# EfficientNet-Lite2 at its native 260 px (LITE=2 RES=260 python benchmarks/research/extract_features.py cifar10n_10k; 24 min)
L2=/work/cache/features/cifar10n_effl2_260_10k.npy
$DEV --features $L2 --out $D/cifar10n_n15_lite2_s20
# flip-averaged 224 px features: the mean of the features of each image and of its mirror
# (FLIP=1 RES=224 python benchmarks/research/extract_features.py cifar10n_10k; 4 min)
TTA=/work/cache/features/cifar10n_effl0_224tta_10k.npy
python -c "import numpy as np; np.save('$TTA', ((np.load('$F224') + np.load('/work/cache/features/cifar10n_effl0_224_10k_flip.npy')) / 2).astype(np.float32))"
$DEV --features $TTA --out $D/cifar10n_n15_224tta_s20
$DEV --features $L2 $CF --out $D/cifar10n_n15_lite2_s20_crossfit
# the head retrained without the samples its first run contradicts (--prune, HeadConfig(prune=True)),
# against and on top of three heads at lr 0.005
$DEV --features $TTA --prune --out $D/cifar10n_n15_224tta_s20_prune
$DEV --features $TTA --ensemble 3 --lr 0.005 --out $D/cifar10n_n15_224tta_s20_ens3_lr0005
$DEV --features $TTA --ensemble 3 --lr 0.005 --prune --out $D/cifar10n_n15_224tta_s20_ens3_lr0005_prune
$DEV --features $L2 --ensemble 3 --lr 0.005 --out $D/cifar10n_n15_lite2_s20_ens3_lr0005

# DEV: heads on three input resolutions (a head per view, posteriors averaged; `--features a,b,c`)
# against a fresh baseline on the same re-extracted features (the 224 px extraction is not
# bit-identical run to run); read with
#   python benchmarks/simulation/tables.py benchmarks/simulation/results/dev_views > benchmarks/simulation/dev_views.md
# (RES=96/160/224, FLIP=0/1: python benchmarks/research/extract_features.py cifar10n_10k)
V=$R/dev_views
FF=/work/cache/features/cifar10n_effl0
for r in 96 160 224; do
  python -c "import numpy as np; np.save('${FF}_${r}tta_10k.npy', ((np.load('${FF}_${r}_10k.npy') + np.load('${FF}_${r}_10k_flip.npy')) / 2).astype(np.float32))"
done
$DEV --features ${FF}_224tta_10k.npy --ensemble 3 --lr 0.005 --out $V/cifar10n_n15_224tta_s20_ens3_lr0005
$DEV --features ${FF}_224tta_10k.npy,${FF}_160tta_10k.npy,${FF}_96tta_10k.npy --ensemble 3 --lr 0.005 --out $V/cifar10n_n15_views_s20_ens3_lr0005

# the pre-flight estimate of `labeltrace queue --budget` against the real votes
python benchmarks/simulation/preflight_validation.py $H --noise-rate 0.15 --folds 5 --priority cross_entropy --out $R/preflight_cifar10h_n15
# (the features extract_features.py writes for the subset: the committed run read them there)
python benchmarks/simulation/preflight_validation.py --votes /work/cache/simulation/cifar10n_votes_10k.csv --features /work/cache/features/cifar10n_effl0_96_10k.npy --noise-rate 0.15 --folds 5 --priority cross_entropy --out $R/preflight_cifar10n_n15

# what each selector spends its first 10 % of the budget on (seed 0, static head)
python benchmarks/simulation/analyze_picks.py $H --noise-rate 0.15 > $R/picks_cifar10h_n15.md
python benchmarks/simulation/analyze_picks.py $H --noise-rate 0.30 > $R/picks_cifar10h_n30.md
python benchmarks/simulation/analyze_picks.py $N --noise-rate 0.15 > $R/picks_cifar10n_n15.md

python benchmarks/simulation/tables.py $R > benchmarks/simulation/tables.md

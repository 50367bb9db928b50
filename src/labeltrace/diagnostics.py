"""Label-free warnings about a scan's result, worded once for the scan (stderr) and its HTML report
(numpy only: the report reads a run directory without the training stack).

* :func:`overflagging` — a cut that accuses most of a dataset; :func:`many_accused` — one that
  accuses a tenth or more, which a weak model on a nearly clean set does as well as noise;
* :func:`contradicted_classes` / :func:`contradicted_text` — classes whose labels the models
  overrule for most of their images;
* :func:`agreement` / :func:`no_better_than_one_class` / :func:`one_class_phrase` — models that
  agree with the given labels no more often (or less than two standard errors more often) than
  answering the most common class for every sample would;
* :func:`inflated_estimate` — a noise-rate estimate far above the labels the models contradict,
  raised by a class the models barely recognise (a rare class);
* :func:`small_classes` — classes with fewer samples than the folds that judge them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labeltrace._checks import listing
from labeltrace.run_layout import OWN_TRAINING

__all__ = ["MOST", "agreement", "common_class", "contradicted_classes", "contradicted_text", "contradicted_texts", "identical_text",
           "inflated_estimate", "many_accused", "no_better_than_one_class", "one_class_phrase", "overflagging", "small_classes", "warned_inflated"]

#: a cut that flags more than this fraction of a dataset gets a warning (:func:`overflagging`)
MOST = 0.5
#: a cut that flags at least this fraction (up to :data:`MOST`) gets a caution (:func:`many_accused`)
MANY = 0.1


def overflagging(name: str, flagged: np.ndarray, *, model: str | None = None) -> str | None:
    """A warning when detector ``name`` flags more than :data:`MOST` of the samples, else None.

    Such a cut says more about the rule than about the labels: e.g. AUM's auxiliary 99th
    percentile, when the network fits the auxiliary samples (a frozen-feature head on a small
    set), flags 97-99 % of every small benchmark set (``benchmarks/RESULTS.md`` §4); the default
    (crossfit) does it when its model barely learns the images (the small CNN on 2,000 CIFAR-10
    photos: 57 %), and the warning then points to a stronger model instead of to itself — to the
    pretrained features (``--model effnet-lite0``) only when ``model``, the model the scan used, is
    the CNN trained from scratch; for a recording of your own training (``model`` is
    :data:`~labeltrace.run_layout.OWN_TRAINING`), to ``labeltrace scan``.
    """
    f = np.asarray(flagged, dtype=bool)
    k = int(f.sum())
    if f.size == 0 or k <= MOST * f.size:
        return None
    stronger = {"small-cnn": " (--model effnet-lite0, pretrained features)", None: ""}.get(
        model, f" than {model}")
    other = ("or use the default detector (crossfit)" if name != "crossfit" else
             f"or a stronger model{stronger}: a weak model's held-out posterior doubts most labels")
    if model == OWN_TRAINING:  # labeltrace.write_run: no detector choice brings in held-out models
        other = ("or scan the images with labeltrace scan (its default detector, crossfit, judges each label by "
                 "models that never trained on it)")
    return (f"{name} flags {k:,} of {f.size:,} samples ({k / f.size:.0%}): a cut that accuses most of a "
            f"dataset says more about the rule than the labels; read the ranking (score, rank) instead, {other}")


def many_accused(name: str, flagged: np.ndarray, suggested: np.ndarray, given: np.ndarray, *,
                 model: str | None = None) -> str | None:  # fmt: skip
    """A caution when detector ``name`` flags at least :data:`MANY` of the samples (and no more than
    :data:`MOST`, which :func:`overflagging` says), else None.

    Without clean labels a count of wrong labels follows how often the models contradict the given
    ones, and on a nearly clean set of hard images a weak model contradicts many that are right: a
    fifth of 2,000 CIFAR-10 test photos (0.75 % wrong by their human votes) was flagged at 96 px (an
    audit of clean data). On a noisy set the same count is right. The two look alike to the scan, so
    the caution names both and what tells them apart: a look at a random handful of the flagged.
    Where the true labels are known (``--noise``, ``--truth-column``) the caller leaves it out: the
    precision says it. ``model``: as :func:`overflagging`'s (your own training's words)."""
    f = np.asarray(flagged, dtype=bool)
    k, n = int(f.sum()), int(f.size)
    if n == 0 or k < MANY * n or k > MOST * n:
        return None
    contra = float((np.asarray(suggested) != np.asarray(given)).mean())
    own = model == OWN_TRAINING
    who = "your model" if own else "the models"
    stronger = "scan the images with labeltrace scan" if own else "scan with a stronger model"
    return (f"{name} flags {k:,} of {n:,} samples ({k / n:.0%}), {who} contradicting {contra:.0%} of the given "
            f"labels: without clean labels a count of wrong labels follows how often {who} contradict"
            f"{'s' if own else ''} the labels, so either about that many are wrong, or many flagged images are hard "
            "but rightly labelled, which a weak model doubts (a nearly clean set of hard photos had a fifth "
            "flagged) — look at a random handful of the flagged images before acting on the count, and where "
            f"most of them are right, read the ranking (score, rank) rather than the count, or {stronger}")


def contradicted_classes(post: np.ndarray, given: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """The classes whose labels ``post`` (the posterior behind the suggested labels) contradicts —
    its argmax is another class — for more than :data:`MOST` of their samples: ``[{"class",
    "samples", "contradicted", "suggested"}]``, ``suggested`` the class it names most often instead
    (ties: the lowest id).

    Within such a class a ranking is least reliable: either many of its labels are wrong (a
    swapped or mis-mapped class: with a class 90–100 % mislabelled, as in the PneumoniaMNIST
    confusion-noise cells of ``benchmarks/RESULTS.md`` §4, the held-out models learn the wrong
    label), or the model does not recognise it well (too few or too hard images: the head on frozen
    features contradicts 87–94 % of BreastMNIST val's 21 *malignant* labels with 15–41 % of them
    wrong, ``benchmarks/results/dev-form-select.md``), and within the class the two look alike. On
    the small-CNN dev scans it names the minority class of every noisy medical cell (its labels 7–100 %
    wrong), digits classes only at noise 0.2–0.4, and nothing on the clean cells
    (``benchmarks/results/dev-contradicted.md``, ``scripts/contradicted_dev.py``).
    """
    k = len(classes)
    g = np.asarray(given, dtype=np.int64)
    pred = np.asarray(post).argmax(axis=1)
    samples = np.bincount(g, minlength=k)
    off = pred != g
    contra = np.bincount(g[off], minlength=k)
    pairs = np.bincount(g[off] * k + pred[off], minlength=k * k).reshape(k, k)
    out = []
    for c in np.flatnonzero(contra > MOST * samples):  # at most K rows: the classes, not the samples
        out.append({"class": classes[c], "samples": int(samples[c]), "contradicted": int(contra[c]),
                    "suggested": classes[int(pairs[c].argmax())]})  # fmt: skip
    return out


def contradicted_text(row: dict[str, Any]) -> str:
    """The warning for one row of :func:`contradicted_classes`."""
    n, c = row["samples"], row["contradicted"]
    return (f"class {row['class']!r}: the models contradict {c:,} of its {n:,} labels ({c / n:.0%}), "
            f"most often suggesting {row['suggested']!r}. Either many of these labels are wrong (a swapped or "
            "mis-mapped class?) or the model does not recognise this class well (too few or too hard images); "
            "within the class the ranking cannot fully tell the two apart: review it with care, check the class "
            "mapping, or try a stronger model")


#: more contradicted classes than this are named in one warning (:func:`contradicted_texts`)
FEW_CLASSES = 3


def contradicted_texts(rows: list[dict[str, Any]]) -> list[str]:
    """The warnings for the rows of :func:`contradicted_classes`: one per class, or, for more than
    :data:`FEW_CLASSES` of them (a weak model on a hundred classes overrules most), one warning
    naming them, the classes with the most samples first."""
    if len(rows) <= FEW_CLASSES:
        return [contradicted_text(r) for r in rows]
    named = listing(f"{r['class']!r} ({r['contradicted']:,} of {r['samples']:,}, most often suggesting "
                    f"{r['suggested']!r})" for r in sorted(rows, key=lambda r: -r["samples"]))  # fmt: skip
    return [f"{len(rows):,} classes whose labels the models contradict for most of their images: {named}. "
            "Either many of these labels are wrong (a swapped or mis-mapped class?) or the model does not "
            "recognise these classes well (too few or too hard images); within each class the ranking cannot "
            "fully tell the two apart: review them with care, check the class mapping, or try a stronger model"]


def agreement(suggested: np.ndarray, given: np.ndarray, classes: list[str]) -> tuple[float, float, str]:
    """``(agree, baseline, common)``: the share of samples whose suggested label (the posterior's
    argmax) is the given one, the share of the most common given class, and that class's name —
    what answering it for every sample would agree with."""
    g = np.asarray(given, dtype=np.int64)
    return float((np.asarray(suggested) == g).mean()), *common_class(g, classes)


def common_class(labels: np.ndarray, classes: list[str]) -> tuple[float, str]:
    """``(share, name)`` of the most common class in ``labels`` (ties: the lowest id): what answering
    it for every sample would agree with."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return float(counts.max() / counts.sum()), classes[int(counts.argmax())]


def one_class_phrase(suggested: np.ndarray, given: np.ndarray, classes: list[str], *, model: str = "the models"
                     ) -> str | None:  # fmt: skip
    """"``model`` agree(s) with A% of the given labels, no more (hardly more) than answering C for
    every sample would (B%...)" when the agreement (:func:`agreement`) is at most the most common
    class's share ``b`` plus two standard errors of that share on these N samples
    (``2·sqrt(b(1 − b)/N)``), else None — what :func:`no_better_than_one_class` and the queue's
    budget estimate say. Models that agree with every label (and so contradict none) are never
    "hardly more": on a small or lopsided set the margin reaches 100 % (5 samples, 3 of one class:
    ±43.8 %)."""
    agree, base, common = agreement(suggested, given, classes)
    n = int(np.asarray(given).size)
    noise = 2 * float(np.sqrt(base * (1 - base) / max(n, 1)))
    if agree > base + noise or agree > base and agree >= 1.0:  # agreeing with every label is never "hardly more"
        return None
    than = (f"no more than answering {common!r} for every sample would ({base:.1%})" if agree <= base else
            f"hardly more than answering {common!r} for every sample would ({base:.1%}; within two standard "
            f"errors on {n} samples, ±{noise:.1%})")  # fmt: skip
    verb = "agrees" if model == "the model" else "agree"
    return f"{model} {verb} with {agree:.1%} of the given labels, {than}"


def no_better_than_one_class(suggested: np.ndarray, given: np.ndarray, classes: list[str]) -> str | None:
    """A warning when the models agree with the given labels no more often than answering the most
    common class for every sample would, or by less than two standard errors of that share
    (:func:`one_class_phrase`: PneumoniaMNIST test, 624 images, a CNN trained 3 epochs agreed with
    62.7 % against 62.5 % for "pneumonia" and flagged 20 % in silence), else None.

    On a nearly clean set this says the models learned little from the images: their
    contradictions, and so the flagged set, are then weak evidence of wrong labels (BreastMNIST val,
    78 expert-labelled images: held-out agreement 0.71 against 0.73 for "benign", yet 15 % flagged;
    a review of the scan on near-clean medical sets). Without clean labels it cannot be told from a
    set with many wrong labels: a model right on every image agrees with only 1 − the noise rate,
    below the common class's share once confusion noise into that class passes the other classes'
    share (an oracle at 30 % confusion noise on a 27/73 binary set: 0.70 against 0.80). The wording
    says both.
    """
    phrase = one_class_phrase(suggested, given, classes)
    if phrase is None:
        return None
    common = agreement(suggested, given, classes)[2]
    return (f"{phrase}. Either they learned little from these images — then what they "
            "contradict, and the flagged samples, are weak evidence of wrong labels: read them as questions, and "
            "try a stronger model, more epochs or more images — or many labels are wrong, in any class, "
            f"{common!r} included (a model right on every image agrees with only 1 − the noise rate). Without "
            "clean labels the two look alike: look at a few flagged images to tell which")


#: how :func:`inflated_estimate`'s warning begins (:func:`warned_inflated` finds it in run.json)
_INFLATED = "the estimated noise rate, "


def warned_inflated(warnings: list[str] | None) -> bool:
    """Whether a run's warnings (run.json ``warnings``) hold :func:`inflated_estimate`'s."""
    return any(isinstance(w, str) and w.startswith(_INFLATED) for w in warnings or [])


def inflated_estimate(post: np.ndarray, given: np.ndarray, classes: list[str], *,
                      rate: float | None = None) -> str | None:  # fmt: skip
    """A warning when confident learning's noise-rate estimate on ``post`` (the run's
    ``noise_rate_estimate``, ``rate`` when the caller has it) counts more than twice — and 10 more than — the labels ``post``
    contradicts (argmax ≠ given), most of the excess labels ``post`` agrees with that pass the
    threshold of a class whose own labels get less than chance (1 / K) on average; else None.

    Confident learning counts a label as really class c when p(c) reaches c's threshold, the mean
    p(c) over c's own labels (a label whose own class is below its threshold and one other class
    above it). A class the models barely recognise — a rare finding: 15 pneumonia images among
    755 chest X-rays, frozen features, held-out mean p(pneumonia) 0.007 on them — sets that bar near
    0, and hundreds of labels the models agree with pass it: 44 % estimated on a clean set whose
    models contradict 2 %. The estimate then counts the bar, not the wrong labels. In a class whose
    labels are mostly wrong the bar is low too, but the models then contradict many labels, and the
    warning needs the estimate above twice their count.
    """
    from labeltrace.score.confident import confident_thresholds, estimate_noise_rate

    p = np.asarray(post, dtype=np.float64)
    g = np.asarray(given, dtype=np.int64)
    n, k = p.shape
    est = float(estimate_noise_rate(p, g) if rate is None else rate) * n
    pred = p.argmax(axis=1)
    contra = int((pred != g).sum())
    if est <= max(2 * contra, contra + 10):
        return None
    t = confident_thresholds(p, g)
    above = p >= t - 1e-6  # cleanlab's slack (score.confident._FUZZ)
    only = above.sum(axis=1) == 1  # one class above its threshold: confident learning's guess is that class
    guess = above.argmax(axis=1)
    counted = only & (guess != g) & (pred == g)  # counted as wrong, though the models agree with the label
    per = np.bincount(guess[counted], minlength=k)
    c = int(per.argmax())
    if 2 * per.sum() < est - contra or t[c] >= 1.0 / k:
        return None
    name = classes[c]
    return (f"{_INFLATED}{est / n:.1%} ({est:,.0f} labels), is far above the share of labels the models "
            f"contradict, {contra / n:.1%} ({contra:,}): confident learning counts a label as really {name!r} when its "
            f"p({name!r}) reaches {float(t[c]):.3g}, the models' mean p({name!r}) on the {name!r} labels themselves — "
            f"that low when they barely recognise the class (a rare or hard one) — and {int(per[c]):,} labels the "
            "models agree with pass it. Read the rate as inflated, not as a count of wrong labels (a count that reads "
            "it — crossfit's on a small set, crossfit_rate — flags more for it); the flagged samples per class say "
            "more")


def small_classes(given: np.ndarray, classes: list[str], folds: int | None) -> str | None:
    """A warning naming the classes with fewer samples than ``folds`` (the cross-fitted or K-fold
    models that judge each sample held out; None: no folds), else None.

    Each fold then holds at most one of the class's samples out, so the model that judges one of
    them trained on the class's other samples alone — 1 to ``folds`` − 2 images — and fewer folds do
    not change that. scikit-learn's own warning ("The least populated class in y has only 2
    members, which is less than n_splits=5"), printed with its source line, came only with the
    K-fold detectors (cl, cleanlab); the default (crossfit) said nothing."""
    if folds is None:
        return None
    counts = np.bincount(np.asarray(given, dtype=np.int64), minlength=len(classes))
    few = [c for c in np.flatnonzero(counts < folds) if counts[c] > 0]
    if not few:
        return None
    most = int(counts[few].max())
    one = len(few) == 1
    named = listing(f"{classes[c]!r} ({int(counts[c])} sample{'s' if counts[c] != 1 else ''})" for c in few)
    return (f"{'class' if one else 'classes'} {named} {'has' if one else 'have'} fewer samples than the {folds} folds: "
            f"the model that judges each of {'its' if one else 'their'} samples held out trained on at most "
            f"{most - 1} other{'s' if most != 2 else ''} of its class, so its verdict on these labels is weak evidence "
            "either way; more images of the class help, fewer --folds do not")


def identical_text(groups: list[list[int]], given: np.ndarray, classes: list[str], paths: list[str],
                   sample_groups: Any = None, *, held_out: bool = False,
                   folds: np.ndarray | None = None) -> list[str]:  # fmt: skip
    """The warnings about exact copies (``groups`` of sample ids whose decoded pixels are identical,
    :func:`labeltrace.data.duplicates.group_members`): copies under different labels — at least one
    of each is wrong, whatever the scores say, and the ranking may flag one copy only — and copies
    under one label, which back each other's label from fold to fold (a wrong label two copies
    share is hard to find: the model judging one has trained on the other) unless they share a
    fold: a group of ``sample_groups`` (the scan's ``--group-column``), or any group when
    ``held_out`` (the cross-fitted folds keep copies together) — but those ``folds`` (each sample's,
    when known) left in different folds, where one fold would have lacked a class to train on."""
    g = np.asarray(given, dtype=np.int64)
    split = [grp for grp in groups if len(set(g[grp].tolist())) > 1]
    if held_out:
        f = None if folds is None else np.asarray(folds)
        alike: list[list[int]] = [] if f is None else [
            grp for grp in groups if len(set(g[grp].tolist())) == 1 and len(set(f[grp].tolist())) > 1]
    else:
        apart = (lambda grp: True) if sample_groups is None else (lambda grp: len({sample_groups[i] for i in grp}) > 1)
        alike = [grp for grp in groups if len(set(g[grp].tolist())) == 1 and apart(grp)]
    out = []
    if split:
        n = sum(len(grp) for grp in split)
        out.append(f"{n} images are exact copies (identical pixels) filed under different labels: at least one label "
                   "of each group is wrong, whatever the scores say (the ranking may flag one copy only): "
                   + listing(" = ".join(f"{paths[i]} ({classes[g[i]]})" for i in grp) for grp in split))  # fmt: skip
    if alike:
        n = sum(len(grp) for grp in alike)
        out.append(f"{n} images are exact copies (identical pixels) of another under the same label ({len(alike)} "
                   f"group{'s' if len(alike) > 1 else ''}{', left in different folds: in one fold they would leave a fold without any image of a class to train on' if held_out else ''}"
                   "): each copy backs its twin's label (the model judging one "
                   "has trained on the other, held out or not), so a wrong label they share is hard to find; keep one "
                   "copy of each: "
                   + listing(" = ".join(paths[i] for i in grp) for grp in alike))  # fmt: skip
    return out


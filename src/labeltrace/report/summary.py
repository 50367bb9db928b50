"""The one-screen terminal summary of a run (reads the run directory only)."""

from __future__ import annotations

import math
from pathlib import Path

from labeltrace import rundir
from labeltrace._checks import counted
from labeltrace.diagnostics import agreement
from labeltrace.report.stats import class_table, class_text, share_text


def _num(v: object, spec: str = ".3f") -> str:
    """``v`` formatted, or "n/a" where run.json holds null (a NaN: undefined, e.g. recall with no
    wrong label, or a detector that flags by a mask and has no cutoff)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def _share(v: object) -> str:
    """A share in [0, 1] to 3 decimals, never rounded to an end it does not reach ("0.999+")."""
    return share_text(v, missing="n/a")


def printable(v: object) -> str:
    """``str(v)`` with its control characters escaped as ``repr`` writes them: a class name or file
    name holding a newline stays on its row ("naïve\\nline"; other characters as they are)."""
    t = str(v)
    return t if t.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in t)


def cut_text(run: rundir.Run, cutoff: object) -> str:
    """" < cutoff", or " ≤ s" when the cutoff sits just above a tie group of flagged scores s (a
    whole-number score such as forgetting: "< -1" would read as if the samples at -1 were kept);
    "" without a cutoff. The one wording of the cut: the summary, the report's card and histogram."""
    if _num(cutoff) == "n/a":
        return ""
    cut = float(cutoff)  # type: ignore[arg-type]
    scores = run.column("score")[run.column("is_suspect").astype(bool)]
    if scores.size and format(float(scores.max()), ".4g") == format(cut, ".4g"):
        return f" ≤ {float(scores.max()):.4g}"
    return f" < {cut:.4g}"


def lower_bound_note(run: rundir.Run) -> str:
    """Why the noise-rate estimate of an in-sample run is a lower bound ("" for other runs): the
    summary's and the report's one wording."""
    if run.trained == "runs":
        return "on the posterior of the model(s) that trained on these labels: a lower bound"
    return ""


def estimate_note(run: rundir.Run) -> str:
    """What the noise-rate estimate is, and — when the cut flags clearly more or fewer samples than
    the estimate × N — that the cut flagged by its own rule: the summary's and the report's one
    wording. Two numbers of wrong labels side by side read as a contradiction otherwise."""
    m = run.meta
    est, n = m.get("noise_rate_estimate"), run.num_samples
    parts = ["confident learning's calibrated joint on the posterior behind the suggestions", lower_bound_note(run)]
    flagged = (m.get("counts") or {}).get("flagged")
    if isinstance(est, (int, float)) and math.isfinite(est) and isinstance(flagged, int):
        expected = est * n
        if abs(flagged - expected) > max(0.1 * expected, 5):
            parts.append(f"the cut flags {'fewer' if flagged < expected else 'more'}, {flagged:,} against "
                         f"{expected:,.0f}: it flags by its own rule")
    return "; ".join(p for p in parts if p)


def duplicates_text(meta: dict) -> str:
    """One line on the exact copies among the images (run.json ``duplicates``): how many images
    are a copy of another, in how many groups, and how many groups carry different labels; ""
    without copies (and for runs written before copies were looked for)."""
    d = meta.get("duplicates") or {}
    if not d.get("groups"):
        return ""
    g, c = int(d["groups"]), int(d.get("conflicting_groups") or 0)
    folds = (meta.get("protocol") or {}).get("kind") in ("crossfit", "k-fold")
    copies = int(d["copies"])
    text = (f"exact copies: {counted(copies, 'image')} {'is' if copies == 1 else 'are'} a copy of another "
            f"({counted(g, 'group')} of "
            f"identical pixels, {int(d['images_in_groups']):,} images"
            + ("; the folds keep each group in one fold, unless that leaves a fold no image of a class to train "
               "on: the scan's warning names those" if folds else "") + "); ")
    text += (f"{c:,} group{'s carry' if c > 1 else ' carries'} different labels — at least one label of each is wrong"
             if c else "none carries different labels")
    return text + f" ({rundir.DUPLICATES_CSV})"


def near_duplicates_text(meta: dict) -> str:
    """One line on the likely copies (run.json ``near_duplicates``): how many images in how many
    groups, and how many groups carry different labels; "" without any (and for older runs)."""
    d = meta.get("near_duplicates") or {}
    if not d.get("groups"):
        return ""
    g, c = int(d["groups"]), int(d.get("conflicting_groups") or 0)
    folds = (meta.get("protocol") or {}).get("kind") in ("crossfit", "k-fold")  # a scan without folds: no word on them
    text = (f"near-copies: {int(d['images_in_groups']):,} images in {counted(g, 'group')} of likely "
            f"copies (re-encoded, resized or brighter / darker: thumbnails correlated at {float(d['threshold']):g} "
            f"or more{'; not kept in one fold' if folds else ''}); ")
    text += (f"{c:,} group{'s carry' if c > 1 else ' carries'} different labels — check them: if the images are one, "
             "a label is wrong" if c else "none carries different labels")
    return text + f" ({rundir.NEAR_DUPLICATES_CSV})"


def _held_out_words(meta: dict) -> str:
    """What a cross-fitted scan's agreement is — its suggested labels, the held-out probabilities
    averaged over every epoch — and, where run.json has it, its ``held_out_accuracy``: the last
    epoch's alone, another number (an older run.json's held_out_accuracy, without
    ``held_out_accuracy_over_epochs`` beside it, was a mean over epochs: not named)."""
    words = "the suggested labels, from their probabilities averaged over every epoch"
    train = meta.get("train") or {}
    last = train.get("held_out_accuracy")
    if "held_out_accuracy_over_epochs" not in train or not isinstance(last, list) or not last:
        return words
    try:
        acc = math.fsum(float(a) for a in last) / len(last)
    except (TypeError, ValueError):
        return words
    runs = f", mean of {len(last)} runs" if len(last) > 1 else ""
    return words + f"; the last epoch's predictions alone {acc:.1%}, run.json's held_out_accuracy{runs}"


def settled_text(run: rundir.Run) -> str:
    """How many of the flagged samples an earlier review round settled on the label they have now
    (:func:`~labeltrace.relabel.earlier.settled_before`: a cleaned manifest or .npz scanned again), or
    "": a second round's suspects are mostly hard images the experts already confirmed."""
    from labeltrace.relabel.earlier import settled_before

    settled, _ = settled_before(run)
    flagged = run.column("is_suspect").astype(bool)
    both = 0 if settled is None else int((settled & flagged).sum())
    if not both:
        return ""
    return (f"{both:,} of the {int(flagged.sum()):,} flagged were settled by an earlier review round on the label they "
            "have now (the scanned labels' review_status): labeltrace queue puts them after the others")


def _rescored(meta: dict) -> str:
    """A finished scan re-scored from its saved recording (run.json's ``timings.train_now`` beside
    the training it kept, which only a re-scored scan writes): the time of the training its results
    come from, or "" (the call's own seconds, 1.0 s for a 212.6 s training, read as the scan's cost)."""
    t = meta.get("timings") or {}
    kept, now = t.get("train"), t.get("train_now")
    if not isinstance(kept, (int, float)) or not isinstance(now, (int, float)):
        return ""
    return f" (re-scored from its saved recording, which trained in {kept:.1f} s)"


def agreement_text(run: rundir.Run) -> str:
    """How often the model(s) behind the suggestions agree with the given labels, beside what
    answering the most common class for every sample would: the one measure of how much they
    learned, for the summary and the report."""
    m, own = run.meta, run.own_training
    agree, base, common = agreement(run.column("suggested_label_id"), run.column("given_label_id"), run.classes)
    return ({"none": "the kNN vote (leave-one-out) agrees"}.get(run.trained, "your model agrees" if own else
                                                              "the models agree")
            + f" with {agree:.1%} of the given labels"
            + {"crossfit": f" (held out: {_held_out_words(m)})", "k-fold": " (held out)", "none": ""}.get(
                run.trained, " (as it trained on them)" if own else " (models that trained on them)")
            + f"; answering {common!r} for every sample would agree with {base:.1%}")


def summary_text(run_dir: str | Path, *, top: int = 10, elapsed: float | None = None) -> str:
    run = rundir.open_run(run_dir)
    m = run.meta
    n = run.num_samples
    det = m["detector"]
    flagged = m["counts"]["flagged"]
    proto = m.get("protocol") or {}
    trained = proto.get("epochs_trained", m["train"]["epochs"])
    epochs = f"{trained} of {m['train']['epochs']} epochs (early stop)" if trained < m["train"]["epochs"] \
        else counted(m["train"]["epochs"], "epoch")  # fmt: skip
    world = (m.get("distributed") or {}).get("world_size", 1)
    own = run.own_training
    lines = [
        f"labeltrace {'(your own training)' if own else 'scan'} — {n:,} samples, {len(run.classes)} classes, "
        + ("" if own else f"model {m['model']}, ")
        + (run.recordings if run.trained == "none" else f"{epochs} x {run.recordings}")
        + (f", {world} processes" if world > 1 else "")
        + (f", {'written in ' if own else ''}{elapsed:.1f} s" if elapsed is not None else "")
        + ("" if own else _rescored(m)),
        f"flagged {flagged:,} suspects ({flagged / n:.1%}) by {det['name']}" + cut_text(run, det.get("cutoff"))
        + f" ({det['rule']}); "
        f"estimated noise rate {m['noise_rate_estimate']:.1%} ({estimate_note(run)})",
    ]
    lines.append(agreement_text(run))
    if dup := duplicates_text(m):
        lines.append(dup)
    if near := near_duplicates_text(m):
        lines.append(near)
    if flagged:
        lines.append(class_text(class_table(run.column("given_label_id").astype("int64"),
                                            run.column("suggested_label_id").astype("int64"),
                                            run.column("is_suspect").astype(bool), run.classes)))
        if said := settled_text(run):
            lines.append(said)
    met = m.get("metrics")
    if met:
        lines.append(
            f"against the true labels ({m['noise']['spec']}, "
            f"{'wrong' if m['noise']['spec'] == 'known true labels' else 'realised'} {m['noise']['realised_rate']:.1%}): "
            f"precision {_share(met['precision'])}  recall {_share(met['recall'])}  F1 {_share(met['f1'])}  "
            f"AUROC {_share(met['auroc'])}  AP {_share(met['average_precision'])}"
        )
    per_det = (m.get("noise") or {}).get("per_detector")
    if per_det:
        lines.append("every detector with its own cutoff (and its ranking: F1 at the true rate, AUROC):")
        per_score = m["noise"].get("per_score", {})
        wn = max(len(n) for n in per_det)
        wr = max(len(r["rule"]) for r in per_det.values())
        for name, r in sorted(per_det.items(), key=lambda kv: -(kv[1]["f1"] or 0)):
            rank_f1 = r.get("f1_at_true_rate", per_score.get(name, {}).get("f1"))
            lines.append(
                f"  {name:<{wn}}  {r['rule']:<{wr}}  P {_num(r['precision'])}  R {_num(r['recall'])}  F1 {_num(r['f1'])}"
                f"   | ranking F1 {_num(rank_f1)}  AUROC {_num(r['auroc'])}"
            )
    order = run.column("rank").argsort()[:top]
    if len(order):
        lines.append(f"top {len(order)} suspects:")
        lines.append(f"  {'rank':>5} {'id':>7}  {'sample':<28} {'given':>12} -> {'suggested':<12} {'p':>5} {'score':>8}")
        ext, given, sugg = run.column("external_id"), run.column("given_label"), run.column("suggested_label")
        prob, score, rank = run.column("suggested_prob"), run.column("score"), run.column("rank")
        for i in order:
            name = printable(ext[i])
            name = name if len(name) <= 28 else "…" + name[-27:]
            lines.append(f"  {rank[i]:>5} {i:>7}  {name:<28} {printable(given[i]):>12} -> "
                         f"{printable(sugg[i]):<12} {prob[i]:5.2f} {score[i]:8.4f}")  # fmt: skip
    names = (rundir.SAMPLES, rundir.SAMPLES_CSV, rundir.DUPLICATES_CSV, rundir.NEAR_DUPLICATES_CSV, rundir.RUN_JSON)
    files = [Path(run.path) / name for name in names]
    lines.append("files: " + "  ".join(str(f) for f in files if f.exists())
                 + f"  (the HTML report: labeltrace report {run.path})")
    return "\n".join(lines)


def print_summary(run_dir: str | Path, *, top: int = 10, elapsed: float | None = None) -> None:
    print(summary_text(run_dir, top=top, elapsed=elapsed))

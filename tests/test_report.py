"""HTML / PNG report: self-contained, escaped, numbers checked against independent computations."""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from runfactory import make_run
from sklearn.metrics import f1_score, precision_score, recall_score

from labeltrace.report import stats, write_report
from labeltrace.report.images import display_image
from labeltrace.rundir import open_run, write_table

IMG_RE = re.compile(r'<img[^>]*\bsrc="([^"]*)"')


def _png(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("rep"), n=90, k=4, seed=3)


@pytest.fixture(scope="module")
def page(run_dir: Path) -> str:
    return write_report(run_dir, top=12).read_text(encoding="utf-8")


def test_self_contained(page: str, run_dir: Path) -> None:
    assert (run_dir / "report.html").exists()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page and "<script" not in page and "@import" not in page
    srcs = IMG_RE.findall(page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:
        assert _png(s).ndim == 3


def test_summary_numbers(page: str, run_dir: Path) -> None:
    t = pq.read_table(run_dir / "samples.parquet").to_pydict()
    flagged = np.array(t["is_suspect"])
    noisy = np.array(t["is_noisy"])
    assert f">{int(flagged.sum())}<" in page  # the "Flagged" card
    p = precision_score(noisy, flagged)
    r = recall_score(noisy, flagged)
    f = f1_score(noisy, flagged)
    quality = re.search(r'id="quality">(.*?)</div>', page).group(1)
    assert (
        f"precision {p:.3g}" in quality
        and f"recall {r:.3g}" in quality
        and f"F1 {f:.3g}" in quality
    )
    for name in ("score_histogram", "signed_entropy_trajectories", "precision_recall"):
        assert f'id="{name}"' in page
    assert "small_cnn" in page and "8 epochs × 2 runs" in page


def test_top_suspects_in_rank_order_with_nearest_thumbnails(page: str, run_dir: Path) -> None:
    t = pq.read_table(run_dir / "samples.parquet").to_pydict()
    rank = np.array(t["rank"])
    ids = [int(x) for x in re.findall(r'<div class="sus (?:un)?flagged" data-id="(\d+)">', page)]
    assert ids == np.argsort(rank, kind="stable")[:12].tolist()
    flagged = re.findall(r'<div class="sus (flagged|unflagged)" data-id', page)
    assert flagged == ["flagged" if t["is_suspect"][i] else "unflagged" for i in ids]
    first = re.search(
        rf'<div class="sus flagged" data-id="{ids[0]}"><img alt="[^"]*" src="([^"]*)"', page
    ).group(1)
    thumb = _png(first)
    assert thumb.shape == (128, 128, 3)  # 8x8 enlarged by 16
    orig = np.asarray(Image.open(run_dir.parent / "data" / t["path"][ids[0]]).convert("RGB"))
    assert np.array_equal(thumb[::16, ::16], orig)  # every source pixel is a 16x16 block
    assert np.array_equal(thumb, np.kron(orig, np.ones((16, 16, 1), dtype=np.uint8)))


def test_class_table(page: str, run_dir: Path) -> None:
    t = pq.read_table(run_dir / "samples.parquet").to_pydict()
    table = re.search(r"<table id='classes'>(.*?)</table>", page, re.S).group(1)
    rows = re.findall(
        r"<tr><td>([^<]*)</td><td class='n'>([\d,]+)</td><td class='n'>([\d,]+)</td>"
        r"<td class='n'>[^<]*</td><td>([^<]*)</td><td class='n'>([\d,]+)</td></tr>",
        table,
    )
    classes = open_run(run_dir).classes
    assert [r[0] for r in rows] == classes
    for name, n, f, relabel, agreed in rows:
        mine = [k for k in range(len(t["id"])) if t["given_label"][k] == name]
        assert int(n) == len(mine)
        assert int(f) == sum(t["is_suspect"][k] for k in mine)
        assert int(agreed) == sum(t["is_suspect"][k] and t["suggested_label"][k] == name for k in mine)
        moved = Counter(
            t["suggested_label"][k]
            for k in mine
            if t["is_suspect"][k] and t["suggested_label"][k] != name
        )
        if moved:
            top = max(moved.values())
            best = min((c for c in moved if moved[c] == top), key=classes.index)
            assert relabel == f"{best} ({top})"
        else:
            assert relabel == "—"


def test_escapes_user_strings(tmp_path: Path) -> None:
    evil = ["<script>alert(1)</script>", 'a&b "q"', "<b>bold</b>"]
    rd = make_run(tmp_path, n=30, k=3, classes=evil, seed=1)
    page = write_report(rd).read_text(encoding="utf-8")
    for c in evil:
        assert c not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&amp;b &quot;q&quot;" in page
    assert "<script" not in page


def test_without_truth_arrays_and_png(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=40, k=3, with_files=False, with_truth=False)
    page = write_report(rd, tmp_path / "r.html", top=5).read_text(encoding="utf-8")
    assert 'id="quality"' not in page and 'id="precision_recall"' not in page
    assert 'id="signed_entropy_trajectories"' in page
    assert len(re.findall(r'<div class="sus ', page)) == 5
    folder = write_report(rd, tmp_path / "figs", format="png")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["score_histogram.png", "signed_entropy_trajectories.png", "top_suspects.png"]
    for p in folder.iterdir():
        with Image.open(p) as im:
            assert im.format == "PNG"
    rd2 = make_run(tmp_path / "t", n=40, k=3)
    assert (write_report(rd2, format="png") / "precision_recall.png").exists()


def test_missing_dynamics_and_image_still_report(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3)
    for p in (rd / "dynamics").iterdir():
        p.unlink()
    run = open_run(rd)
    first = int(np.argmin(run.column("rank")))
    (run.data_root / str(run.column("path")[first])).unlink()
    page = write_report(rd, top=3).read_text(encoding="utf-8")
    assert "Signed-entropy trajectories unavailable" in page
    assert "image unavailable" in page
    assert 'id="score_histogram"' in page


def test_bad_arguments(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        write_report(run_dir, format="pdf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top"):
        write_report(run_dir, top=-1)
    with pytest.raises(ValueError, match="not a labeltrace run"):
        write_report(tmp_path)


def test_image_escaping_root_is_not_embedded(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3)
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(secret)
    t = pq.read_table(rd / "samples.parquet")
    paths = t.column("path").to_pylist()
    first = int(np.argmin(t.column("rank").to_numpy()))
    paths[first] = "../secret.png"
    import pyarrow as pa

    write_table(
        rd / "samples.parquet", t.set_column(t.column_names.index("path"), "path", pa.array(paths))
    )
    page = write_report(rd, top=1).read_text(encoding="utf-8")
    assert "image unavailable" in page and "escapes the data root" in page


# --------------------------------------------------------------------------- stats
def test_flagged_metrics_by_hand() -> None:
    f = np.array([1, 1, 1, 0, 0, 0], bool)
    y = np.array([1, 0, 1, 1, 0, 0], bool)
    m = stats.flagged_metrics(f, y)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 1)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # the definitions of run.json (evaluate.metrics): nothing flagged = precision 0; no wrong label = F1 NaN
    none = stats.flagged_metrics(np.zeros(3, bool), np.array([1, 1, 0], bool))
    assert none["precision"] == 0.0 and none["recall"] == 0.0 and none["f1"] == 0.0
    assert np.isnan(stats.flagged_metrics(np.array([1, 0, 0], bool), np.zeros(3, bool))["f1"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.booleans()), min_size=1, max_size=40))
def test_precision_recall_matches_brute_force(rows: list[tuple[float, bool]]) -> None:
    s = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    p, r = stats.precision_recall(s, y)
    order = sorted(range(len(s)), key=lambda i: (s[i], i))
    for k in range(1, len(s) + 1):
        top = order[:k]
        tp = sum(y[i] for i in top)
        assert p[k - 1] == pytest.approx(tp / k)
        assert r[k - 1] == pytest.approx(tp / max(y.sum(), 1))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 5).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(
                st.tuples(st.integers(0, k - 1), st.integers(0, k - 1), st.booleans()),
                min_size=1,
                max_size=50,
            ),
        )
    )
)
def test_class_table_matches_counter(arg: tuple[int, list[tuple[int, int, bool]]]) -> None:
    k, rows = arg
    g = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    f = np.array([r[2] for r in rows])
    names = [f"c{j}" for j in range(k)]
    out = stats.class_table(g, s, f, names)
    for j, row in enumerate(out):
        assert row.samples == int((g == j).sum()) and row.flagged == int(((g == j) & f).sum())
        assert row.agreed == int(((g == j) & f & (s == j)).sum())
        c = Counter(int(b) for a, b, fl in rows if a == j and fl and b != j)
        if c:
            top = max(c.values())
            assert (
                row.relabel_count == top
                and row.relabel_to == names[min(x for x in c if c[x] == top)]
            )
        else:
            assert row.relabel_to is None and row.relabel_count == 0


def test_trajectory_groups() -> None:
    s = np.arange(20, dtype=float)
    noisy = np.zeros(20, bool)
    noisy[[0, 1, 2]] = True
    excl = np.zeros(20, bool)
    excl[19] = True
    g = stats.trajectory_groups(s, np.zeros(20, bool), noisy=noisy, exclude=excl)
    assert g["suspect"].tolist() == [0, 1, 2]
    clean = np.arange(3, 19)  # 16 clean, not excluded
    lo, hi = np.quantile(s[clean], [0.25, 0.75])
    assert g["hard"].tolist() == clean[s[clean] <= lo].tolist()
    assert g["easy"].tolist() == clean[s[clean] >= hi].tolist()
    g2 = stats.trajectory_groups(s, s < 4)  # no truth: flagged are the suspects
    assert g2["suspect"].tolist() == [0, 1, 2, 3]


def test_display_image_scaling() -> None:
    img = np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3)
    big = display_image(img, size=128)
    assert big.shape == (128, 96, 3) and np.array_equal(big[::16, ::16], img)
    large = np.zeros((1000, 500, 3), np.uint8)
    assert display_image(large, size=256).shape == (256, 128, 3)
    assert display_image(img, size=8) is img


def test_contradicted_class_warning_is_shown_and_escaped(tmp_path: Path) -> None:
    import json

    classes = ["<b>cat</b>", "dog", "fox"]
    rd = make_run(tmp_path, n=30, k=3, classes=classes, seed=2)
    meta = json.loads((rd / "run.json").read_text())
    assert "quality warn\"" not in write_report(rd).read_text(encoding="utf-8")  # no row (or a run from before): none
    meta["contradicted_classes"] = [{"class": "<b>cat</b>", "samples": 10, "contradicted": 9, "suggested": "dog"}]
    (rd / "run.json").write_text(json.dumps(meta))
    page = write_report(rd).read_text(encoding="utf-8")
    box = re.search(r'<div class="quality warn">(.*?)</div>', page).group(1)
    assert box.startswith("class &#x27;&lt;b&gt;cat&lt;/b&gt;&#x27;: the models contradict 9 of its 10 labels (90%)")
    assert "<b>cat</b>" not in page


def test_many_contradicted_classes_are_one_warning(tmp_path: Path) -> None:
    """A weak model on 120 classes overruled 118: the report, the scan's output and the review page
    each repeated the same paragraph 118 times above everything else."""
    import json

    from labeltrace.diagnostics import contradicted_texts

    rd = make_run(tmp_path, n=30, k=3, seed=2)
    meta = json.loads((rd / "run.json").read_text())
    meta["contradicted_classes"] = [{"class": f"c{j}", "samples": 2 + j, "contradicted": 2 + j, "suggested": "dog"}
                                    for j in range(118)]  # fmt: skip
    (rd / "run.json").write_text(json.dumps(meta))
    boxes = re.findall(r'<div class="quality warn">(.*?)</div>', write_report(rd).read_text(encoding="utf-8"))
    assert len(boxes) == 1 and boxes[0].startswith("118 classes whose labels the models contradict")
    assert "&#x27;c117&#x27; (119 of 119, most often suggesting &#x27;dog&#x27;), &#x27;c116&#x27;" in boxes[0]
    assert "(and 108 more)" in boxes[0]
    assert contradicted_texts(meta["contradicted_classes"][:3])[2].startswith("class 'c2': the models contradict")


def _patch_meta(rd: Path, **changes: object) -> None:
    import json

    from labeltrace.rundir import RUN_JSON, write_json

    meta = json.loads((rd / RUN_JSON).read_text())
    meta.update(changes)
    write_json(rd / RUN_JSON, meta)


def test_report_and_summary_of_a_run_without_recording_or_cutoff(tmp_path: Path) -> None:
    """Confident learning alone (``--detector cl`` / ``cleanlab``) records no training and flags by
    a mask; a run whose labels are all right has undefined recall and F1: the report and the
    terminal summary say so instead of crashing."""
    from labeltrace.report.summary import summary_text

    rd = make_run(tmp_path, n=30, k=3)
    for p in (rd / "dynamics").iterdir():
        p.unlink()
    _patch_meta(rd, runs=0, protocol={"kind": "k-fold", "dynamics": "none", "folds": 5},
                detector={"name": "cleanlab", "cutoff": None, "rule": "prune_by_noise_rate"},
                train={"epochs": 8}, model="small-cnn", noise={"spec": "known true labels", "realised_rate": 0.0},
                metrics={"precision": 0.0, "recall": None, "f1": None, "auroc": None, "average_precision": None})  # fmt: skip
    page = write_report(rd, top=3).read_text(encoding="utf-8")
    assert "cleanlab records no training dynamics" in page
    assert "flags by its own mask, not by a cutoff" in page
    assert "5 cross-validated folds (out-of-fold probabilities)" in page
    text = summary_text(rd)
    assert "by cleanlab (prune_by_noise_rate)" in text and "<" not in text.splitlines()[1]
    assert "precision 0.000  recall n/a  F1 n/a  AUROC n/a  AP n/a" in text
    assert "(known true labels, wrong 0.0%)" in text and "realised" not in text  # nothing was injected
    assert "x 0 runs" not in text
    # a kNN-vote run written before the k-fold kind (protocol "none" with folds, no cv_probs.npy): no training
    _patch_meta(rd, protocol={"kind": "none", "dynamics": "none", "folds": 5})
    assert "model small-cnn, no training" in summary_text(rd)


def test_report_says_when_training_stopped_early(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3, epochs=8)
    _patch_meta(rd, protocol={"kind": "in-sample", "epochs_trained": 5})
    page = write_report(rd, top=3).read_text(encoding="utf-8")
    assert "5 of 8 epochs (early stop)" in page
    # the epochs left to the model's default (config: null): the planned count is the protocol's
    _patch_meta(rd, config={"model": "small_cnn", "epochs": None},
                protocol={"kind": "in-sample", "epochs_planned": 20, "epochs_trained": 8})
    assert "8 of 20 epochs (early stop)" in write_report(rd, top=3).read_text(encoding="utf-8")


def test_png_captions_print_class_names_as_text(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3, classes=["$\\x$ weird", "$5 bill", "coin"])
    folder = write_report(rd, tmp_path / "figs", format="png", top=30)  # a mathtext parse error before
    assert (folder / "top_suspects.png").stat().st_size > 1000


def test_summary_prints_a_tie_cutoff_as_at_most_the_flagged_score(tmp_path: Path) -> None:
    """A cutoff just above a tie group (top_fraction's next float) prints as "≤ s", not "< s"."""
    from labeltrace.report.summary import summary_text

    rd = make_run(tmp_path, n=30, k=3)
    run = open_run(rd)
    top = float(run.column("score")[run.column("is_suspect").astype(bool)].max())
    base = {"train": {"epochs": 8}, "model": "small-cnn"}
    _patch_meta(rd, detector={"name": "forgetting", "cutoff": float(np.nextafter(top, np.inf)), "rule": "top-k"}, **base)
    assert f"by forgetting ≤ {top:.4g} (top-k)" in summary_text(rd)
    _patch_meta(rd, detector={"name": "sei", "cutoff": top + 0.5, "rule": "gmm"})
    assert f"by sei < {top + 0.5:.4g} (gmm)" in summary_text(rd)


def test_report_names_the_images_skipped_as_unreadable(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3)
    meta = open_run(rd).meta
    _patch_meta(rd, data={**meta["data"], "skipped": [["cat/<bad>.png", "cannot identify image file"]]})
    page = write_report(rd, top=3).read_text(encoding="utf-8")
    assert "1 unreadable image was skipped and not scanned: cat/&lt;bad&gt;.png" in page


def test_summary_says_an_in_sample_noise_rate_is_a_lower_bound(tmp_path: Path) -> None:
    """With --detector sei the terminal printed 'estimated noise rate 3.2%' beside 8.1% flagged,
    measured on models that had memorised the labels, without a word."""
    from labeltrace.report.summary import summary_text

    base = {"train": {"epochs": 8}, "model": "small-cnn"}
    rd = make_run(tmp_path, n=30, k=3)  # in-sample runs
    _patch_meta(rd, **base)
    assert open_run(rd).recordings.endswith(("1 run", " runs"))
    assert "trained on these labels: a lower bound" in summary_text(rd)
    cf = make_run(tmp_path / "cf", n=30, k=3, crossfit=True)
    _patch_meta(cf, **base)
    assert "held-out" in open_run(cf).recordings and "lower bound" not in summary_text(cf)


def test_the_noise_rate_estimate_says_what_it_is_and_that_the_cut_counts_its_own(tmp_path: Path) -> None:
    """'flagged 84 suspects (28.0%) ...; estimated noise rate 42.3%' read as a contradiction: the two
    numbers come from two rules, and neither line said so."""
    from labeltrace.report.summary import summary_text

    rd = make_run(tmp_path, n=100, k=3, crossfit=True)
    meta = open_run(rd).meta
    flagged = meta["counts"]["flagged"]
    _patch_meta(rd, noise_rate_estimate=(flagged + 30) / 100, train={"epochs": 8}, model="small-cnn")
    text = summary_text(rd)
    assert f"estimated noise rate {(flagged + 30) / 100:.1%} (confident learning's calibrated joint on the posterior " \
        f"behind the suggestions; the cut flags fewer, {flagged} against {flagged + 30}: it flags by its own rule)" in text
    assert "it flags by its own rule" in write_report(rd, top=3).read_text(encoding="utf-8")
    _patch_meta(rd, noise_rate_estimate=(flagged + 2) / 100)  # close to the count: nothing to explain
    assert "own rule" not in summary_text(rd)


def test_a_report_after_review_says_what_the_experts_decided(tmp_path: Path) -> None:
    """The report after a review still read 'flagged 84 suspects' and showed a confirmed sample
    as a suspect, with no word of the review."""
    from labeltrace.relabel.consensus import ConsensusRule
    from labeltrace.relabel.runstore import run_store

    rd = make_run(tmp_path, n=30, k=3, classes=["cat", "dog", "fox"])
    assert "id='review'" not in write_report(rd, top=30).read_text(encoding="utf-8")  # nobody reviewed yet
    run = open_run(rd)
    given = [int(g) for g in run.column("given_label_id")]
    other = lambda i: ["cat", "dog", "fox"][(given[i] + 1) % 3]  # noqa: E731
    st = run_store(run)
    st.set_rule(ConsensusRule(agree=1))
    st.add(0, other(0), reviewer="ada")  # changed
    st.add(1, ["cat", "dog", "fox"][given[1]], reviewer="ada")  # confirmed
    st.add(2, other(2), reviewer="ada")
    st.add(2, ["cat", "dog", "fox"][given[2]], reviewer="bob")  # disputed
    st.add(3, "unsure", reviewer="ada")
    page = write_report(rd, top=30).read_text(encoding="utf-8")
    assert ("<b>4</b> of 30 samples reviewed" in page and "<b>1</b> label changed by consensus" in page
            and "2 settled · 1 disputed · 0 short of votes · 1 unsure · 0 skipped" in page)  # fmt: skip
    assert f'class="badge reviewed consensus">reviewed: {other(0)}</span>' in page
    assert 'class="badge reviewed no-consensus">reviewed: no consensus</span>' in page
    assert 'class="badge reviewed unsure">reviewed: unsure</span>' in page


@pytest.mark.parametrize("agree", [1, 2])
def test_the_reports_reviewed_count_is_the_review_pages(tmp_path: Path, agree: int) -> None:
    """The report's "4 samples decided" counted a skip (and votes short of the rule) while the review
    page beside it read "3 / 30 reviewed · 1 skipped": one review, two counts of it."""
    from fastapi.testclient import TestClient

    from labeltrace.relabel.consensus import ConsensusRule
    from labeltrace.relabel.runstore import run_store
    from labeltrace.review import create_app

    rd = make_run(tmp_path, n=30, k=3, classes=["cat", "dog", "fox"])
    run = open_run(rd)
    given = [int(g) for g in run.column("given_label_id")]
    name = lambda i, shift=0: ["cat", "dog", "fox"][(given[i] + shift) % 3]  # noqa: E731
    st = run_store(run)
    st.set_rule(ConsensusRule(agree=agree))
    st.add(0, name(0, 1), reviewer="ada")
    st.add(0, name(0, 1), reviewer="bob")  # settled under either rule: changed
    st.add(1, name(1), reviewer="ada")  # one vote: settles under agree=1, short of votes under agree=2
    st.add(2, "skip", kind="skip", reviewer="ada")
    st.add(3, "unsure", reviewer="ada")
    state = TestClient(create_app(rd), base_url="http://127.0.0.1").get("/api/state").json()
    assert (state["reviewed"], state["skipped"]) == ((3, 1) if agree == 1 else (1, 1))
    page = write_report(rd, top=30).read_text(encoding="utf-8")
    assert f"<b>{state['reviewed']}</b> of 30 samples reviewed" in page
    assert f"<b>{state['changed']}</b> label changed by consensus" in page and f"{state['skipped']} skipped." in page


def test_a_report_after_review_counts_the_excluded(tmp_path: Path) -> None:
    from labeltrace.relabel.runstore import run_store

    rd = make_run(tmp_path, n=30, k=3, classes=["cat", "dog", "fox"])
    run = open_run(rd)
    sus = np.flatnonzero(run.column("is_suspect").astype(bool))
    assert sus.size >= 3
    st = run_store(run)
    st.add(int(sus[0]), "exclude", kind="exclude", reviewer="ada")
    st.add(int(sus[1]), "exclude", kind="exclude", reviewer="ada")
    st.add(int(sus[2]), "unsure", reviewer="ada")
    page = write_report(rd, top=30).read_text(encoding="utf-8")
    assert ("<b>3</b> of 30 samples reviewed" in page and "<b>0</b> labels changed by consensus · <b>2</b> excluded as "
            "of no class (left out of the cleaned labels) · 2 settled · 0 disputed" in page)  # fmt: skip
    assert page.count('class="badge reviewed excluded">reviewed: excluded</span>') == 2  # their suspect cards

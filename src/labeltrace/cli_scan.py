"""The ``labeltrace scan`` command line: its parser's arguments (the command itself is
:func:`labeltrace.cli._cmd_scan`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from labeltrace.cli_relabel import non_negative

__all__ = ["add_scan_parser"]


def _resolution(s: str) -> int | None:
    """``--resolution``: ``auto`` (None) or a positive number of pixels."""
    if s == "auto":
        return None
    try:
        v = int(s)
    except ValueError:
        v = 0
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected auto or a positive number of pixels, got {s!r}")
    return v


def add_scan_parser(sub: Any, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """Add ``scan`` to the subcommands ``sub`` (running ``func``)."""
    from labeltrace.decide import detectors as table

    detectors = table.available()

    s = sub.add_parser(
        "scan",
        help="train with the recorder, score every sample, write ranked suspects",
        description="Score every sample of a labeled image dataset and write a run directory "
        "(samples.parquet, run.json, saved dynamics). A killed scan re-run with the same command resumes. "
        "Under torchrun --nproc_per_node N every training runs data-parallel (gloo on CPU, NCCL on GPU) and rank 0 "
        "writes the run directory.",
    )
    s.add_argument("data", nargs="?", help="image folder (one sub-folder per class), manifest .csv/.tsv/.parquet, or .npz")
    s.add_argument("--labels", help="manifest (path,label[,id]); paths relative to DATA if given, else to the manifest")
    s.add_argument("--example", choices=["digits"], help="built-in dataset that needs no download")
    s.add_argument("--out", required=True, help="run directory to write")
    s.add_argument("--model", default="auto", choices=["auto", "small-cnn", "effnet-lite0", "clip"],
                   help="auto (default): whichever of small-cnn (from scratch) and effnet-lite0 (frozen "
                   "pretrained features) predicts held-out labels better in a quick 3-fold probe on up to 600 "
                   "samples; clip: CLIP image encoder + text prompts (needs --clip-model)")
    s.add_argument("--clip-model", help="clip: local directory (save_pretrained) or a hub name already cached")
    s.add_argument("--clip-template", default="a photo of a {}", help="clip: class prompt template")
    s.add_argument("--aux-prompt", default="a photo of something else",
                   help="clip: prompt of the auxiliary class, e.g. 'a dermoscopic image showing other lesions'")
    s.add_argument("--head", default="mlp", choices=["mlp", "linear"],
                   help="effnet-lite0's head (on frozen features, or with --finetune)")
    s.add_argument("--hidden", type=int, help="effnet-lite0 mlp head width (default 256)")
    s.add_argument("--finetune", action="store_true",
                   help="effnet-lite0: train the whole network on the images (lr 1e-3; meant for a GPU) "
                        "instead of a head on cached frozen features")
    s.add_argument("--epochs", type=int, help="training epochs per run (default depends on the model)")
    s.add_argument("--recording", metavar="RECORDER.npz",
                   help="no training: score the recording of a training you ran (a labeltrace Recorder saved with "
                        "rec.save, sample i = the i-th sample of DATA: a folder in labeltrace's order, class by "
                        "class, files sorted by path — in nested folders not torchvision ImageFolder's, which a "
                        "warning says; a manifest in its rows' order) and write its run directory for the report, "
                        "review, export and queue (labeltrace.write_run); no training setting goes with it")
    s.add_argument("--features", metavar="FILE.npy",
                   help="--recording: your network's (N, D) embeddings of DATA's samples, in their order "
                        "(the count reads their nearest neighbours' labels; the queue reads them)")
    s.add_argument("--detector", default=None, choices=detectors, metavar="DETECTOR",
                   help="score and cutoff that flag suspects (default crossfit; with --recording single) (the "
                        "detector table; see benchmarks/RESULTS.md for which wins where): " + "; ".join(f"{n}: {table.get(n).summary}" for n in detectors))
    s.add_argument("--folds", type=int, default=5,
                   help="crossfit and cross-validated probabilities: number of folds = models trained (default 5)")
    s.add_argument("--early-stop", action=argparse.BooleanOptionalAction, default=None,
                   help="crossfit: stop training once the ranking is stable — the suspects at the estimated "
                        "count change by < 1%% in each of 3 epochs (default off: docs/scale.md)")
    s.add_argument("--runs", type=int, default=2, choices=[1, 2],
                   help="in-sample detectors: 2 runs with disjoint auxiliary sets (default); 1: one run, no "
                        "auxiliary class (those detectors then flag as many as the one-training mode, single, counts)")
    s.add_argument("--noise", help="inject synthetic noise first and report detection metrics: "
                   "symmetric:0.2 | pair:0.2 | confusion:0.3 | instance:0.2")
    s.add_argument("--truth-column", help="manifest column with known true labels: report detection metrics "
                   "against them (benchmarks on real noise such as CIFAR-10N)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of every random step of the scan: the model probe, folds, auxiliary sets, "
                        "training, --noise (default 0); the flagging's own draws are fixed, so one recording "
                        "always gives the same flags")
    s.add_argument("--batch-size", type=int, help="batch size (default depends on the model)")
    s.add_argument("--lr", type=float, help="learning rate (default depends on the model)")
    s.add_argument("--weight-decay", type=float, help="weight decay (default depends on the model)")
    s.add_argument("--schedule", default="cosine", choices=["cosine", "step", "constant"], help="(default cosine)")
    s.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop + flip (default off)")
    s.add_argument("--image-size", type=int, help="input side of a network on the images (small-cnn: default the images' own "
                   "size when all share one <= 64 px, else 64; clip: default the images' own size when all share "
                   "one, else 224; --finetune: the side the images are held at, default as clip's — the network "
                   "itself sees them at --resolution)")
    s.add_argument("--width", type=int, help="small-cnn base width (channels of the first stage; default 16 for images <= 32 px, else 32)")
    s.add_argument("--resolution", type=_resolution, default=None, metavar="auto|PX",
                   help="effnet-lite0 feature resolution in px, or auto (default): 224 when its frozen features "
                   "predict held-out labels better than 96 px's by >= 0.03 in a quick 3-fold probe on up to 600 "
                   "samples, else 96 (224 costs about 7x the extraction; on small sets of natural photos it flags "
                   "fewer hard-but-clean images: benchmarks/RESULTS.md); with --finetune, the fine-tuned network's "
                   "input side, default 96")
    s.add_argument("--cache-dir", help="feature cache (default ~/.cache/labeltrace/features); read only with frozen "
                   "effnet-lite0 features, the model probe, or --noise confusion|instance's features")
    s.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="decode the images batch by batch in worker processes instead of holding them in memory "
                        "(frozen features: read from their cache file batch by batch); default: stream when the "
                        "in-memory inputs would exceed 2 GiB")
    s.add_argument("--workers", type=int, metavar="N",
                   help="decoding processes when streaming (default: CPUs - 1, at most 8; 0: in the main process); "
                        "also the threads of the exact-copy pass (default there: CPUs, at most 8)")
    s.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    s.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="the training's forward passes: float32, or bfloat16 under autocast — 1.7x faster for the "
                        "small CNN on a CPU with AMX (Intel Sapphire Rapids and later), 1.4x with AVX512-BF16, "
                        "slower where bfloat16 is emulated; auto (default): bfloat16 for the small CNN under a cross-fitted detector "
                        "(crossfit, the default, and its variants) where the device runs it natively, float32 "
                        "otherwise; a run directory keeps the precision its scan began in (run.json's "
                        "train.precision says what was used; docs/scale.md)")
    s.add_argument("--backbone-precision", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="the frozen backbone's forward passes (effnet-lite0's feature extraction; read only with "
                        "frozen features): float32, or "
                        "bfloat16 under autocast — 2-3x faster at 224 px on a CPU with AVX512-BF16; auto (default): "
                        "bfloat16 where the device runs it natively, float32 otherwise (the head still trains as "
                        "--precision says; the features of each precision are cached apart; a run directory keeps "
                        "the precision its scan extracted in; run.json's config.backbone_precision)")
    s.add_argument("--on-bad-image", default="fail", choices=["fail", "skip"], help="(default fail)")
    s.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                   help="also read image files inside DIR (repeatable): files that symlinks, '..' or absolute "
                        "manifest paths lead to outside the data root are refused otherwise")
    s.add_argument("--max-pixels", type=int, metavar="N",
                   help="refuse images whose header declares more than N pixels (default 40000000)")
    s.add_argument("--path-column", default="path", help="manifest column of the image paths (default path)")
    s.add_argument("--label-column", default="label", help="manifest column of the labels (default label)")
    s.add_argument("--id-column", help="manifest column of sample ids (default: 'id' when present, else the path)")
    s.add_argument("--group-by-folder", action="store_true",
                   help="a folder DATA/<class>/<patient>/<image>: the folder below the class folder is the image's "
                        "group, as --group-column's")
    s.add_argument("--group-column", metavar="COLUMN",
                   help="manifest column of each image's group (a patient, a study): the cross-fitted folds keep a "
                        "group together and a sample's nearest neighbours are found outside its group, so that "
                        "another image of the same patient cannot vouch for a wrong label they share")
    s.add_argument("--classes", metavar="FILE",
                   help="the class names of a manifest or .npz, one per line in id order (integer labels are "
                        "positions in it; default: a classes.txt beside the manifest, else 0..K-1 or the sorted names)")
    s.add_argument("--no-missing-markers", action="store_true",
                   help="read manifest labels and ids such as NA, None, null or - as they are (a class named "
                        "'none'); by default they are missing values and refused, and only empty cells are so "
                        "with this flag")
    s.add_argument("--split", help="split of a MedMNIST-style .npz (default train); a .npz only")
    s.add_argument("--csv", action="store_true", help="also write samples.csv")
    s.add_argument("--top", type=non_negative, default=10, help="suspects shown in the summary (default 10)")
    s.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    s.add_argument("--force", action="store_true",
                   help="replace a run directory that holds a scan of another configuration (an unfinished scan "
                        "of this configuration is resumed, --force or not; its review "
                        "decisions stay when this scan has the same samples and classes — they are about the "
                        "images — and are set aside as reviews.db.replaced-<time> otherwise; never deleted)")
    s.set_defaults(func=func)
    return s

"""The SEI paper's setting end to end: CLIP image encoder + prompts, auxiliary prompt, via scan and the CLI.

No weights can be downloaded here, so a tiny randomly initialised CLIP is saved to a local
directory with a character-level tokenizer and loaded back through the real loading code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from labeltrace import rundir  # noqa: E402
from labeltrace.data import from_arrays  # noqa: E402
from labeltrace.scan import ScanConfig, scan  # noqa: E402

torch.set_num_threads(1)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
VOCAB = {c: i for i, c in enumerate(LETTERS)} | {c + "</w>": 26 + i for i, c in enumerate(LETTERS)}
BOS, EOS = 52, 53
VOCAB |= {"<|startoftext|>": BOS, "<|endoftext|>": EOS}


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_clip")
    (d / "vocab.json").write_text(json.dumps(VOCAB))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer.from_pretrained(str(d), local_files_only=True)
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=BOS, eos_token_id=EOS,
                         pad_token_id=EOS),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, num_channels=3),
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.CLIPModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_scan_with_clip_prompts_and_auxiliary_prompt(tiny_clip_dir, tmp_path):
    rng = np.random.default_rng(0)
    n, classes = 48, ["cat", "dog", "bird"]
    y = np.repeat(np.arange(3), n // 3)
    x = np.clip(rng.normal(0.5, 0.1, (n, 32, 32, 3)) + (y[:, None, None, None] == np.arange(3)) * 0.3, 0, 1)
    ds = from_arrays(x.astype(np.float32), y, classes=classes)
    cfg = ScanConfig(model="clip", clip_model=str(tiny_clip_dir), epochs=2, batch_size=16, noise="symmetric:0.25",
                     aux_prompt="a photo of something else", detector="sei")  # fmt: skip
    res = scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    run = rundir.open_run(res.run_dir)
    assert run.meta["model"] == "clip" and run.meta["config"]["aux_prompt"] == "a photo of something else"
    # the auxiliary class is the extra prompt: K + 1 logits recorded in both runs
    assert run.dynamics(0).num_classes == 4 and run.dynamics(1).num_classes == 4
    assert np.isfinite(run.column("sei")).all() and run.num_samples == n
    assert set(run.column("suggested_label")) <= set(classes)


def test_clip_without_weights_is_a_clear_error(tmp_path):
    ds = from_arrays(np.zeros((6, 8, 8), np.float32), [0, 0, 1, 1, 2, 2], classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="--clip-model"):
        scan(ds, tmp_path / "r", ScanConfig(model="clip", epochs=1), progress=False, log=lambda s: None)

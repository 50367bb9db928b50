"""load_clip's errors say what is wrong: a missing directory, a path that is not a directory, a hub
name that is not in the local Hugging Face cache (and that nothing was downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeltrace.models.clip_text import load_clip

pytest.importorskip("transformers")


@pytest.mark.parametrize("given", ["abs", "dot", "pathobj"])
def test_a_missing_directory_is_named_as_missing(given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = {"abs": str(tmp_path / "nope"), "dot": "./nope", "pathobj": Path("nope")}[given]
    with pytest.raises(FileNotFoundError, match=r"CLIP model directory '.*nope' does not exist"):
        load_clip(src)


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_clip(tmp_path / "weights.bin")


def test_an_uncached_hub_name_says_so_and_that_nothing_was_downloaded() -> None:
    with pytest.raises(FileNotFoundError, match=r"'labeltrace-tests/no-such-clip' is neither a local directory nor "
                                                r"in the local Hugging Face cache.*no download was attempted"):  # fmt: skip
        load_clip("labeltrace-tests/no-such-clip")


def test_a_folder_without_tokenizer_files_says_so(tmp_path: Path) -> None:
    """transformers 5 loads an empty tokenizer where the files are missing: every prompt then failed
    as "contains no EOS token"."""
    import torch
    import transformers

    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, num_channels=3),
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.CLIPModel(cfg).save_pretrained(tmp_path)  # weights and config, no tokenizer
    with pytest.raises(FileNotFoundError, match="holds no vocabulary.*tokenizer files are missing"):
        load_clip(tmp_path)

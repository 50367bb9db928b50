"""Tests for labeltrace.models.clip on a tiny randomly initialised CLIP (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from labeltrace.models import build_model  # noqa: E402
from labeltrace.models.clip import (  # noqa: E402
    DOMAIN_TEMPLATES,
    CLIPPromptClassifier,
    build_prompts,
    load_clip,
)

torch.set_num_threads(1)

LETTERS = "abcdefghijklmnopqrstuvwxyz"
# character-level BPE vocabulary: letters, word-final letters, then the two special tokens
VOCAB = {c: i for i, c in enumerate(LETTERS)} | {c + "</w>": 26 + i for i, c in enumerate(LETTERS)}
BOS, EOS = 52, 53
VOCAB |= {"<|startoftext|>": BOS, "<|endoftext|>": EOS}
CLASSES = ["cat", "dog", "bird"]


def _tiny_config() -> Any:
    return transformers.CLIPConfig(
        text_config=dict(
            vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=64, bos_token_id=BOS,
            eos_token_id=EOS, pad_token_id=EOS,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8, num_channels=3,
        ),
        projection_dim=16,
    )


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny_clip")
    (d / "vocab.json").write_text(json.dumps(VOCAB))
    (d / "merges.txt").write_text("#version: 0.2\n")
    return d


@pytest.fixture(scope="module")
def tokenizer(tok_dir: Path) -> Any:
    return transformers.CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)


@pytest.fixture()
def clip_model() -> Any:
    torch.manual_seed(0)
    return transformers.CLIPModel(_tiny_config()).eval()


def _char_ids(word: str) -> list[int]:
    return [VOCAB[c] for c in word[:-1]] + [VOCAB[word[-1] + "</w>"]]


def _char_tokenize(prompts: list[str]) -> dict[str, torch.Tensor]:
    """A trivial tokenizer: BOS, one id per letter (word-final letters marked), EOS, EOS padding.

    This is what a CLIP BPE tokenizer with a letter vocabulary and no merges produces.
    """
    seqs = [[BOS] + [i for w in p.split() for i in _char_ids(w)] + [EOS] for p in prompts]
    n = max(map(len, seqs))
    ids = torch.full((len(seqs), n), EOS, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _reference_logits(
    model: Any, tokenizer: Any, prompts: list[str], pixels: torch.Tensor
) -> torch.Tensor:
    enc = tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    pixel_values=pixels)
    return out.logits_per_image


# ----------------------------------------------------------------------------- prompts
def test_build_prompts() -> None:
    assert build_prompts(["a", "b"], template="x {} y", aux_prompt=None) == [["x a y"], ["x b y"]]
    p = build_prompts(["cat"], template=("a {}", "the {}"), aux_prompt="other")
    assert p == [["a cat", "the cat"], ["other"]]
    with pytest.raises(ValueError, match=r"label id pairs \[\(0, 2\)\]"):
        build_prompts(["a", "b", "a"])
    with pytest.raises(ValueError, match="label ids"):
        build_prompts(["a", ""])
    with pytest.raises(ValueError, match="template"):
        build_prompts(["a"], template="no placeholder")
    with pytest.raises(ValueError, match="label ids"):
        build_prompts(["cat", "dog"], template="{}", aux_prompt="dog")
    with pytest.raises(ValueError):
        build_prompts([])


# ----------------------------------------------------------------------------- forward
def test_logits_match_clipmodel(clip_model: Any, tokenizer: Any) -> None:
    clf = CLIPPromptClassifier(clip_model, tokenizer, CLASSES, preprocess=False)
    pixels = torch.randn(5, 3, 32, 32)
    logits = clf(pixels)
    assert logits.shape == (5, len(CLASSES) + 1)
    prompts = [f"a photo of a {c}" for c in CLASSES] + ["a photo of something else"]
    assert [ps[0] for ps in clf.prompts] == prompts
    ref = _reference_logits(clip_model, tokenizer, prompts, pixels)
    torch.testing.assert_close(logits.detach(), ref, rtol=1e-4, atol=1e-4)


def test_aux_prompt_adds_one_column(clip_model: Any, tokenizer: Any) -> None:
    x = torch.rand(4, 3, 32, 32)
    with_aux = CLIPPromptClassifier(clip_model, tokenizer, CLASSES)
    without = CLIPPromptClassifier(clip_model, tokenizer, CLASSES, aux_prompt=None)
    a, b = with_aux(x).detach(), without(x).detach()
    assert a.shape == (4, 4) and b.shape == (4, 3)
    assert with_aux.num_outputs == 4 and without.num_outputs == 3
    torch.testing.assert_close(a[:, :3], b, rtol=1e-4, atol=1e-4)


def test_domain_templates_and_ensembles(clip_model: Any, tokenizer: Any) -> None:
    x = torch.rand(3, 3, 32, 32)
    xray = CLIPPromptClassifier(clip_model, tokenizer, CLASSES, template=DOMAIN_TEMPLATES["xray"],
                                aux_prompt=None)
    assert xray.prompts[1] == ["a chest x-ray showing dog"]
    photo = CLIPPromptClassifier(clip_model, tokenizer, CLASSES, aux_prompt=None)
    assert not torch.allclose(xray(x), photo(x))
    # a template ensemble uses the normalised mean of the single-template class embeddings
    ens = CLIPPromptClassifier(clip_model, tokenizer, CLASSES, template=("a photo of a {}",
                               "a chest x-ray showing {}"), aux_prompt=None)
    expected = F.normalize(photo.text_weight + xray.text_weight, dim=-1)
    torch.testing.assert_close(ens.text_weight.detach(), expected.detach(), rtol=1e-5, atol=1e-5)


def test_plain_callable_tokenizer(clip_model: Any, tokenizer: Any) -> None:
    clf = CLIPPromptClassifier(clip_model, _char_tokenize, CLASSES, template="an image of {}",
                               aux_prompt="something", preprocess=False)
    pixels = torch.randn(2, 3, 32, 32)
    logits = clf(pixels).detach()
    assert logits.shape == (2, 4)
    prompts = [f"an image of {c}" for c in CLASSES] + ["something"]
    ref = _reference_logits(clip_model, tokenizer, prompts, pixels)
    torch.testing.assert_close(logits, ref, rtol=1e-4, atol=1e-4)

    def no_eos(prompts: list[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": _char_tokenize(prompts)["input_ids"][:, :2]}

    with pytest.raises(ValueError, match="no EOS token"):
        CLIPPromptClassifier(clip_model, no_eos, CLASSES)


def test_preprocessing(clip_model: Any, tokenizer: Any) -> None:
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)
    clf = CLIPPromptClassifier(clip_model, tokenizer, CLASSES, image_mean=mean, image_std=std)
    raw = CLIPPromptClassifier(clip_model, tokenizer, CLASSES, preprocess=False)
    m = torch.tensor(mean).reshape(1, 3, 1, 1)
    s = torch.tensor(std).reshape(1, 3, 1, 1)
    gray = torch.rand(2, 1, 28, 28)
    up = F.interpolate(gray.repeat(1, 3, 1, 1), size=(32, 32), mode="bicubic", antialias=True)
    torch.testing.assert_close(clf(gray), raw((up - m) / s))
    # non-square: short side to 32 (48x64 -> 32x43), then the centre 32x32 crop
    rect = torch.rand(2, 3, 48, 64)
    big = F.interpolate(rect, size=(32, 43), mode="bicubic", antialias=True)
    torch.testing.assert_close(clf(rect), raw((big[..., :, 5:37] - m) / s))
    with pytest.raises(ValueError, match="1 or 3"):
        clf(torch.rand(2, 2, 32, 32))


# ----------------------------------------------------------------------------- training modes
def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def test_image_mode_gradients(clip_model: Any, tokenizer: Any) -> None:
    clf = CLIPPromptClassifier(clip_model, tokenizer, CLASSES)
    params = clf.parameters_to_train("image")
    expected = (list(clip_model.vision_model.parameters())
                + list(clip_model.visual_projection.parameters()) + [clf.logit_scale])
    assert {id(p) for p in params} == {id(p) for p in expected}
    F.cross_entropy(clf(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    assert all(g is not None and g.abs().sum() > 0 for g in _grads(clip_model.vision_model))
    assert clip_model.visual_projection.weight.grad.abs().sum() > 0
    assert all(g is None for g in _grads(clip_model.text_model))
    assert clf.text_weight.grad is None
    assert clf.logit_scale.grad is not None


def test_full_and_linear_mode_gradients(clip_model: Any, tokenizer: Any) -> None:
    clf = CLIPPromptClassifier(clip_model, tokenizer, CLASSES, mode="full", learnable_scale=False)
    expected = [p for n, p in clip_model.named_parameters() if n != "logit_scale"]
    assert {id(p) for p in clf.parameters_to_train()} == {id(p) for p in expected}
    assert not isinstance(clf.logit_scale, torch.nn.Parameter)
    F.cross_entropy(clf(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    assert clip_model.text_model.embeddings.token_embedding.weight.grad.abs().sum() > 0
    assert clip_model.vision_model.embeddings.patch_embedding.weight.grad.abs().sum() > 0

    clip_model.zero_grad(set_to_none=True)
    params = clf.parameters_to_train("linear")
    assert [id(p) for p in params] == [id(clf.text_weight)]
    F.cross_entropy(clf(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    assert clf.text_weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip_model.parameters())
    with pytest.raises(ValueError, match="mode"):
        clf.set_mode("text")  # type: ignore[arg-type]


def test_leaving_full_mode_refreshes_text_embeddings(clip_model: Any, tokenizer: Any) -> None:
    torch.manual_seed(0)
    clf = CLIPPromptClassifier(clip_model, tokenizer, CLASSES, mode="full")
    before = clf.text_weight.detach().clone()
    opt = torch.optim.SGD(clf.parameters_to_train(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(clf(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
    trained = clf.encode_text().detach()
    assert not torch.allclose(trained, before, atol=1e-3)
    clf.set_mode("image")
    torch.testing.assert_close(clf.text_weight.detach(), trained, rtol=1e-5, atol=1e-5)


def test_image_mode_sgd_reduces_loss(clip_model: Any, tokenizer: Any) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.arange(16) % 2
    x = 0.2 * torch.rand(16, 3, 32, 32, generator=g)
    x[y == 1] += 0.7  # class 1 bright, class 0 dark
    clf = CLIPPromptClassifier(clip_model, tokenizer, ["dark", "bright"], aux_prompt=None)
    opt = torch.optim.Adam(clf.parameters_to_train("image"), lr=1e-3)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(clf(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert (clf(x).argmax(1) == y).all()


# ----------------------------------------------------------------------------- loading, registry
def test_load_clip_roundtrip(clip_model: Any, tokenizer: Any, tmp_path: Path) -> None:
    clip_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, tok = load_clip(tmp_path)
    x = torch.rand(2, 3, 32, 32)
    a = CLIPPromptClassifier(clip_model, tokenizer, CLASSES)(x)
    b = CLIPPromptClassifier(model, tok, CLASSES)(x)
    torch.testing.assert_close(a, b)
    with pytest.raises(FileNotFoundError):
        load_clip(tmp_path / "missing")


def test_build_model_clip(clip_model: Any, tokenizer: Any) -> None:
    x = torch.rand(2, 1, 28, 28)
    m = build_model("clip", num_classes=4, in_channels=1, image_size=28, class_names=CLASSES,
                    model=clip_model, tokenizer=tokenizer)
    assert m(x).shape == (2, 4) and m.prompts[-1] == ["a photo of something else"]
    m = build_model("clip", num_classes=3, in_channels=1, class_names=CLASSES, model=clip_model,
                    tokenizer=tokenizer, template=DOMAIN_TEMPLATES["sketch"])
    assert m(x).shape == (2, 3) and m.prompts[0] == ["a sketch of a cat"]
    with pytest.raises(ValueError, match="num_classes"):
        build_model("clip", num_classes=6, class_names=CLASSES, model=clip_model,
                    tokenizer=tokenizer)
    with pytest.raises(ValueError, match="aux_prompt"):
        build_model("clip", num_classes=3, class_names=CLASSES, model=clip_model,
                    tokenizer=tokenizer, aux_prompt="other")
    with pytest.raises(ValueError, match="model_name_or_path"):
        build_model("clip", num_classes=3, class_names=CLASSES)

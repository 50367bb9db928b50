"""CLIP with text prompts as the classifier: the setting of the SEI paper.

Each class ``k`` gets one prompt per template (``template.format(class_name)``); the class's text
embedding is the normalised mean of its prompts' normalised embeddings. An optional auxiliary
prompt (default ``"a photo of something else"``) adds one more column, class ``K``. Logits are

    logits = scale * normalize(image_embedding) @ normalize(text_embeddings).T

with ``scale = exp(logit_scale)`` clipped at 100, as in CLIP. Fine-tuning modes
(:meth:`CLIPPromptClassifier.parameters_to_train`):

* ``"full"``: image and text towers train; text embeddings are recomputed every forward.
* ``"image"``: the image tower (and its projection) trains; text embeddings are fixed.
* ``"linear"``: both towers frozen; the class text embeddings, initialised from the prompts
  (a zero-shot initialised linear probe), train.

The logit scale trains in every mode when ``learnable_scale`` is True.

The model is a Hugging Face ``transformers`` ``CLIPModel`` (optional dependency:
``pip install 'labeltrace[clip]'``), loaded with :func:`load_clip`. Only the attributes
``vision_model``, ``visual_projection``, ``text_model``, ``text_projection`` and
``logit_scale`` are used, so this module itself imports ``transformers`` only when loading.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from labeltrace.models.clip_text import (
    DOMAIN_TEMPLATES,
    build_prompts,
    load_clip,
    resolve_tokenizer,
)

__all__ = [
    "DOMAIN_TEMPLATES",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "CLIPPromptClassifier",
    "build_prompts",
    "load_clip",
]

OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

Mode = Literal["full", "image", "linear"]
_MODES: tuple[str, ...] = ("full", "image", "linear")
_MAX_SCALE_LOG = math.log(100.0)


def _pooled(out: Any) -> torch.Tensor:
    """The pooled output of a transformers tower (a ModelOutput, a tuple or a tensor)."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None and isinstance(out, (tuple, list)) and len(out) > 1:
        pooled = out[1]
    if not isinstance(pooled, torch.Tensor):
        raise TypeError(f"cannot find the pooled output in {type(out).__name__}")
    return pooled


class CLIPPromptClassifier(nn.Module):
    """Zero-shot-initialised CLIP classifier whose class weights are prompt embeddings.

    Parameters
    ----------
    model : transformers.CLIPModel
        Any module with ``vision_model``, ``visual_projection``, ``text_model``,
        ``text_projection`` and ``logit_scale`` (log of the temperature), as ``CLIPModel`` has.
        It is used (and trained) in place, not copied.
    tokenizer_or_processor : tokenizer, processor or callable
        A transformers tokenizer, a ``CLIPProcessor`` (its tokenizer is used, and its image
        mean/std), or a callable ``list[str] -> {"input_ids": (P, L) ints,
        "attention_mask": (P, L), optional}`` whose sequences end with the model's EOS token.
    class_names : sequence of str
        Class names in label order (K of them).
    template : str or sequence of str, default "a photo of a {}"
        Prompt template(s), e.g. ``DOMAIN_TEMPLATES["xray"]``; several are averaged per class.
    aux_prompt : str or None, default "a photo of something else"
        Prompt of an auxiliary class appended as output ``K``; None for exactly K outputs.
    learnable_scale : bool, default True
        Train the logit scale (initialised from ``model.logit_scale``); False keeps it fixed.
    mode : {"full", "image", "linear"}, default "image"
        Initial fine-tuning mode, see :meth:`parameters_to_train`.
    preprocess : bool, default True
        Inputs are images ``(B, 1 or 3, H, W)`` in [0, 1]; grayscale is repeated to 3 channels;
        like CLIP's own processor, the short side is resized (bicubic, antialiased) to the
        vision tower's ``image_size`` and the centre square cropped; then the image is
        normalised with ``image_mean``/``image_std``. False passes inputs to the vision tower
        unchanged (they must already be CLIP pixel values).
    image_mean, image_std : sequence of 3 floats, optional
        Normalisation statistics; default: the processor's if one is given, else OpenAI CLIP's.

    Attributes
    ----------
    prompts : list of list of str
        Prompts of each output column.
    num_outputs : int
        K, or K + 1 with an auxiliary prompt.
    """

    # buffers registered in __init__ (nn.Module's __getattr__ types them as Tensor | Module)
    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    prompt_owner: torch.Tensor
    image_mean: torch.Tensor
    image_std: torch.Tensor
    clip: Any  # a transformers CLIPModel (untyped)

    def __init__(
        self,
        model: nn.Module,
        tokenizer_or_processor: Any,
        class_names: Sequence[str],
        *,
        template: str | Sequence[str] = "a photo of a {}",
        aux_prompt: str | None = "a photo of something else",
        learnable_scale: bool = True,
        mode: Mode = "image",
        preprocess: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        missing = [
            a for a in ("vision_model", "visual_projection", "text_model", "text_projection",
                        "logit_scale")
            if not hasattr(model, a)
        ]
        if missing:
            raise TypeError(f"model {type(model).__name__} lacks CLIP attributes {missing}")
        self.clip = model
        self.prompts = build_prompts(class_names, template=template, aux_prompt=aux_prompt)
        self.class_names = list(class_names)
        self.has_aux = aux_prompt is not None
        self.num_outputs = len(self.prompts)
        tokenize, proc_mean, proc_std = resolve_tokenizer(tokenizer_or_processor)

        flat = [p for ps in self.prompts for p in ps]
        owner = torch.tensor([k for k, ps in enumerate(self.prompts) for _ in ps], dtype=torch.long)
        enc = tokenize(flat)
        if "input_ids" not in enc:
            raise ValueError("the tokenizer's output has no 'input_ids'")
        ids = torch.as_tensor(enc["input_ids"], dtype=torch.long)
        if ids.ndim != 2 or ids.shape[0] != len(flat):
            raise ValueError(
                f"the tokenizer must return input_ids of shape ({len(flat)}, L), "
                f"got {tuple(ids.shape)}"
            )
        max_len = _config_get(model, "text_config", "max_position_embeddings")
        if max_len is not None and ids.shape[1] > max_len:
            raise ValueError(
                f"tokenized prompts have length {ids.shape[1]} > the text tower's maximum {max_len}"
            )
        eos = _config_get(model, "text_config", "eos_token_id")
        if eos is not None and eos != 2:  # eos_token_id == 2: legacy configs pool at argmax id
            no_eos = (~(ids == eos).any(dim=1)).nonzero().flatten().tolist()
            if no_eos:
                raise ValueError(
                    f"tokenized prompts {[flat[i] for i in no_eos[:5]]} contain no EOS token "
                    f"(id {eos}); the text tower pools at the EOS position"
                )
        mask = enc.get("attention_mask")
        dev = next(iter(model.parameters())).device
        self.register_buffer("input_ids", ids.to(dev), persistent=False)
        self.register_buffer(
            "attention_mask",
            None if mask is None else torch.as_tensor(mask, dtype=torch.long).to(dev),
            persistent=False,
        )
        self.register_buffer("prompt_owner", owner.to(dev), persistent=False)

        self.preprocess = bool(preprocess)
        self.image_size = _config_get(model, "vision_config", "image_size")
        mean = image_mean if image_mean is not None else (proc_mean or OPENAI_CLIP_MEAN)
        std = image_std if image_std is not None else (proc_std or OPENAI_CLIP_STD)
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if mean_t.shape[1] != 3 or std_t.shape[1] != 3 or bool((std_t <= 0).any()):
            raise ValueError("image_mean and image_std must have 3 values each and std > 0")
        self.register_buffer("image_mean", mean_t.to(dev), persistent=False)
        self.register_buffer("image_std", std_t.to(dev), persistent=False)

        init_scale = torch.as_tensor(model.logit_scale).detach().clone().float().reshape(()).to(dev)
        self.learnable_scale = bool(learnable_scale)
        if self.learnable_scale:
            self.logit_scale = nn.Parameter(init_scale)
        else:
            self.register_buffer("logit_scale", init_scale)

        self.mode: Mode = "image"
        self.text_weight = nn.Parameter(self._encode_text_frozen(), requires_grad=False)
        self.set_mode(mode)

    # ------------------------------------------------------------------ modes
    def set_mode(self, mode: Mode) -> None:
        """Set which parameters train (``requires_grad``); see :meth:`parameters_to_train`.

        Leaving ``"full"`` mode first refreshes the cached text embeddings from the (trained)
        text tower, so the fixed class weights match it.
        """
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if self.mode == "full" and mode != "full":
            self.refresh_text_embeddings()
        self.mode = mode
        for p in self.clip.parameters():
            p.requires_grad_(False)
        if mode in ("full", "image"):
            for m in (self.clip.vision_model, self.clip.visual_projection):
                for p in m.parameters():
                    p.requires_grad_(True)
        if mode == "full":
            for m in (self.clip.text_model, self.clip.text_projection):
                for p in m.parameters():
                    p.requires_grad_(True)
        self.text_weight.requires_grad_(mode == "linear")
        if isinstance(self.logit_scale, nn.Parameter):
            self.logit_scale.requires_grad_(self.learnable_scale)
        self.train(self.training)

    def parameters_to_train(self, mode: Mode | None = None) -> list[nn.Parameter]:
        """Switch to ``mode`` (if given) and return the parameters that then require grad.

        Parameters
        ----------
        mode : {"full", "image", "linear"} or None
            ``"full"``: image tower + projection, text tower + projection, logit scale.
            ``"image"``: image tower + projection, logit scale; text embeddings fixed.
            ``"linear"``: class text embeddings (initialised from the prompts), logit scale.
            None keeps the current mode. The logit scale is included only when learnable.

        Returns
        -------
        list of torch.nn.Parameter
            Pass these to the optimiser. Side effect: ``requires_grad`` of every parameter is
            set for the mode (frozen parameters get False).
        """
        if mode is not None:
            self.set_mode(mode)
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> CLIPPromptClassifier:
        """Set training mode; frozen towers stay in eval mode."""
        super().train(mode)
        if self.mode == "linear":
            self.clip.eval()
        elif self.mode == "image":
            self.clip.text_model.eval()
        return self

    # ------------------------------------------------------------------ encoders
    def encode_text(self) -> torch.Tensor:
        """Class text embeddings ``(num_outputs, D)`` from the text tower (unit norm, with grad)."""
        out = self.clip.text_model(input_ids=self.input_ids, attention_mask=self.attention_mask)
        emb = F.normalize(self.clip.text_projection(_pooled(out)), dim=-1)
        summed = emb.new_zeros(self.num_outputs, emb.shape[1]).index_add(0, self.prompt_owner, emb)
        return F.normalize(summed, dim=-1)

    def _encode_text_frozen(self) -> torch.Tensor:
        was_training = self.clip.text_model.training
        self.clip.text_model.eval()
        try:
            with torch.no_grad():
                return self.encode_text().detach().clone()
        finally:
            self.clip.text_model.train(was_training)

    def refresh_text_embeddings(self) -> None:
        """Recompute the cached class weights from the text tower (discards trained weights)."""
        with torch.no_grad():
            self.text_weight.copy_(self._encode_text_frozen())

    def class_embeddings(self) -> torch.Tensor:
        """The unit-norm class embeddings the current mode uses, ``(num_outputs, D)``."""
        if self.mode == "full":
            return self.encode_text()
        return F.normalize(self.text_weight, dim=-1)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not self.preprocess:
            return x
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (B, 1 or 3, H, W), got {tuple(x.shape)}")
        x = x.to(self.image_mean.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = self.image_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            h, w = x.shape[-2:]
            new_h, new_w = (size, max(size, round(w * size / h))) if h <= w else (
                max(size, round(h * size / w)), size)
            x = F.interpolate(
                x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True
            )
            top, left = (new_h - size) // 2, (new_w - size) // 2
            x = x[..., top : top + size, left : left + size]
        return (x - self.image_mean) / self.image_std

    def _image_embedding(self, x: torch.Tensor) -> torch.Tensor:
        pixels = self._prepare(x).to(self.clip.visual_projection.weight.dtype)
        out = self.clip.vision_model(pixel_values=pixels)
        return F.normalize(self.clip.visual_projection(_pooled(out)), dim=-1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings ``(B, D)`` (no autograd in ``"linear"`` mode)."""
        if self.mode == "linear":
            with torch.no_grad():
                return self._image_embedding(x)
        return self._image_embedding(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_outputs)``: scaled cosine similarity of images and class prompts."""
        img = self.features(x)
        txt = self.class_embeddings().to(img.dtype)
        scale = self.logit_scale.clamp(max=_MAX_SCALE_LOG).exp()
        return scale * img @ txt.t()


def _config_get(model: nn.Module, sub: str, key: str) -> Any:
    cfg = getattr(model, "config", None)
    sub_cfg = getattr(cfg, sub, None)
    return getattr(sub_cfg, key, None)

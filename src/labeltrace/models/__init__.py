"""The networks a scan trains, and a small registry to build them by name.

* ``"small-cnn"``: :class:`SmallResNet`, trained from scratch on images;
* ``"linear"`` / ``"mlp"``: :class:`LinearHead` / :class:`MLPHead` on cached frozen features;
* ``"effnet-lite0"``: EfficientNet-Lite0 + head on images (:class:`FrozenBackboneClassifier`);
* ``"clip"``: CLIP with a prompt classifier on images
  (:class:`labeltrace.models.clip.CLIPPromptClassifier`).

``num_classes`` is the number of outputs and already includes the auxiliary "other" class when
the caller wants one: for every model except CLIP that class is just one more output unit; for
CLIP it is the auxiliary prompt (see :func:`build_model`).

Images are float tensors ``(B, C, H, W)`` in [0, 1]; features are ``(B, in_dim)``. Every model
has ``features(x)``, the embedding used for kNN-style scores. ``effnet-lite0`` needs the
``effnet`` extra and ``clip`` needs ``transformers``; both are imported only when built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from labeltrace.models.heads import (
    FrozenBackboneClassifier,
    ImageFeatureExtractor,
    LinearHead,
    MLPHead,
)
from labeltrace.models.small_cnn import SmallResNet

__all__ = [
    "FrozenBackboneClassifier",
    "ImageFeatureExtractor",
    "LinearHead",
    "MLPHead",
    "SmallResNet",
    "available_models",
    "build_model",
    "register_model",
]

ModelBuilder = Callable[..., nn.Module]
_REGISTRY: dict[str, ModelBuilder] = {}


def _norm_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_model(name: str, builder: ModelBuilder, *, overwrite: bool = False) -> None:
    """Register ``builder(*, num_classes, in_channels, image_size, **kw) -> nn.Module`` as ``name``.

    Raises
    ------
    ValueError
        If ``name`` is already registered and ``overwrite`` is False.
    """
    key = _norm_name(name)
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[key] = builder


def available_models() -> tuple[str, ...]:
    """Names accepted by :func:`build_model`, in registration order."""
    return tuple(_REGISTRY)


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    **kw: Any,
) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        One of :func:`available_models` (case-insensitive, ``_`` or ``-``).
    num_classes : int
        Number of outputs (>= 2), the auxiliary class included when wanted.
    in_channels : int, optional
        Image channels; required by ``"small-cnn"``; must be 1 or 3 for ``"effnet-lite0"`` and
        ``"clip"`` (grayscale is repeated to RGB); unused by the feature heads.
    image_size : int or (int, int), optional
        Image side(s), validated when given; the models adapt to any size (SmallResNet picks
        its strides from the input, EfficientNet and CLIP resize inputs).
    **kw
        Model options:

        * ``small-cnn``: ``width``, ``depth``.
        * ``linear``: ``in_dim`` (required).
        * ``mlp``: ``in_dim`` (required), ``hidden``, ``dropout``.
        * ``effnet-lite0``: ``head`` ("linear" | "mlp"), ``hidden``, ``dropout``,
          ``finetune`` (default False: frozen backbone), ``pretrained`` (default True),
          ``resolution`` (default 96, as the feature cache), ``backbone`` (an already loaded
          EfficientNet to use instead of loading one).
        * ``clip``: ``class_names`` (required); either ``model_name_or_path`` (loaded with
          :func:`labeltrace.models.clip.load_clip`, ``local_files_only`` default True) or
          ``model`` and ``tokenizer``; ``template``, ``aux_prompt``, ``learnable_scale``,
          ``mode``, ``preprocess``. ``num_classes`` must be ``len(class_names)`` (no auxiliary
          prompt) or ``len(class_names) + 1`` (auxiliary prompt, default
          ``"a photo of something else"``).

    Returns
    -------
    torch.nn.Module
        A module whose ``forward`` returns ``(B, num_classes)`` logits and which has
        ``features(x)``.

    Raises
    ------
    ValueError
        Unknown name (listing the available ones), bad sizes, missing or unknown options.
    """
    key = _norm_name(name) if isinstance(name, str) else None
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if in_channels is not None and (
        isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1
    ):
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if image_size is not None:
        sides = (image_size,) if isinstance(image_size, int) else tuple(image_size)
        if len(sides) not in (1, 2) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sides
        ):
            raise ValueError(f"image_size must be a positive int or (H, W), got {image_size!r}")
    return _REGISTRY[key](
        num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kw
    )


def _options(model: str, kw: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for model {model!r}; allowed: {list(allowed)}"
        )
    return dict(kw)


def _require(model: str, opts: dict[str, Any], key: str) -> Any:
    if opts.get(key) is None:
        raise ValueError(f"model {model!r} needs the option {key!r}")
    return opts.pop(key)


def _rgb_or_gray(model: str, in_channels: int | None) -> None:
    if in_channels is not None and in_channels not in (1, 3):
        raise ValueError(
            f"model {model!r} takes 1- or 3-channel images, got in_channels={in_channels}"
        )


def _build_small_cnn(
    *, num_classes: int, in_channels: int | None, image_size: Any, **kw: Any
) -> nn.Module:
    opts = _options("small-cnn", kw, ("width", "depth"))
    if in_channels is None:
        raise ValueError("model 'small-cnn' needs in_channels")
    return SmallResNet(in_channels, num_classes, **opts)


def _build_linear(
    *, num_classes: int, in_channels: int | None, image_size: Any, **kw: Any
) -> nn.Module:
    opts = _options("linear", kw, ("in_dim",))
    return LinearHead(_require("linear", opts, "in_dim"), num_classes)


def _build_mlp(
    *, num_classes: int, in_channels: int | None, image_size: Any, **kw: Any
) -> nn.Module:
    opts = _options("mlp", kw, ("in_dim", "hidden", "dropout"))
    in_dim = _require("mlp", opts, "in_dim")
    return MLPHead(in_dim, num_classes, **opts)


def _build_effnet(
    *, num_classes: int, in_channels: int | None, image_size: Any, **kw: Any
) -> nn.Module:
    opts = _options(
        "effnet-lite0", kw,
        ("head", "hidden", "dropout", "finetune", "pretrained", "resolution", "backbone"),
    )
    _rgb_or_gray("effnet-lite0", in_channels)
    from labeltrace.models.backbone import FEATURE_DIM, IMAGENET_MEAN, IMAGENET_STD

    net = opts.get("backbone")
    if net is not None and "pretrained" in opts:
        raise ValueError("model 'effnet-lite0': give 'backbone' or 'pretrained', not both")
    if net is None:
        from labeltrace.models.backbone import load_efficientnet_lite0

        net = load_efficientnet_lite0(pretrained=bool(opts.get("pretrained", True)))
    head_name = opts.get("head", "linear")
    head: nn.Module
    if head_name == "linear":
        if "hidden" in opts or "dropout" in opts:
            raise ValueError("options 'hidden'/'dropout' need head='mlp'")
        head = LinearHead(FEATURE_DIM, num_classes)
    elif head_name == "mlp":
        head = MLPHead(
            FEATURE_DIM, num_classes, hidden=opts.get("hidden", 512),
            dropout=opts.get("dropout", 0.0),
        )
    else:
        raise ValueError(f"head must be 'linear' or 'mlp', got {head_name!r}")
    extractor = ImageFeatureExtractor(
        net, resolution=opts.get("resolution", 96), mean=IMAGENET_MEAN, std=IMAGENET_STD
    )
    return FrozenBackboneClassifier(extractor, head, finetune=bool(opts.get("finetune", False)))


def _build_clip(
    *, num_classes: int, in_channels: int | None, image_size: Any, **kw: Any
) -> nn.Module:
    opts = _options(
        "clip", kw,
        ("class_names", "model_name_or_path", "local_files_only", "model", "tokenizer",
         "template", "aux_prompt", "learnable_scale", "mode", "preprocess"),
    )
    _rgb_or_gray("clip", in_channels)
    from labeltrace.models.clip import CLIPPromptClassifier, load_clip

    class_names = list(_require("clip", opts, "class_names"))
    n = len(class_names)
    if num_classes not in (n, n + 1):
        raise ValueError(
            f"model 'clip': num_classes={num_classes} must be len(class_names)={n} or {n + 1} "
            "(with the auxiliary prompt)"
        )
    want_aux = num_classes == n + 1
    aux = opts.pop("aux_prompt", "a photo of something else" if want_aux else None)
    if (aux is not None) != want_aux:
        raise ValueError(
            f"model 'clip': aux_prompt={aux!r} disagrees with num_classes={num_classes} for "
            f"{n} class names"
        )
    source = opts.pop("model_name_or_path", None)
    local_only = opts.pop("local_files_only", True)
    model, tokenizer = opts.pop("model", None), opts.pop("tokenizer", None)
    if source is not None:
        if model is not None or tokenizer is not None:
            raise ValueError("model 'clip': give model_name_or_path or model+tokenizer, not both")
        model, tokenizer = load_clip(source, local_files_only=local_only)
    elif model is None or tokenizer is None:
        raise ValueError("model 'clip' needs model_name_or_path, or both model and tokenizer")
    return CLIPPromptClassifier(model, tokenizer, class_names, aux_prompt=aux, **opts)


register_model("small-cnn", _build_small_cnn)
register_model("linear", _build_linear)
register_model("mlp", _build_mlp)
register_model("effnet-lite0", _build_effnet)
register_model("clip", _build_clip)

"""CLIP's text side for :mod:`labeltrace.models.clip`: the prompts of each class, the tokenizer
behind a processor, and :func:`load_clip` (a Hugging Face ``CLIPModel`` and its processor or
tokenizer; ``transformers`` is imported only when loading)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

__all__ = ["DOMAIN_TEMPLATES", "Tokenize", "build_prompts", "load_clip", "resolve_tokenizer"]

#: Prompt templates per image domain; pass one as ``template=``.
DOMAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "photo": ("a photo of a {}",),
    "digits": ("a photo of the handwritten digit {}",),
    "medical": ("a medical image showing {}",),
    "xray": ("a chest x-ray showing {}",),
    "histology": ("a histopathology image of {}",),
    "dermatology": ("a dermoscopy image of {}",),
    "satellite": ("a satellite image of {}",),
    "sketch": ("a sketch of a {}",),
}

Tokenize = Callable[[list[str]], Mapping[str, Any]]


def build_prompts(
    class_names: Sequence[str],
    *,
    template: str | Sequence[str] = "a photo of a {}",
    aux_prompt: str | None = "a photo of something else",
) -> list[list[str]]:
    """Prompts per output column: ``template.format(name)`` for each class, then the aux prompt.

    Parameters
    ----------
    class_names : sequence of str
        Class names, in label order; non-empty, unique.
    template : str or sequence of str, default "a photo of a {}"
        One template or several (their embeddings are averaged per class); each must contain
        ``{}`` exactly once.
    aux_prompt : str or None, default "a photo of something else"
        Prompt of the auxiliary class (column ``K``), used verbatim; None for no auxiliary class.

    Returns
    -------
    list of list of str
        ``K`` (or ``K + 1``) lists of prompts.

    Raises
    ------
    ValueError
        On empty, non-string or duplicate class names (naming their label ids), bad templates,
        or an aux prompt that equals a class prompt.
    """
    names = list(class_names) if not isinstance(class_names, str) else None
    if not names:
        raise ValueError("class_names must be a non-empty sequence of strings")
    bad = [i for i, n in enumerate(names) if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"class_names must be non-empty strings; bad entries at label ids {bad}")
    seen: dict[str, int] = {}
    dups: list[tuple[int, int]] = []
    for i, n in enumerate(names):
        if n in seen:
            dups.append((seen[n], i))
        else:
            seen[n] = i
    if dups:
        raise ValueError(f"class_names must be unique; duplicated at label id pairs {dups}")
    templates = [template] if isinstance(template, str) else list(template)
    if not templates:
        raise ValueError("template must be a string or a non-empty sequence of strings")
    for t in templates:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ValueError(f"each template must be a string containing '{{}}' once, got {t!r}")
    prompts = [[t.format(n) for t in templates] for n in names]
    if aux_prompt is not None:
        if not isinstance(aux_prompt, str) or not aux_prompt.strip():
            raise ValueError(f"aux_prompt must be a non-empty string or None, got {aux_prompt!r}")
        clash = [i for i, ps in enumerate(prompts) if aux_prompt in ps]
        if clash:
            raise ValueError(f"aux_prompt {aux_prompt!r} equals a prompt of label ids {clash}")
        prompts.append([aux_prompt])
    return prompts


def _is_hf_tokenizer(obj: object) -> bool:
    try:
        from transformers import PreTrainedTokenizerBase
    except ImportError:
        return False
    return isinstance(obj, PreTrainedTokenizerBase)


def resolve_tokenizer(
    tokenizer_or_processor: Any,
) -> tuple[Tokenize, Sequence[float] | None, Sequence[float] | None]:
    """A ``list[str] -> {"input_ids", ["attention_mask"]}`` function; image mean/std if known."""
    obj = tokenizer_or_processor
    mean = std = None
    image_processor = getattr(obj, "image_processor", None)
    if image_processor is not None:
        mean = getattr(image_processor, "image_mean", None)
        std = getattr(image_processor, "image_std", None)
    inner = getattr(obj, "tokenizer", None)
    if inner is not None:
        obj = inner
    if _is_hf_tokenizer(obj):
        tok = obj

        def tokenize(prompts: list[str]) -> Mapping[str, Any]:
            return tok(prompts, padding=True, truncation=True, return_tensors="pt")

        return tokenize, mean, std
    if callable(obj):
        return obj, mean, std
    raise TypeError(
        "tokenizer_or_processor must be a transformers tokenizer/processor or a callable "
        f"list[str] -> {{'input_ids': ..., 'attention_mask': ...}}, got {type(obj).__name__}"
    )


def _local_source(name_or_path: str | os.PathLike[str]) -> str:
    """``name_or_path`` as ``from_pretrained`` reads it: a path-like source (a path object, an absolute,
    ``./`` or ``~`` path, more than one ``/``, or an existing path) must be a directory
    (:class:`FileNotFoundError` saying it does not exist, not that it is an invalid hub name); a hub
    name (``name`` or ``namespace/name``) as given."""
    src = os.fspath(name_or_path)
    local = os.path.expanduser(src)
    path_like = (isinstance(name_or_path, os.PathLike) or src.startswith(("/", ".", "~")) or src.count("/") > 1
                 or (os.sep != "/" and os.sep in src) or os.path.exists(local))  # fmt: skip
    if not path_like:
        return src
    if not os.path.isdir(local):
        what = "is not a directory" if os.path.exists(local) else "does not exist"
        raise FileNotFoundError(f"CLIP model directory {src!r} {what} ({os.path.abspath(local)}); pass a "
                                "directory saved with save_pretrained, or a Hugging Face hub name")  # fmt: skip
    return local


def _in_hf_cache(name: str) -> bool:
    """Whether the local Hugging Face cache holds hub model ``name``'s config (False when it cannot tell)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid name or no huggingface_hub: not cached
        return False


def load_clip(
    name_or_path: str | os.PathLike[str], *, local_files_only: bool = True
) -> tuple[nn.Module, Any]:
    """Load a Hugging Face CLIP model and its processor (or tokenizer).

    Parameters
    ----------
    name_or_path : str or path
        A local directory saved with ``save_pretrained`` (``config.json`` + weights + tokenizer
        files), or a hub name such as ``"openai/clip-vit-base-patch32"``.
    local_files_only : bool, default True
        Never touch the network: a hub name resolves only when it is already in the local
        Hugging Face cache. Set False to allow downloading (needs network access).

    Returns
    -------
    (model, processor)
        The ``CLIPModel`` in eval mode, and a ``CLIPProcessor`` when the checkpoint has an image
        processor config, otherwise its tokenizer. Both can be passed to
        :class:`CLIPPromptClassifier`.

    Raises
    ------
    ImportError
        If ``transformers`` is not installed.
    FileNotFoundError
        If the weights or tokenizer cannot be found (locally, with ``local_files_only``).
    """
    try:
        from transformers import AutoProcessor, AutoTokenizer, CLIPModel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("CLIP support needs the optional package 'transformers': "
                          "pip install 'labeltrace[clip]'") from exc
    src = _local_source(name_or_path)
    try:
        model = CLIPModel.from_pretrained(src, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        if local_files_only and not os.path.isdir(src) and not _in_hf_cache(src):
            raise FileNotFoundError(
                f"CLIP model {src!r} is neither a local directory nor in the local Hugging Face cache "
                "(HF_HOME, by default ~/.cache/huggingface); no download was attempted (local_files_only=True): "
                f"download it once (huggingface-cli download {src}, or load_clip(..., local_files_only=False)), "
                "or pass a directory saved with save_pretrained"
            ) from exc
        raise FileNotFoundError(
            f"cannot load CLIP weights from {src!r} (local_files_only={local_files_only}): {exc}"
        ) from exc
    model.eval()
    processor: Any = None
    try:
        processor = AutoProcessor.from_pretrained(src, local_files_only=local_files_only)
    except (OSError, ValueError, TypeError):
        processor = None
    if processor is None or not (
        _is_hf_tokenizer(processor) or _is_hf_tokenizer(getattr(processor, "tokenizer", None))
    ):
        try:
            processor = AutoTokenizer.from_pretrained(src, local_files_only=local_files_only)
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(
                f"cannot load a CLIP tokenizer from {src!r} (local_files_only={local_files_only}): "
                f"{exc}"
            ) from exc
    tok = processor if _is_hf_tokenizer(processor) else getattr(processor, "tokenizer", None)
    if tok is not None and len(tok) <= len(set(getattr(tok, "all_special_tokens", []))):
        # transformers 5 loads an empty tokenizer where the files are missing: every prompt then
        # failed as "contains no EOS token"
        raise FileNotFoundError(
            f"the CLIP tokenizer loaded from {src!r} holds no vocabulary, only its {len(tok)} special tokens: "
            "its tokenizer files are missing (tokenizer.json, or vocab.json and merges.txt); save the "
            "processor or tokenizer beside the weights (processor.save_pretrained(folder))")
    return model, processor

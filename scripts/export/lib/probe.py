"""Facts about this machine for the TensorRT-LLM build, as JSON (docs/internals.md, "Facts").

Usage:
  probe.py [--output-dir DIR] [--torch] [--import-trtllm]

GPUs and driver come from `nvidia-smi` on PATH; package versions from importlib.metadata of the
interpreter running this file ($PYTHON); MPI from `mpirun --version`; disk free at the output
dir; host RAM from /proc/meminfo. A missing tool is a fact (null / "absent"), never a crash.
torch is imported only with --torch, tensorrt_llm only with --import-trtllm (in a child
interpreter: it takes tens of seconds and an ABI mismatch can crash it). CUDA_VISIBLE_DEVICES
(indices or UUIDs) limits the GPUs reported, as it limits what TensorRT-LLM sees.
Library: `collect(output_dir, *, with_torch=False, with_import=False) -> dict`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import versions

SCHEMA_VERSION = 1
DEFAULT_OUTPUT_DIR = "outputs/gpu/tensorrt_llm"
QUERY_FIELDS = [
    "index",
    "name",
    "compute_cap",
    "memory.total",
    "memory.free",
    "driver_version",
    "mig.mode.current",
    "uuid",
]
# Distribution names tried for each package key of the facts (first found wins).
PACKAGES = {
    "tensorrt_llm": ["tensorrt_llm"],
    "tensorrt": ["tensorrt", "tensorrt-cu13", "tensorrt-cu12"],
    "torch": ["torch"],
    "transformers": ["transformers"],
    "nvidia-modelopt": ["nvidia-modelopt"],
}
PROGRAMS = ["trtllm-build", "trtllm-serve", "mpirun", "nvidia-smi"]
TIMEOUT_S = 20
IMPORT_TIMEOUT_S = 300


def _run(argv: list[str], timeout: int = TIMEOUT_S) -> tuple[int | None, str]:
    """(exit status, stdout+stderr); status None when the program is absent or hung."""
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return None, f"{argv[0]} not on PATH"
    except subprocess.TimeoutExpired:
        return None, f"{argv[0]} did not answer within {timeout} s"
    except OSError as exc:
        return None, f"{argv[0]}: {exc.strerror or exc}"
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


def _na(value: str) -> str | None:
    value = value.strip()
    return None if not value or value.startswith("[") or value == "N/A" else value


def _int(value: str) -> int | None:
    v = _na(value)
    try:
        return int(float(v)) if v is not None else None
    except ValueError:
        return None


def _cc_from_name(name: str) -> str | None:
    """Compute capability from the GPU name (drivers before 510 lack the compute_cap field)."""
    known = versions.gpu_key(name)
    return versions.tables()["gpus"][known]["compute_capability"] if known else None


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "no output")


def _visible(devices: list[dict]) -> list[dict]:
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return devices
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    out = []
    if any(w.startswith("MIG-") for w in wanted):
        # MIG instance UUIDs do not name a GPU index here: keep the GPUs that have MIG on.
        return [d for d in devices if str(d.get("mig_mode")).lower() == "enabled"]
    for w in wanted:
        match = [d for d in devices if str(d["index"]) == w or (d.get("uuid") or "").startswith(w)]
        if not match:
            break  # CUDA stops at the first invalid entry
        out += [m for m in match if m not in out]
    return out


def _no_gpu(status: str, detail: str) -> dict:
    return {
        "status": status,
        "detail": detail,
        "driver_version": None,
        "cuda_driver_version": None,
        "devices": [],
    }


def probe_gpu() -> dict:
    fields = list(QUERY_FIELDS)
    argv = ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]
    status, text = _run(argv)
    if status == 2 and "compute_cap" in text:
        fields.remove("compute_cap")  # old driver: look the capability up by name
        argv[1] = f"--query-gpu={','.join(fields)}"
        status, text = _run(argv)
    if status is None:
        return _no_gpu("absent" if "not on PATH" in text else "error", text)
    if status != 0:
        return _no_gpu("absent" if "No devices were found" in text else "error", _first_line(text))
    devices = []
    driver = None
    for row in text.splitlines():
        if not row.strip():
            continue
        cells = dict(zip(fields, (c.strip() for c in row.split(",")), strict=False))
        name = cells.get("name", "")
        cc = _na(cells.get("compute_cap", "")) or _cc_from_name(name)
        driver = _na(cells.get("driver_version", "")) or driver
        devices.append(
            {
                "index": _int(cells.get("index", "")),
                "name": name,
                "compute_capability": cc,
                "memory_total_mib": _int(cells.get("memory.total", "")),
                "memory_free_mib": _int(cells.get("memory.free", "")),
                "mig_mode": _na(cells.get("mig.mode.current", "")) or "N/A",
                "uuid": _na(cells.get("uuid", "")),
            }
        )
    all_count = len(devices)
    devices = _visible(devices)
    facts: dict = {
        "status": "ok" if devices else "absent",
        "detail": f"{len(devices)} GPU(s)" if devices else "no GPU visible",
        "driver_version": driver,
        "cuda_driver_version": _cuda_driver_version(),
        "devices": devices,
    }
    if all_count != len(devices):
        facts["detail"] += f" of {all_count} (CUDA_VISIBLE_DEVICES)"
    return facts


def _cuda_driver_version() -> str | None:
    """The highest CUDA version the driver supports ("CUDA Version" of nvidia-smi)."""
    for argv in (["nvidia-smi", "--version"], ["nvidia-smi"]):
        status, text = _run(argv)
        m = re.search(r"CUDA Version\s*:\s*([0-9.]+)", text or "")
        if status == 0 and m:
            return m.group(1)
    return None


def probe_packages() -> dict:
    out: dict = {}
    for key, names in PACKAGES.items():
        out[key] = None
        for name in names:
            try:
                out[key] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def probe_torch() -> dict:
    try:
        import torch
    except Exception as exc:  # an ABI mismatch raises ImportError/OSError with the reason
        return {"status": "error" if not isinstance(exc, ModuleNotFoundError) else "absent",
                "detail": _first_line(str(exc)), "cuda": None, "available": False}  # fmt: skip
    available = bool(torch.cuda.is_available())
    return {
        "status": "ok",
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "available": available,
        "device_count": torch.cuda.device_count() if available else 0,
    }


def probe_trtllm_import() -> dict:
    """Import tensorrt_llm in a child interpreter (it loads CUDA, TensorRT and torch: slow, and an
    ABI mismatch can crash the process) and report its version or the error's last line."""
    code = "import tensorrt_llm; print('TRTLLM_VERSION', tensorrt_llm.__version__)"
    status, text = _run([sys.executable, "-c", code], timeout=IMPORT_TIMEOUT_S)
    if status is None:
        return {"status": "error", "version": None, "detail": text}
    m = re.search(r"^TRTLLM_VERSION (\S+)", text, re.M)
    if status == 0 and m:
        return {"status": "ok", "version": m.group(1)}
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit status {status}"
    kind = "absent" if "No module named 'tensorrt_llm'" in last else "error"
    return {"status": kind, "version": None, "detail": last}


def probe_cuda_runtime() -> tuple[str | None, str | None]:
    """(major.minor, source): $CUDA_VERSION (NVIDIA containers set it), else nvcc on PATH."""
    env = os.environ.get("CUDA_VERSION")
    m = re.match(r"^(\d+\.\d+)", env or "")
    if m:
        return m.group(1), "CUDA_VERSION"
    status, text = _run(["nvcc", "--version"])
    m = re.search(r"release (\d+\.\d+)", text or "")
    if status == 0 and m:
        return m.group(1), "nvcc"
    return None, None


def probe_mpi() -> dict:
    status, text = _run(["mpirun", "--version"])
    if status is None:
        return {"status": "absent", "version": None, "detail": text}
    if status != 0:
        return {"status": "error", "version": None, "detail": _first_line(text)}
    m = re.search(r"\(Open MPI\)\s*(\S+)", text)
    if m:
        return {"status": "ok", "version": f"Open MPI {m.group(1)}"}
    m = re.search(r"HYDRA.*?Version:\s*(\S+)", text, re.S)
    if m:
        return {"status": "ok", "version": f"MPICH {m.group(1)}"}
    return {"status": "ok", "version": _first_line(text)}


def probe_disk(output_dir: str) -> dict:
    path = Path(output_dir)
    probe_at = path.resolve()
    while not probe_at.exists() and probe_at != probe_at.parent:
        probe_at = probe_at.parent
    try:
        free = shutil.disk_usage(probe_at).free
    except OSError:
        free = None
    return {"path": output_dir, "measured_at": str(probe_at), "free_bytes": free}


def probe_memory() -> dict:
    info: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in {"MemTotal", "MemAvailable"}:
                info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"total_bytes": info.get("MemTotal"), "available_bytes": info.get("MemAvailable")}


def program_version(path: str | None) -> str | None:
    """The tensorrt_llm version a console script (trtllm-build, trtllm-serve) belongs to: the
    package of the interpreter its shebang names. This interpreter's own when it is the same one
    (no subprocess); None when it cannot be told."""
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            first = fh.readline(4096).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    interpreter = words[-1] if words and words[0].endswith("/env") else (words or [""])[0]
    if not interpreter or not Path(interpreter).is_absolute():
        return None
    if os.path.realpath(interpreter) == os.path.realpath(sys.executable):
        return probe_packages()["tensorrt_llm"]
    code = "import importlib.metadata as m; print(m.version('tensorrt_llm'))"
    status, text = _run([interpreter, "-c", code])
    return text.strip() if status == 0 and text.strip() else None


def collect(
    output_dir: str = DEFAULT_OUTPUT_DIR, *, with_torch: bool = False, with_import: bool = False
) -> dict:
    """Every fact; never raises for a missing tool."""
    cuda_runtime, cuda_source = probe_cuda_runtime()
    programs = {name: shutil.which(name) for name in PROGRAMS}
    packages = probe_packages()
    return {
        "schema_version": SCHEMA_VERSION,
        "gpu": probe_gpu(),
        "python": {"executable": sys.executable, "version": platform.python_version()},
        "packages": packages,
        "torch_cuda": probe_torch() if with_torch else {"status": "skipped"},
        "trtllm_import": probe_trtllm_import() if with_import else {"status": "skipped"},
        "cuda_runtime": cuda_runtime,
        "cuda_runtime_source": cuda_source,
        "programs": programs,
        "program_versions": {
            name: program_version(programs[name]) if packages["tensorrt_llm"] else None
            for name in ("trtllm-build", "trtllm-serve")
        },
        "mpi": probe_mpi() if programs["mpirun"] else {"status": "absent", "version": None},
        "disk": probe_disk(output_dir),
        "memory": probe_memory(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="probe.py", description="Facts about this machine as JSON"
    )
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="where artifacts go")
    parser.add_argument("--torch", action="store_true", help="also import torch (slow)")
    parser.add_argument(
        "--import-trtllm", action="store_true", help="also import tensorrt_llm in a child (slow)"
    )
    args = parser.parse_args(argv)
    facts = collect(args.output_dir, with_torch=args.torch, with_import=args.import_trtllm)
    print(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Write fake installed-package metadata (`<name>-<version>.dist-info/METADATA`) into a dir.

Put the dir first on PYTHONPATH and `importlib.metadata.version(name)` in that interpreter
reports the fake version: how tests stand in for TensorRT-LLM, TensorRT, torch and ModelOpt
without installing them. Only metadata is written, never an importable module.

Usage:
  make_dist_info.py DIR NAME==VERSION [NAME==VERSION ...]
  make_dist_info.py DIR --stack 1.2.0 [NAME==VERSION ...]   # TensorRT-LLM 1.2.0 and the
      TensorRT / torch / ModelOpt / transformers it was released with; pairs override the stack

Library:
  make_dist_info(dest, {"tensorrt_llm": "1.2.0", "torch": "2.9.1"}) -> list[Path]
  stack(trtllm_version) -> {"tensorrt_llm": ..., "tensorrt": ..., "torch": ..., ...}
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path

# Versions a release of TensorRT-LLM pins (PyPI Requires-Dist, see data/versions.json); the
# concrete versions below satisfy those pins. None: the package is left out.
STACKS: dict[str, dict[str, str | None]] = {
    "0.12.0": {"tensorrt": "10.3.0", "torch": "2.4.0", "nvidia-modelopt": "0.15.1",
               "transformers": "4.42.4"},
    "0.16.0": {"tensorrt": "10.7.0", "torch": "2.5.1", "nvidia-modelopt": "0.21.0",
               "transformers": "4.45.1"},
    "0.18.2": {"tensorrt": "10.9.0.34", "torch": "2.6.0", "nvidia-modelopt": "0.25.0",
               "transformers": "4.48.3"},
    "0.21.0": {"tensorrt": "10.11.0.33", "torch": "2.7.1", "nvidia-modelopt": "0.31.0",
               "transformers": "4.51.3"},
    "1.0.0": {"tensorrt": "10.11.0.33", "torch": "2.7.1", "nvidia-modelopt": "0.33.0",
              "transformers": "4.53.1"},
    "1.1.0": {"tensorrt": "10.13.3.9", "torch": "2.9.0", "nvidia-modelopt": "0.37.0",
              "transformers": "4.56.0"},
    "1.2.0": {"tensorrt": "10.14.1.48", "torch": "2.9.1", "nvidia-modelopt": "0.37.0",
              "transformers": "4.57.3"},
}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VERSION = re.compile(r"^[0-9][A-Za-z0-9.+!_-]*$")


class DistInfoError(ValueError):
    """Bad name, version or stack; the CLI turns it into exit 2."""


def stack(trtllm_version: str) -> dict[str, str]:
    """TensorRT-LLM `trtllm_version` plus the packages it was released with."""
    if trtllm_version not in STACKS:
        known = ", ".join(STACKS)
        raise DistInfoError(f"no recorded stack for TensorRT-LLM {trtllm_version} (known: {known})")
    out = {"tensorrt_llm": trtllm_version}
    out.update({k: v for k, v in STACKS[trtllm_version].items() if v is not None})
    return out


def make_dist_info(dest: str | Path, packages: Mapping[str, str]) -> list[Path]:
    """One `<name>-<version>.dist-info/METADATA` per package under dest; returns the dirs."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    made = []
    for name, version in packages.items():
        if not _NAME.match(name):
            raise DistInfoError(f"not a distribution name: {name!r}")
        if not _VERSION.match(version):
            raise DistInfoError(f"not a version: {version!r} (for {name})")
        # Wheel convention: '-' in the name becomes '_' in the directory name.
        folder = dest / f"{name.replace('-', '_')}-{version}.dist-info"
        for old in dest.glob(f"{name.replace('-', '_')}-*.dist-info"):
            for f in old.iterdir():
                f.unlink()
            old.rmdir()  # one version per package, like a real environment
        folder.mkdir()
        (folder / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: fake metadata written by tests/fakes/make_dist_info.py\n",
            encoding="utf-8",
        )
        (folder / "INSTALLER").write_text("fake\n", encoding="utf-8")
        made.append(folder)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_dist_info.py", description=__doc__.split("\n")[0])
    parser.add_argument("dest", help="directory to put on PYTHONPATH")
    parser.add_argument("pairs", nargs="*", metavar="NAME==VERSION")
    parser.add_argument("--stack", metavar="TRTLLM_VERSION", help=f"one of {', '.join(STACKS)}")
    args = parser.parse_intermixed_args(argv)
    try:
        packages = stack(args.stack) if args.stack else {}
        for pair in args.pairs:
            name, sep, version = pair.partition("==")
            if not sep:
                raise DistInfoError(f"expected NAME==VERSION, got {pair!r}")
            packages[name] = version
        if not packages:
            raise DistInfoError("nothing to write: give NAME==VERSION pairs or --stack")
        for folder in make_dist_info(args.dest, packages):
            print(folder)
    except DistInfoError as exc:
        print(f"make_dist_info.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

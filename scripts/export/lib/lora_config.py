"""The `lora:` section of the build config: adapters served at run time over one base (issue 16).

Off by default (BuildConfig.lora is None): the build serves the model dir as it is. With it, the
artifact carries the base with LoRA support (trtllm-build's LoRA plugin for engines, `lora_config`
in llm_api_options.yaml for the PyTorch backend) plus every adapter under `lora/<name>/`, and
serve.sh serves them all; a request picks one by name.

  lora:
    adapters:                      # the adapters to package; name = lora/<name>/ and lora_name
      - {name: support-sft, path: outputs/gpu/checkpoints/support/final}
      - {name: support-dpo, path: outputs/gpu/checkpoints/support-dpo/final}
    max_rank: 64                   # largest rank served (sizes the LoRA workspace)
    target_modules: auto           # Hugging Face module names, or auto = the adapters' union
    max_loras: 4                   # adapters resident on the GPU at once
    max_cpu_loras: 16              # adapters cached in host memory

Library (build_config.py embeds the model; every later stage reads the validated section):
  LoraSection, AdapterEntry        pydantic models (strict, unknown keys refused)
  rules(section) -> [(code, key path, message)]   cross-field rules, reported like the others
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from quality_config import URL

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # lora/<name>/ and the request's lora_name
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AdapterEntry(_Model):
    name: str = Field(
        description="a-z, 0-9, '.', '_', '-': the dir lora/<name>/ and the lora_name of requests"
    )
    path: str = Field(min_length=1, description="local PEFT adapter dir (adapter_config.json)")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(
                "adapter names use a-z, 0-9, '.', '_', '-' (at most 64, first a letter or "
                f"digit), got {value!r}"
            )
        return value

    @field_validator("path")
    @classmethod
    def _local_dir(cls, value: str) -> str:
        if URL.match(value):
            raise ValueError(f"must be a local adapter directory, not a URL: {value!r}")
        return value


class LoraSection(_Model):
    adapters: list[AdapterEntry] = Field(min_length=1, description="adapters to package")
    max_rank: int = Field(ge=1, le=1024, description="largest LoRA rank the artifact serves")
    target_modules: Literal["auto"] | list[str] = Field(
        default="auto",
        description="Hugging Face module names (q_proj, ...) or auto: the adapters' union",
    )
    max_loras: int = Field(ge=1, le=4096, description="adapters resident on the GPU at once")
    max_cpu_loras: int = Field(ge=1, le=65536, description="adapters cached in host memory")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _modules(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "auto":
            raise ValueError(f"write auto or a list of module names ([q_proj]), got {value!r}")
        if isinstance(value, list):
            bad = [m for m in value if not isinstance(m, str) or not MODULE.match(m)]
            if bad or not value:
                raise ValueError(
                    f"module names look like q_proj or shared_expert.gate_proj, got {bad or value}"
                )
        return value


def rules(section: LoraSection | None) -> list[tuple[str, tuple, str]]:
    """Cross-field rules of the section: (code, key path, message), as build_config._rules."""
    if section is None:
        return []
    out: list[tuple[str, tuple, str]] = []
    if section.max_cpu_loras < section.max_loras:
        out.append(
            (
                "rule:lora_cpu_below_gpu",
                ("lora", "max_cpu_loras"),
                f"{section.max_cpu_loras} is below lora.max_loras ({section.max_loras}): every "
                "adapter on the GPU is also cached in host memory",
            )
        )
    seen: dict[str, int] = {}
    for i, entry in enumerate(section.adapters):
        if entry.name in seen:
            out.append(
                (
                    "rule:lora_duplicate_name",
                    ("lora", "adapters", i, "name"),
                    f"{entry.name} is also adapters[{seen[entry.name]}]: names select adapters "
                    "per request and must be unique",
                )
            )
        seen.setdefault(entry.name, i)
    if isinstance(section.target_modules, list):
        modules = section.target_modules
        twice = sorted({m for m in modules if modules.count(m) > 1})
        if twice:
            out.append(("rule:lora_duplicate_module", ("lora", "target_modules"), f"{twice} twice"))
    return out

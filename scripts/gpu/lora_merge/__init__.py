"""Streaming, exact merge of PEFT adapters into their Hugging Face base (see merge_lora.py)."""

import sys
from pathlib import Path

# What a model dir holds besides its weights (tokenizer files, the safetensors header reader) has
# one home, shared with the export stages: scripts/export/lib/model_files.py.
_EXPORT_LIB = str(Path(__file__).resolve().parents[2] / "export" / "lib")
if _EXPORT_LIB not in sys.path:
    sys.path.append(_EXPORT_LIB)

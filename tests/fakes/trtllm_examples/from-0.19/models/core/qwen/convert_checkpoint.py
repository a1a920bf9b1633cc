"""Fake TensorRT-LLM example script: strict argv check, then a tiny checkpoint.

See tests/fakes/trtllm_examples/_fake_trtllm.py; the family is this file's directory name.
"""

import sys
from pathlib import Path

here = Path(__file__).resolve()
root = next(p for p in here.parents if (p / "_fake_trtllm.py").is_file())
sys.path.insert(0, str(root))
import _fake_trtllm  # noqa: E402

tool = "quantize" if here.name == "quantize.py" else "convert"
raise SystemExit(_fake_trtllm.main([tool, str(here), *sys.argv[1:]]))

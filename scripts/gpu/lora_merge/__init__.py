"""Streaming, exact merge of PEFT adapters into their Hugging Face base (see merge_lora.py)."""

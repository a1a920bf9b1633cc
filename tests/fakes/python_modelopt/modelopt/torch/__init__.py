"""modelopt.torch (fake): see modelopt/__init__.py."""

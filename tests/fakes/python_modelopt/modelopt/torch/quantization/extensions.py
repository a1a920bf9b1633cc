"""modelopt.torch.quantization.extensions (fake): ModelOpt compiles these on first use; on a
machine without CUDA the real loaders return None, as these do."""

from modelopt import log_call


def get_cuda_ext(raise_if_failed: bool = False):
    log_call("get_cuda_ext")


def get_cuda_ext_fp8(raise_if_failed: bool = False):
    log_call("get_cuda_ext_fp8")

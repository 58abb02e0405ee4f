"""Numerical kernels below Flax: depthwise convolution, the few-channel (stem) convolution and 3x3/stride-2
max-pooling (a reference and a CPU fast path each), and train-mode BatchNorm, with their custom backward passes.
Layers (`mobilejax.layers`) and models call these; nothing here knows about modules."""
from mobilejax.ops.batchnorm import batch_norm_train, bn_normalize
from mobilejax.ops.conv import IM2COL_MAX_DEPTH, conv_im2col, conv_xla, use_im2col
from mobilejax.ops.depthwise import (DEPTHWISE_IMPLS, depthwise_conv, depthwise_conv_shift, depthwise_conv_xla,
                                     resolve_depthwise_impl)
from mobilejax.ops.pooling import POOL_IMPLS, max_pool_3x3_s2, max_pool_3x3_s2_shift, max_pool_3x3_s2_xla

__all__ = ["DEPTHWISE_IMPLS", "IM2COL_MAX_DEPTH", "POOL_IMPLS", "batch_norm_train", "bn_normalize", "conv_im2col",
           "conv_xla", "depthwise_conv", "depthwise_conv_shift", "depthwise_conv_xla", "max_pool_3x3_s2",
           "max_pool_3x3_s2_shift", "max_pool_3x3_s2_xla", "resolve_depthwise_impl", "use_im2col"]

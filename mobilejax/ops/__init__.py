"""Numerical kernels below Flax: depthwise convolution and 3x3/stride-2 max-pooling (reference and CPU fast path each)
and train-mode BatchNorm, each with its custom backward pass. Layers (`mobilejax.layers`) and models call these;
nothing here knows about modules."""
from mobilejax.ops.batchnorm import batch_norm_train, bn_normalize
from mobilejax.ops.depthwise import (DEPTHWISE_IMPLS, depthwise_conv, depthwise_conv_shift, depthwise_conv_xla,
                                     resolve_depthwise_impl)
from mobilejax.ops.pooling import POOL_IMPLS, max_pool_3x3_s2, max_pool_3x3_s2_shift, max_pool_3x3_s2_xla

__all__ = ["DEPTHWISE_IMPLS", "batch_norm_train", "bn_normalize", "depthwise_conv", "depthwise_conv_shift",
           "depthwise_conv_xla", "max_pool_3x3_s2", "max_pool_3x3_s2_shift",
           "max_pool_3x3_s2_xla", "POOL_IMPLS", "resolve_depthwise_impl"]

"""Numerical kernels below Flax: depthwise convolution (reference and CPU fast path) and train-mode BatchNorm, each
with its custom backward pass. Layers (`mobilejax.layers`) call these; nothing here knows about modules."""
from mobilejax.ops.batchnorm import batch_norm_train, bn_normalize
from mobilejax.ops.depthwise import (DEPTHWISE_IMPLS, depthwise_conv, depthwise_conv_shift, depthwise_conv_xla,
                                     resolve_depthwise_impl)

__all__ = ["DEPTHWISE_IMPLS", "batch_norm_train", "bn_normalize", "depthwise_conv", "depthwise_conv_shift",
           "depthwise_conv_xla", "resolve_depthwise_impl"]

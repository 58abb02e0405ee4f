"""Model summary: trainable parameters, multiply-adds (MACs) per image, and a per-layer table.

Layers are recorded while the model is traced abstractly (`jax.eval_shape`, no FLOPs spent), by intercepting every
`Conv` and `nn.Dense` call. MACs count the multiplies of convolutions and dense layers (the convention of the papers'
"Mult-Adds" tables); BatchNorm, activations, pooling and additions are not counted. For every depthwise convolution
followed by its pointwise 1x1 convolution, the table also gives what one standard convolution with the same input,
output and kernel would cost (MobileNetV1's "8-9x fewer" argument).
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.layers import BatchNorm, Conv
from mobilejax.models import create_model


@dataclasses.dataclass
class Layer:
    name: str
    kind: str            # "conv", "depthwise", "pointwise", "dense", "batchnorm"
    output_shape: tuple
    params: int
    macs: int
    kernel_size: int = 1
    in_channels: int = 0
    out_channels: int = 0


@dataclasses.dataclass
class Summary:
    model: str
    alpha: float
    resolution: int
    num_classes: int
    params: int
    macs: int
    layers: list[Layer]
    separable: list[dict]  # depthwise + pointwise pairs with the cost of the standard conv they replace

    def to_dict(self, layers: bool = True) -> dict:
        d = {"model": self.model, "alpha": self.alpha, "resolution": self.resolution, "num_classes": self.num_classes,
             "params": self.params, "macs": self.macs}
        sep_macs = sum(p["separable_macs"] for p in self.separable)
        std_macs = sum(p["standard_macs"] for p in self.separable)
        d["separable_layers"] = {"count": len(self.separable), "macs": sep_macs, "standard_conv_macs": std_macs,
                                 "reduction": round(std_macs / sep_macs, 2) if sep_macs else None}
        if layers:
            d["layers"] = [dataclasses.asdict(l) for l in self.layers]
            d["separable_pairs"] = self.separable
        return d

    def table(self, show_batchnorm: bool = True) -> str:
        rows = [f"{self.model} (alpha={self.alpha}, {self.resolution}x{self.resolution}, "
                f"{self.num_classes} classes)", "",
                f"{'layer':<42} {'output':>18} {'params':>11} {'MACs':>13}"]
        rows.append("-" * len(rows[-1]))
        for l in self.layers:
            if l.kind == "batchnorm" and not show_batchnorm:
                continue
            shape = "x".join(str(s) for s in l.output_shape)
            rows.append(f"{l.name:<42} {shape:>18} {l.params:>11,} {l.macs:>13,}")
        rows.append("-" * len(rows[2]))
        rows.append(f"{'total trainable parameters':<42} {'':>18} {self.params:>11,}")
        rows.append(f"{'total multiply-adds (per image)':<42} {'':>18} {'':>11} {self.macs:>13,}")
        if self.separable:
            sep = self.to_dict(layers=False)["separable_layers"]
            rows += ["", f"depthwise-separable layers: {sep['count']} pairs, {sep['macs']:,} MACs; as standard "
                         f"convolutions they would cost {sep['standard_conv_macs']:,} MACs "
                         f"({sep['reduction']}x more)"]
        return "\n".join(rows)


def _param_count(tree) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))


def summarize_module(model: nn.Module, resolution: int, name: str | None = None) -> Summary:
    """Summarise an already-built model at `resolution` x `resolution` (batch of one)."""
    layers: list[Layer] = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        mod = context.module
        if context.method_name != "__call__" or not isinstance(mod, (Conv, nn.Dense, nn.BatchNorm, BatchNorm)):
            return out
        x = args[0]
        path = "/".join(mod.path) if mod.path else mod.name
        if isinstance(mod, (nn.BatchNorm, BatchNorm)):
            c = x.shape[-1]
            params = 2 * c if isinstance(mod, BatchNorm) else c * (int(mod.use_scale) + int(mod.use_bias))
            layers.append(Layer(path, "batchnorm", tuple(out.shape[1:]), params, 0, 1, c, c))
        elif isinstance(mod, Conv):
            k, cin, cout = mod.kernel_size, x.shape[-1], mod.features
            spatial = math.prod(out.shape[1:-1])
            per_out = k * k * (1 if mod.depthwise else cin)
            params = per_out * cout + (cout if mod.use_bias else 0)
            kind = "depthwise" if mod.depthwise else ("pointwise" if k == 1 else "conv")
            layers.append(Layer(path, kind, tuple(out.shape[1:]), params, spatial * per_out * cout, k, cin, cout))
        else:
            cin, cout = x.shape[-1], mod.features
            spatial = math.prod(out.shape[1:-1])
            params = cin * cout + (cout if mod.use_bias else 0)
            layers.append(Layer(path, "dense", tuple(out.shape[1:]), params, spatial * cin * cout, 1, cin, cout))
        return out

    x = jax.ShapeDtypeStruct((1, resolution, resolution, 3), jnp.float32)
    with nn.intercept_methods(interceptor):
        variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)

    # Pair every depthwise conv with the first pointwise conv after it that consumes its channels.
    pairs = []
    for i, l in enumerate(layers):
        if l.kind != "depthwise":
            continue
        for nxt in layers[i + 1:]:
            if (nxt.kind == "pointwise" and nxt.in_channels == l.out_channels and "/se/" not in nxt.name
                    and nxt.output_shape[:2] == l.output_shape[:2]):
                h, w = l.output_shape[0], l.output_shape[1]
                std = h * w * l.kernel_size ** 2 * l.in_channels * nxt.out_channels
                pairs.append({"depthwise": l.name, "pointwise": nxt.name, "separable_macs": l.macs + nxt.macs,
                              "standard_macs": std, "reduction": round(std / (l.macs + nxt.macs), 2)})
                break

    params = _param_count(variables["params"])
    assert params == sum(l.params for l in layers), "summary missed a parameterised layer"
    return Summary(name or type(model).__name__, float(getattr(model, "alpha", 1.0)), resolution,
                   int(getattr(model, "num_classes", 0)), params, sum(l.macs for l in layers), layers, pairs)


def summarize(name: str, alpha: float = 1.0, resolution: int = 224, num_classes: int = 1000, **knobs: Any) -> Summary:
    """`summarize("mobilenet_v2", alpha=0.5)`: parameters, MACs and per-layer table of a registry model."""
    model = create_model(name, alpha=alpha, num_classes=num_classes, **knobs)
    return summarize_module(model, resolution, name)


def print_summary(summary: Summary, as_json: bool = False) -> None:
    print(json.dumps(summary.to_dict()) if as_json else summary.table())

"""Where a compiled step's memory traffic goes: bytes per kind of top-level op in an optimised XLA HLO dump.

    MOBILEJAX_CACHE_DIR=$(mktemp -d) XLA_FLAGS="--xla_dump_to=/tmp/hlo --xla_dump_hlo_as_text" \
        mobilejax bench mobilenet_v2 --resolution 32 --batch 128 --option small_input=True --steps 1
    python scripts/hlo_bytes.py /tmp/hlo/*jit_train_step*after_optimizations.txt

(An empty compilation cache makes XLA compile, and so dump, the step.) Each top-level op of the ENTRY computation
counts its output plus each distinct operand once (a bitcast is free): an estimate of the bytes one pass of that op
moves, caches ignored. Fusions are grouped by kind and by the set of ops inside them (e.g. "kLoop: multiply
subtract" is an elementwise pass writing (x - a) * b). It found the normalised BatchNorm input that XLA:CPU wrote
once per layer (docs/profile.md, "Round 3").
"""
from __future__ import annotations

import argparse
import collections
import re

_BYTES = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "f32": 4, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8}
_ARRAY = re.compile(r"\b(" + "|".join(_BYTES) + r")\[([0-9,]*)\]")
_INSTR = re.compile(r"(?:ROOT )?%?([\w.\-]+) = (.*?) ([a-z][\w\-]*)\((.*?)\)(.*)$")
_FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast"}


def shape_bytes(shape: str) -> int:
    total = 0
    for dtype, dims in _ARRAY.findall(shape):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        total += n * _BYTES[dtype]
    return total


def computations(text: str) -> tuple[dict[str, str], str]:
    """The bodies of the module's computations by name, and the ENTRY computation's body."""
    pattern = r"\n%?([\w.\-]+) \([^\n]*\) -> [^\n]*\{\n(.*?)\n\}"
    bodies = {m.group(1): m.group(2) for m in re.finditer(pattern, text, re.S)}
    entry = re.search(r"\nENTRY [^\n]*\{\n(.*?)\n\}", text, re.S)
    if entry is None:
        raise SystemExit("no ENTRY computation in this file: pass an HLO text dump (--xla_dump_hlo_as_text)")
    return bodies, entry.group(1)


def op_kinds(text: str) -> list[tuple[str, str, int]]:
    """(name, kind, bytes) per top-level op of the ENTRY computation, in program order."""
    bodies, entry = computations(text)
    sizes, rows = {}, []
    for line in entry.splitlines():
        m = _INSTR.match(line.strip())
        if not m:
            continue
        name, shape, op, args, rest = m.groups()
        sizes[name] = shape_bytes(shape)
        if op in _FREE:
            continue
        operands = set(re.findall(r"%([\w.\-]+)", args))
        moved = sizes[name] + sum(sizes.get(a, 0) for a in operands)
        kind = op
        called = re.search(r"calls=%?([\w.\-]+)", rest)
        if op == "fusion" and called and called.group(1) in bodies:
            inner = set(re.findall(r"= [^ ]+ ([a-z][\w\-]*)\(", bodies[called.group(1)])) - _FREE - {"broadcast"}
            fusion_kind = re.search(r"kind=(\w+)", rest)
            kind = f"{fusion_kind.group(1) if fusion_kind else 'fusion'}: {' '.join(sorted(inner))}"
        rows.append((name, kind, moved))
    return rows


def table(rows: list[tuple[str, str, int]], top: int = 20) -> str:
    """The totals of `op_kinds` rows per kind, the largest `top` kinds, one line each."""
    by_kind, count = collections.Counter(), collections.Counter()
    for _, kind, moved in rows:
        by_kind[kind] += moved
        count[kind] += 1
    total = sum(by_kind.values())
    lines = [f"{len(rows)} top-level ops, {total / 1e9:.2f} GB moved (outputs + distinct operands, caches ignored)"]
    lines += [f"{moved / 1e9:8.3f} GB {100 * moved / total:5.1f}% {count[kind]:5d}x  {kind}"
              for kind, moved in by_kind.most_common(top)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("hlo", help="an optimised HLO text dump (the *after_optimizations.txt file)")
    parser.add_argument("--top", type=int, default=20, help="how many kinds to list")
    args = parser.parse_args(argv)
    with open(args.hlo) as f:
        print(table(op_kinds(f.read()), args.top))


if __name__ == "__main__":
    main()

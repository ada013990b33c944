"""Symbolic sizes as numbers during elaboration: a size next to a tensor (`sum(err) / shape(x)[0]`, `xs / (W - 1)`)
read at run time from the shape of a tensor that has it, or computed from its symbols' sizes."""

from __future__ import annotations

import numpy as np

from ..diagnostics import ArchError, ArchTypeError
from ..types import DType, Sym, dim_mul, integer_terms, is_formula
from .values import Tensor

__all__ = ["RunTimeSizes"]


class RunTimeSizes:
    """The Evaluator's reading of symbolic sizes (a mixin: it uses the evaluator's graph, scope and again())."""

    def dim_tensor(self, d: Sym, dt: DType, opname: str, span) -> Tensor:
        """A symbolic size as a scalar of dtype dt, read at run time from shapes, factor by factor: a symbol (B, T)
        from the model input that declares it, a formula ((L-1)//2+1 after a strided conv) from the latest
        tensor that has it; multiplied out with the number (2*B*T). The nodes are named by the size, not
        numbered: the same spec at fixed sizes (run's check) and a block called again name the rest as before."""
        flipped = dim_mul(d, -1) if is_formula(d) else None
        if isinstance(flipped, Sym) and not is_formula(flipped):  # -T, -2*B: the size, times -1
            d = Sym(flipped.factors, -flipped.coef)
        parts = []
        prefix = self.again(".".join(self.scope + [f"size({d})"]))
        for f in d.factors:
            one = Sym((f,))
            found = self.dim_source(one) if is_formula(one) else next(  # symbols: the inputs' declarations
                ((v, v.type.shape.index(one)) for v in self.graph.inputs if one in v.type.shape), None)
            if found is None and is_formula(one):  # (W-1) beside a tensor: computed from W (keypoints hunt)
                found = self._formula_value(f, dt, opname, prefix, span)
            if found is None:
                raise ArchTypeError(f"{opname}(): the symbolic size {one} is the length of no dim of the model's "
                                    "inputs or of a tensor computed so far, so it cannot be read at run time", span)
            parts.append(found)
        out = None
        for v, axis in parts:
            t = v if axis is None else \
                self.graph.add_node("dim_size", [v], {"axis": axis, "dtype": dt.label}, prefix, span).outputs[0]
            out = t if out is None else self.graph.add_node("mul", [out, t], {}, prefix, span).outputs[0]
        if d.coef != 1:
            k = self.graph.add_const(np.array(d.coef, dtype=dt.numpy), span)
            out = self.graph.add_node("mul", [out, k], {}, prefix, span).outputs[0]
        return Tensor(out)

    def _formula_value(self, text: str, dt: DType, opname: str, prefix: str, span):
        """(the value, None) of a formula of symbols and whole numbers by +, -, * and // ((W-1), (H+1)//2), or of
        exact divisions (H*W/4), that no tensor has as a dim, computed in int64 from its symbols' run-time sizes;
        None for any other formula."""
        import ast

        ops_of = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.FloorDiv: "floordiv"}

        def build(node):
            inside = {type(n) for n in ast.walk(node)}
            if ast.Div in inside and ast.FloorDiv not in inside:  # H*W/4, or (H/2) in (H/2)//2: as a whole
                return self._polynomial_value(f"({ast.unparse(node)})", opname, prefix, span)
            if isinstance(node, ast.Name):
                return self.dim_tensor(Sym((node.id,)), DType.int64, opname, span).value
            if isinstance(node, ast.Constant) and type(node.value) is int:
                return self.graph.add_const(np.array(node.value, dtype=np.int64), span)
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):  # 1 - L is written (-L+1)
                a = build(node.operand)
                return None if a is None else self.graph.add_node("neg", [a], {}, prefix, span).outputs[0]
            if isinstance(node, ast.BinOp) and type(node.op) in ops_of:
                a, b = build(node.left), build(node.right)
                if a is not None and b is not None:
                    return self.graph.add_node(ops_of[type(node.op)], [a, b], {}, prefix, span).outputs[0]
            return None
        try:
            v = build(ast.parse(text, mode="eval").body)
        except (SyntaxError, ArchError):
            return None
        if v is not None and dt is not DType.int64:
            v = self.graph.add_node("cast", [v], {"dtype": dt.label}, prefix, span).outputs[0]
        return None if v is None else (v, None)

    def _polynomial_value(self, text: str, opname: str, prefix: str, span):
        """A formula of exact divisions (H*W/4: pixel_unshuffle's H/2 times its W/2; 3*T/2-3/2) in int64: its
        terms over their common denominator, summed, then divided, which leaves no remainder (the shape rules
        that made the formula divided only what is a multiple)."""
        found = integer_terms(Sym((text,)))
        if found is None or not found[0]:
            return None
        terms, den = found
        add = lambda a, b, op="add": self.graph.add_node(op, [a, b], {}, prefix, span).outputs[0]  # noqa: E731
        const = lambda k: self.graph.add_const(np.array(k, dtype=np.int64), span)  # noqa: E731
        total = None
        for m, c in sorted(terms.items()):
            t = const(c)
            for f in m:
                t = add(t, self.dim_tensor(Sym((f,)), DType.int64, opname, span).value, "mul")
            total = t if total is None else add(total, t)
        return add(total, const(den), "floordiv")

    def dim_source(self, d: Sym):
        """(value, axis) of the latest node output so far with the size d (the tensor just computed, rather than
        an earlier branch that may be dead), else of a model input; an index kept as the graph grows, so each
        lookup costs only the nodes added since the last."""
        if self.dim_scanned < 0:  # the inputs first
            for v in self.graph.inputs:
                for axis, x in enumerate(v.type.shape):
                    self.dim_index.setdefault(x, (v, axis))
            self.dim_scanned = 0
        nodes = self.graph.nodes
        for n in nodes[self.dim_scanned:]:
            for o in n.outputs:
                for axis, x in enumerate(o.type.shape):
                    if not isinstance(x, int):
                        self.dim_index[x] = (o, axis)
        self.dim_scanned = len(nodes)
        return self.dim_index.get(d)

"""-D values: read from the command line (`name=value`, a bare word a string) and checked against the
param's default (its type, a list's elements, a record's fields), with notes that point at the -D."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import ops
from ..diagnostics import ArchError, DefineError, SourceMap, Span, UnknownNameError, did_you_mean
from ..syntax import ast as A
from ..syntax import is_number_literal, parse_expr
from .builtins import BUILTINS
from .evaluator import Evaluator
from .values import BlockFn, Builtin, Env, Namespace, OpFn, describe

__all__ = ["DEFINE_FILE", "define_label", "override", "override_field", "parse_define", "parse_defines"]

DEFINE_FILE = "<-D>"


class FileNames:
    """The file's names so far, as a -D bare word reads them (-D act=myblock)."""

    def __init__(self, env):
        self.env = env

    def __call__(self, word: str):
        return self.env.lookup(word) if self.env.has(word) else None

    def functions(self) -> list[str]:
        """The blocks (and ops under other names) the file defines: to suggest for a misspelt one."""
        return [k for k, v in self.env.vars.items() if isinstance(v, (BlockFn, OpFn))]


@dataclass(frozen=True)
class _Deferred:
    """A -D expression that names ops, blocks or imports (`-D acts=[silu, myblock]`, `-D acts=[lib.blk]`, `-D
    cfg={act: gelu}`): evaluated with the file's names first where the param is set, as a bare word is (`[gelu]`
    was the op where the file has a block gelu, unless the list also named one only the file has: lang2 hunt);
    where the file has none of them, the value read without them, else the error that gave."""
    node: object
    error: ArchError | None
    label: str  # -D NAME, for an error the file's names give
    plain: object = None  # the value read without the file's names (where that had no error)

    def value(self, names):
        env = {n.id: v for n in A.names_in(self.node)  # the file's blocks and imports, as a bare word's
               if names is not None and isinstance(v := names(n.id), (OpFn, BlockFn, Builtin, Namespace))}
        if not env:
            if self.error is not None and isinstance(names, FileNames):  # [minee]: "did you mean 'min'?", a
                funcs = {k: names(k) for k in names.functions()}  # builtin -D refuses, where the file has mine
                try:
                    Evaluator(None).eval(self.node, Env(funcs, None))
                except UnknownNameError as e:
                    raise DefineError(f"{self.label}: {e.message}", e.span or self.error.span) from None
                except ArchError:
                    pass
            if self.error is not None:
                raise self.error
            return self.plain
        try:
            return Evaluator(None).eval(self.node, Env(env, None))
        except ArchError as e:  # `lib.nope`: lib is the file's, nope is not
            raise DefineError(f"{self.label}: {e.message}", e.span or self.error.span) from None


@dataclass(frozen=True)
class _Word:
    """A -D value that is no archdsl expression (`1.5b`, `-a`, `if`, `v1.5`): the string itself where the
    param is a string, else the error reading it as an expression gave."""
    text: str
    error: ArchError


def override(item: A.ParamDecl, default, given, prefix: str = "", names=None):
    """`names`: the file's names so far (a block a bare word names, -D act=myblock)."""
    value, span = given[0], given[1]
    name = prefix + item.name  # as the -D wrote it
    if isinstance(value, _Deferred):
        try:
            value = value.value(names)
        except ArchError as e:  # -D 'tags=[foo]' for strings: "did you mean 'floor'?" said nothing of quoting
            words = isinstance(default, str) or isinstance(default, (list, tuple)) and default and \
                all(isinstance(v, str) for v in default)
            unknown = re.match(r"unknown name '(\w+)'", e.message.partition(": ")[2])
            if words and unknown:
                kind = " is a string" if isinstance(default, str) else "'s elements are strings"
                raise DefineError(f"{define_label(name, span)}: unknown name '{unknown[1]}': the default{kind}, and "
                                  f'inside a list, record or expression a word is a name: quote it, "{unknown[1]}"',
                                  e.span or span, [(f"param '{item.name}' is declared here", item.span)]) from None
            raise
    if isinstance(value, _Word):
        if isinstance(default, str):
            return value.text
        if isinstance(default, (OpFn, BlockFn, Builtin)) and names:  # -D act=lib.blk: an imported file's
            found = _imported(value.text, names, name, given[1])
            if isinstance(found, (OpFn, BlockFn, Builtin)):
                return found
            if found is not None:  # lib.width: a number, said as any other value of the wrong kind
                value = found
        if isinstance(value, _Word):
            raise value.error
    if isinstance(default, str) and len(given) > 3 and type(value) in (int, float):  # -D tag=1.5: as written
        return given[3]
    if isinstance(default, (list, tuple)) and type(value) is type(default):
        value = _same_elements(name, item, default, value, span, names)
    if _is_record(default) and isinstance(value, dict):
        value = _same_fields(item, default, value, given, prefix, names=names)
    elif isinstance(default, dict) and isinstance(value, dict):
        value = _same_entries(name, item, default, value, span)
    if isinstance(default, str) and value == "+inf":  # the ops' spelling of it, as REFERENCE says
        return "inf"
    if default is None or type(value) is type(default):
        return value
    if isinstance(default, (OpFn, BlockFn)) and isinstance(value, Builtin) and \
            (op := _op_named(value.name)) is not None:  # [relu, exp]: a builtin's name read first in a list;
        return OpFn(op, value.name if value.name in op.alias_ranks else "")  # the op of that name, as -D act=exp
    if isinstance(default, (OpFn, BlockFn, Builtin)) and isinstance(value, (OpFn, BlockFn, Builtin)) and \
            isinstance(default, Builtin) == isinstance(value, Builtin):  # {act: mine} for {act: relu}: a block for
        return value  # an op, as -D cfg.act=mine; a builtin with no op (max) failed where it was applied
    if isinstance(default, (OpFn, BlockFn, Builtin)) and isinstance(value, str):  # -D act=silu, f=min: a bare
        if isinstance(found := names(value) if names else None, (OpFn, BlockFn, Builtin)):  # word is the file's
            return found                                                                  # name, as in the spec
        if isinstance(default, Builtin):
            if value in BUILTINS:
                return BUILTINS[value]
        elif (op := _op_named(value)) is not None:
            return OpFn(op, value if value in op.alias_ranks else "")
    if isinstance(default, float) and value in ("inf", "-inf", "+inf"):  # -D p=inf: the ops' spelling of it
        return float(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # 10**400: a raw OverflowError from the API before
            raise DefineError(f"{define_label(name, span)}: the integer is too large for a number (float)", span,
                              [(f"param '{item.name}' is declared here", item.span)]) from None
    api = "" if span is not None or not isinstance(value, str) else \
        " (the Python API's defines take Python values, as True or 64, not -D's text)"
    if isinstance(default, (OpFn, BlockFn, Builtin)) and isinstance(value, str):  # {"act": "gelo"}, -D act=gelo
        known = list(BUILTINS) if isinstance(default, Builtin) else \
            ops.all_names() + (names.functions() if isinstance(names, FileNames) else [])  # the file's blocks too
        what = "builtin function" if isinstance(default, Builtin) else "op or block"
        raise DefineError(f"{define_label(name, span)}: no {what} named '{value}'{did_you_mean(value, known)}",
                          span, [(f"param '{item.name}' is declared here", item.span)])
    if isinstance(default, str) and isinstance(value, OpFn):  # -D names={a: silu}: a word inside is a name
        api = f' (inside a list, record or expression a word is a name: quote it, "{value.name}")'

    raise DefineError(f"{define_label(name, span)}: expected {_kind(default)} like the default ({describe(default)}), "
                      f"got {describe(value)}{api}", span, [(f"param '{item.name}' is declared here", item.span)])


def _imported(text: str, names, name: str, span):
    """The block, op or builtin `lib.blk` names through the file's imports, or None where its first word is no
    import (the error reading it as an expression is said instead)."""
    first, *rest = text.split(".")
    at = names(first) if first.isidentifier() else None
    if not isinstance(at, Namespace) or not rest or not all(p.isidentifier() for p in rest):
        return None
    for i, part in enumerate(rest):
        if not isinstance(at, Namespace) or part not in at.env.vars:
            where = ".".join([first, *rest[:i]])
            fns = [k for k, v in at.env.vars.items() if isinstance(v, (OpFn, BlockFn, Builtin, Namespace))] \
                if isinstance(at, Namespace) else []
            raise DefineError(f"-D {name}: {where} has no '{part}'{did_you_mean(part, fns)}", span)
        at = at.env.vars[part]
    return at


def override_field(item: A.ParamDecl, record, key: str, given, prefix: str = "", names=None):
    """`-D cfg.width=8`: the record param `cfg` with that field (`cfg.a.b` one level further) set as -D sets a
    param, against the field's default; the record is copied, never changed in place."""
    path = key.split(".")[1:]
    span = given[1]
    at, parents = record, []
    for i, name in enumerate(path):
        where = ".".join([item.name, *path[:i]])
        if not isinstance(at, dict):
            raise DefineError(f"{define_label(prefix + key, span)}: '{where}' is {describe(at)}, not a record: -D "
                              f"{prefix}NAME.FIELD sets a field of a record param (or a param of the file imported "
                              "as NAME)", span, [(f"param '{item.name}' is declared here", item.span)])
        if name not in at:
            fields = [k for k in at if isinstance(k, str)]
            raise DefineError(f"{define_label(prefix + key, span)}: the record '{where}' has no field '{name}'"
                              f"{did_you_mean(name, fields)}" + (f" (its fields: {', '.join(fields)})" if fields
                                                                 else ""),
                              span, [(f"param '{item.name}' is declared here", item.span)])
        parents.append(at)
        at = at[name]
    try:
        value = override(A.ParamDecl(f"{item.name}.{'.'.join(path)}", item.value, item.span), at, given, prefix,
                         names)
    except DefineError as e:
        e.notes = [(f"param '{item.name}' is declared here", item.span)]
        raise
    for parent, name in zip(reversed(parents), reversed(path)):
        value = {**parent, name: value}
    return value


def _is_record(v) -> bool:
    return isinstance(v, dict) and bool(v) and all(isinstance(k, str) for k in v)


def _same_fields(item: A.ParamDecl, default: dict, value: dict, given, prefix: str, param: str = "",
                 names=None) -> dict:
    """-D cfg={width: 'x', depth: 2} where the default is a record: every field as -D cfg.width would set it
    (a field missing, one it does not have, a value of another type: it failed where the spec read it)."""
    span = given[1]
    name = prefix + item.name
    notes = [(f"param '{param or item.name}' is declared here", item.span)]
    missing = [k for k in default if k not in value]
    extra = [k for k in value if k not in default]
    if missing or extra:
        said = ([f"lacks the field{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}"] if missing
                else []) + ([f"has no field {', '.join(map(str, extra))}"] if extra else [])
        raise DefineError(f"{define_label(name, span)}: the record {' and '.join(said)} (its fields: "
                          f"{', '.join(default)})", span, notes)
    out = {}
    for k, v in value.items():
        try:
            out[k] = override(A.ParamDecl(f"{item.name}.{k}", item.value, item.span), default[k], (v, span), prefix,
                              names)
        except DefineError as e:
            e.notes = notes
            raise
    return out


def define_label(name: str, span) -> str:
    """How the value was given: `-D name` on the command line (it has a span), else the API's defines dict."""
    if span is not None:
        return f"-D {name}"
    base, bracket, rest = name.partition("[")  # blocks[0].width: the list param's key, then the item
    return f"defines[{base!r}]{bracket}{rest}"


def _same_elements(name: str, item: A.ParamDecl, default, value, span, names=None):
    """-D widths=[64, 'a'] where the default is a list of integers: the element is refused as a lone value
    would be. An int where the default's are floats becomes a float, as a lone number does (-D scales=[1, 2]
    kept ints: tensor(scales) was int64 and `x * tensor(scales)` failed on dtypes)."""
    if default and all(_is_record(v) and v.keys() == default[0].keys() for v in default):  # a list of records
        return type(value)(_element_record(name, item, default[0], v, i, span, names) for i, v in enumerate(value))
    if default and all(isinstance(v, (OpFn, BlockFn, Builtin)) for v in default):  # the API's {"acts": ["gelu"]},
        return type(value)(override(A.ParamDecl(f"{item.name}[{i}]", item.value, item.span), default[0],  # as a
                                    (v, span), "", names)  # record field's string; `[3]` refused here, as
                           for i, v in enumerate(value))    # -D act=3 is (review72 hunt)
    kind = _one_kind(default)
    if kind is None:
        return value
    for i, v in enumerate(value):
        if not _of_kind(v, kind):
            quote = f' (inside a list, record or expression a word is a name: quote it, "{v.name}")' \
                if kind is str and isinstance(v, OpFn) else ""  # a bare -D act=silu is a string; [silu] an op
            raise DefineError(f"{define_label(name, span)}: element {i} is {describe(v)}, and the default's "
                              f"elements are {_KINDS[kind]}{quote}", span,
                              [(f"param '{item.name}' is declared here", item.span)])
    if kind is not float or all(type(v) is float for v in value):
        return value
    return type(value)(_float(name, item, v, span) for v in value)


def _element_record(name: str, item: A.ParamDecl, default: dict, value, i: int, span, names=None):
    """Element i of -D blocks=[{width: 8, depth: 1}, ...] where the default's elements are records of the same
    fields: checked as -D blocks={...} would be against one of them (it failed where the spec read it)."""
    if not isinstance(value, dict):
        raise DefineError(f"{define_label(name, span)}: element {i} is {describe(value)}, and the default's "
                          f"elements are records ({', '.join(default)})", span,
                          [(f"param '{item.name}' is declared here", item.span)])
    element = A.ParamDecl(f"{name}[{i}]", item.value, item.span)
    return _same_fields(element, default, value, (value, span), "", param=item.name, names=names)


def _same_entries(name: str, item: A.ParamDecl, default: dict, value: dict, span) -> dict:
    """-D table={1: 'x'} where the default maps integers to numbers ({1: 2.0, 2: 4.0}): keys and values of the
    default's kinds (the keys themselves may differ), an int where its values are floats a float."""
    keys, values, lists = _one_kind(default.keys()), _one_kind(default.values()), _list_kind(default)
    for k, v in value.items():
        wrong = (f"key {describe(k)}, and the default's keys are {_KINDS[keys]}" if keys and not _of_kind(k, keys)
                 else f"the value of key {describe(k)} is {describe(v)}, and the default's values are "
                      f"{_KINDS[values]}" if values and not _of_kind(v, values) else _list_entry(lists, k, v))
        if wrong:
            raise DefineError(f"{define_label(name, span)}: {wrong}", span,
                              [(f"param '{item.name}' is declared here", item.span)])
    if values is float:
        return {k: _float(name, item, v, span) for k, v in value.items()}
    if lists is float:  # {18: [1, 2]} where the default's lists hold floats: floats, as a list's
        return {k: type(v)(_float(name, item, x, span) for x in v) for k, v in value.items()}
    return value


def _list_kind(default: dict):
    """Where every default value is a list ({18: [2, 2], 34: [3, 4]}, a stage table): the one kind of their
    elements, or list where they are mixed; else None."""
    if not default or not all(type(d) in (list, tuple) for d in default.values()):
        return None
    return _one_kind([x for d in default.values() for x in d]) or list


def _list_entry(lists, k, v) -> str | None:
    """What is wrong with a given value where every default value is a list (`lists`, _list_kind's): a list is
    wanted, of the default lists' one kind of element."""
    if lists is None:
        return None
    inner = None if lists is list else lists
    kinds = f"lists of {_KINDS[inner]}" if inner else "lists"
    if type(v) not in (list, tuple):
        return f"the value of key {describe(k)} is {describe(v)}, and the default's values are {kinds}"
    bad = next((i for i, x in enumerate(v) if inner and not _of_kind(x, inner)), None)
    return None if bad is None else (f"the value of key {describe(k)} has {describe(v[bad])} at element {bad}, and "
                                     f"the default's values are {kinds}")


def _one_kind(items):
    """The one scalar type (bool, int, float or str) of a default's items, else None (mixed, nested, none)."""
    kinds = {type(v) for v in items}
    return kinds.pop() if len(kinds) == 1 and kinds <= {bool, int, float, str} else None


def _of_kind(v, kind) -> bool:
    """A given item of the default's kind; a whole number where it has floats too (it becomes one)."""
    return type(v) is kind or (kind is float and type(v) is int)


def _float(name: str, item: A.ParamDecl, v, span) -> float:
    try:
        return float(v)
    except OverflowError:
        raise DefineError(f"{define_label(name, span)}: an integer is too large for a number (float)", span,
                          [(f"param '{item.name}' is declared here", item.span)]) from None


_KINDS = {bool: "true or false", int: "integers", float: "numbers", str: "strings"}


def _kind(v) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            list: "a list", tuple: "a tuple", dict: "a dict", OpFn: "an op or block", BlockFn: "an op or block",
            Builtin: "a builtin function"}.get(type(v), type(v).__name__)


def _op_named(name: str):
    op = ops.lookup(name)
    return op if op is not None and op.category != "internal" else None


def parse_define(text: str, sources: SourceMap, index: int = 0) -> tuple[str, tuple]:
    """`name=value` from the command line. A bare word is a string (`-D size=small`)."""
    file = DEFINE_FILE if index == 0 else f"<-D#{index + 1}>"  # no space: FILE:LINE:COL reads as one word
    sources.add(file, text)
    name, eq, raw = text.partition("=")
    whole = Span(file, 1, 1, 1, len(text) + 1)
    if not eq or not all(part.isidentifier() for part in name.strip().split(".")):
        raise DefineError(f"-D expects NAME=VALUE (or ALIAS.NAME=VALUE for an imported file's param), got "
                          f"'{text}'", whole)
    name = name.strip()
    col = len(text) - len(raw.lstrip()) + 1
    vspan = Span(file, 1, col, 1, len(text) + 1)
    word = raw.strip()
    if not word:
        raise DefineError(f"-D {name}: missing value after '='", vspan)
    nspan = Span(file, 1, 1, 1, len(text.partition("=")[0]) + 1)
    if re.fullmatch(r"[0-9][0-9A-Za-z_]*[A-Za-z][0-9A-Za-z_]*", word) and not is_number_literal(word) or \
            re.fullmatch(r"[A-Za-z_]\w*(-\w+)+", word) or word in ("-inf", "+inf"):
        # a word that starts with a digit (-D size=7b) is a string too, and so are hyphenated words
        # (-D mode=nearest-exact: no -D value has names to subtract) and -inf (the ops' spelling, a number
        # where the param is one)
        return name, (word, vspan, nspan)
    plain = re.fullmatch(r"[\w.+-]+", word) is not None  # one word: a string where the param is one
    try:
        node = parse_expr(word, vspan)
    except ArchError as e:
        if plain:
            return name, (_Word(word, e), vspan, nspan)
        raise
    if isinstance(node, A.Name):
        return name, (node.id, vspan, nspan)
    try:
        value = Evaluator(None).eval(node, Env({}, None))
    except ArchError as e:
        error = DefineError(f"-D {name}: {e.message}", e.span or vspan)
        if plain:
            return name, (_Word(word, error), vspan, nspan)
        if isinstance(e, UnknownNameError):  # a name only the file has: said where the param is set
            return name, (_Deferred(node, error, f"-D {name}"), vspan, nspan)
        raise error from None
    if _names_a_function(value):  # [gelu], {act: gelu}: the file's gelu where it has one
        return name, (_Deferred(node, None, f"-D {name}", value), vspan, nspan)
    return name, (value, vspan, nspan, word) if plain else (value, vspan, nspan)


def _names_a_function(v, depth: int = 0) -> bool:
    """Whether a -D value holds an op, block or builtin (in a list, tuple or dict, at any depth)."""
    if isinstance(v, (OpFn, BlockFn, Builtin)):
        return True
    items = v if type(v) in (list, tuple) else [*v.keys(), *v.values()] if type(v) is dict else ()
    return depth < 100 and any(_names_a_function(x, depth + 1) for x in items)


def _python_value(v, name: str = "", depth: int = 0):
    """numpy's scalars (np.int64(18), np.float32(0.5), np.bool_) as the Python numbers they stand for, in lists,
    tuples and dicts (keys too); an integer past archdsl's limit is refused here (printing it raised a ValueError)."""
    if type(v).__module__ == "numpy" and getattr(v, "shape", None) == ():
        v = v.item()
    if depth > 100:  # a list holding itself: left as given (the metadata says it nests too deep)
        return v
    if type(v) in (list, tuple):  # a namedtuple or other subclass is left as given (and refused later)
        return type(v)(_python_value(x, name, depth + 1) for x in v)
    if type(v) is dict:
        return {_python_value(k, name, depth + 1): _python_value(x, name, depth + 1) for k, x in v.items()}
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 13000:  # ~3900 digits: Python
        raise ArchError(f"defines[{name!r}]: integer too large ({v.bit_length()} bits)")  # refuses to print more
    if v is not None and not isinstance(v, (bool, int, float, str, list, tuple, dict)):  # a param = none took
        # anything: an array as a dim was numpy's ValueError, a lambda went into the metadata as its repr
        raise ArchError(f"defines[{name!r}]: {type(v).__name__} {str(v)[:60]!r} is no value a param takes (none, "
                        "a bool, a number, a string, or a list or record of them, as -D writes)")
    return v


def parse_defines(items, sources: SourceMap) -> dict:
    """`-D` strings (`depth=50`) or a dict of Python values, to name -> (value, span)."""
    if items is None:
        return {}
    if isinstance(items, dict):
        bad = [k for k in items if not isinstance(k, str) or not all(p.isidentifier() for p in k.split("."))]
        if bad:
            raise ArchError(f"defines: a key must be a param's name, got {bad[0]!r}")
        return {k: (_python_value(v, k), None) for k, v in items.items()}
    if isinstance(items, str) or not isinstance(items, (list, tuple)) or not all(isinstance(t, str) for t in items):
        raise ArchError(f"defines takes a dict or a list of 'NAME=VALUE' strings, got {items!r}")
    out, given = {}, {}
    for i, text in enumerate(items):
        name, val = parse_define(text, sources, i)
        value = text.partition("=")[2].strip()
        if name in out and given[name] != value:  # the last one won, unsaid (as --input given twice is refused)
            raise DefineError(f"-D {name} is given twice, as {given[name]} and as {value}", val[2] if len(val) > 2
                              else val[1])
        out[name], given[name] = val, value
    return out

"""The Rust core (``paysvc._native``) on garbage: robustness, not reference equality.

``test_native.py`` checks every function against the plain-Python reference on JSON-like values and a
few odd scalars. This file feeds every function and constructor named in the stub's ``__all__``
hostile Python objects instead — lone surrogates and every Unicode category, huge integers, NaN and
infinities, bytes, subclasses of ``int``, ``str``, ``dict``, ``list`` and ``tuple`` whose methods
raise, objects whose ``__eq__``/``__hash__``/``__str__``/``__index__``/... raise, deep, self-referencing
and exponentially shared containers — as positional and keyword arguments, in well-formed calls and in
calls of the wrong shape. The signatures and result types are read from ``_native.pyi``, so a new
export is fuzzed as soon as it is declared there.

What must hold, for every call:

* a call that does not fit the declared signature (argument count, unknown or duplicate keyword, a
  keyword-only argument given by position) raises ``TypeError`` (pyo3's own), and nothing else;
* a call that fits returns a value of the declared type (exactly: ``int`` not ``bool``, ``str`` not a
  subclass, plans whose every property has its declared type) or raises a well-formed ``CoreError``
  that is not ``internal_error`` (which is what a panic inside the core becomes);
* never a ``PanicException``, ``SystemError``, ``RecursionError``, crash, or any other exception —
  in particular no exception raised by a method of an argument: the core reads values, it never calls
  into them.

The one exception is ``CoreError``'s own constructor, whose fields are typed ``str``: it answers a
non-``str`` field with pyo3's ``TypeError``, like any Python class with typed fields.

Examples are derandomized and bounded, so the file runs in seconds and the same on every run;
``PAYSVC_FUZZ_EXAMPLES`` raises the count for a deeper local run.
"""

from __future__ import annotations

import ast
import decimal
import fractions
import inspect
import math
import os
import reprlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paysvc import _native as native

EXAMPLES = int(os.environ.get("PAYSVC_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))

# --- the stub: names, signatures, result types ---------------------------------------------------

STUB = ast.parse((Path(native.__file__).parent / "_native.pyi").read_text(encoding="utf-8"))


def _stub_all() -> list[str]:
    for node in STUB.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(name) for name in value]
    raise AssertionError("_native.pyi has no __all__")


ALL = _stub_all()
FUNCTIONS = {n.name: n for n in STUB.body if isinstance(n, ast.FunctionDef) and n.name in ALL}
CLASSES = {n.name: n for n in STUB.body if isinstance(n, ast.ClassDef) and n.name in ALL}
CONSTANTS = {n.target.id: n for n in STUB.body
             if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id in ALL}
PROPERTIES = {
    cls.name: {f.name: f.returns for f in cls.body if isinstance(f, ast.FunctionDef)
               and any(isinstance(d, ast.Name) and d.id == "property" for d in f.decorator_list)}
    for cls in CLASSES.values()
}
INIT = {cls.name: next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        for cls in CLASSES.values()}


def signature_of(fn: ast.FunctionDef, *, method: bool = False) -> inspect.Signature:
    a = fn.args
    assert a.vararg is None and a.kwarg is None, fn.name
    params: list[inspect.Parameter] = []
    positional = [*a.posonlyargs, *a.args][1 if method else 0:]
    defaults: list[Any] = [inspect.Parameter.empty] * (len(positional) - len(a.defaults)) + [
        ast.literal_eval(d) for d in a.defaults]
    for i, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        kind = (inspect.Parameter.POSITIONAL_ONLY if i < len(a.posonlyargs) - int(method)
                else inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params.append(inspect.Parameter(arg.arg, kind, default=default))
    for arg, kw_default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        default = inspect.Parameter.empty if kw_default is None else ast.literal_eval(kw_default)
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY, default=default))
    return inspect.Signature(params)


SIGNATURES: dict[str, inspect.Signature] = {name: signature_of(fn) for name, fn in FUNCTIONS.items()}
SIGNATURES.update({name: signature_of(init, method=True) for name, init in INIT.items() if init is not None})
# A class without __init__ in the stub cannot be built from Python: every call is pyo3's TypeError.
NO_CONSTRUCTOR = sorted(name for name, init in INIT.items() if init is None)
RETURNS: dict[str, ast.expr | None] = {name: fn.returns for name, fn in FUNCTIONS.items()}
RETURNS.update({name: ast.Name(id=name) for name in CLASSES})
CALLABLES = sorted([*SIGNATURES, *NO_CONSTRUCTOR])


def conforms(value: Any, annotation: ast.expr | None) -> bool:
    """Whether ``value`` has the declared type: exact builtin types, and plans (classes of the stub)
    whose every property has its declared type."""
    if annotation is None or (isinstance(annotation, ast.Constant) and annotation.value is None):
        return value is None
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return conforms(value, annotation.left) or conforms(value, annotation.right)
    if isinstance(annotation, ast.Name):
        exact = {"int": int, "str": str, "bool": bool, "float": float, "bytes": bytes, "object": object}
        if annotation.id in exact:
            return annotation.id == "object" or type(value) is exact[annotation.id]
        cls = getattr(native, annotation.id)
        if type(value) is not cls:
            return False
        if cls is native.CoreError:
            return True
        for prop, declared in PROPERTIES[annotation.id].items():
            if not conforms(getattr(value, prop), declared):
                return False
        return isinstance(repr(value), str)
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        outer, inner = annotation.value.id, annotation.slice
        items = inner.elts if isinstance(inner, ast.Tuple) else [inner]
        if outer == "Final":
            return conforms(value, items[0])
        if outer == "list":
            return type(value) is list and all(conforms(v, items[0]) for v in value)
        if outer == "dict":
            return type(value) is dict and all(conforms(k, items[0]) and conforms(v, items[1])
                                               for k, v in value.items())
        if outer == "tuple":
            if len(items) == 2 and isinstance(items[1], ast.Constant) and items[1].value is Ellipsis:
                return type(value) is tuple and all(conforms(v, items[0]) for v in value)
            return type(value) is tuple and len(value) == len(items) and all(
                conforms(v, t) for v, t in zip(value, items, strict=True))
    raise AssertionError(f"annotation not understood: {ast.unparse(annotation)}")


# --- hostile values ------------------------------------------------------------------------------


class Boom(Exception):
    """Raised by every method of an argument: the core must never call one."""


def _boom(*_: Any, **__: Any) -> Any:
    raise Boom("the core called a method of its argument")


_DUNDERS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__str__", "__format__",
            "__bytes__", "__index__", "__int__", "__float__", "__complex__", "__bool__", "__len__", "__iter__",
            "__next__", "__reversed__", "__getitem__", "__contains__", "__round__", "__trunc__", "__abs__",
            "__neg__", "__add__", "__mul__", "__fspath__", "__buffer__", "keys", "items", "values", "get",
            "encode", "decode", "upper", "lower", "isascii", "copy")


def _hostile(base: type, name: str, **extra: Any) -> type:
    base_repr: Callable[[Any], str] = base.__repr__
    methods: dict[str, Any] = {m: _boom for m in _DUNDERS if m not in extra}
    methods["__repr__"] = lambda self: f"{name}({base_repr(self)})"  # Hypothesis prints failing examples
    return type(name, (base,), {**methods, **extra})


Hostile = _hostile(object, "Hostile", __repr__=lambda self: "Hostile()")
HashableHostile = _hostile(object, "HashableHostile", __hash__=object.__hash__,
                           __repr__=lambda self: "HashableHostile()")  # a dict key whose __eq__ raises
IntSub = _hostile(int, "IntSub", __hash__=int.__hash__)
StrSub = _hostile(str, "StrSub", __hash__=str.__hash__)
# Dict keys: building a dict compares keys of equal hash, so these keep __eq__ and __hash__.
StrKey = _hostile(str, "StrKey", __hash__=str.__hash__, __eq__=str.__eq__, __ne__=str.__ne__)
IntKey = _hostile(int, "IntKey", __hash__=int.__hash__, __eq__=int.__eq__, __ne__=int.__ne__)
FloatSub = _hostile(float, "FloatSub")
BytesSub = _hostile(bytes, "BytesSub")
DictSub = _hostile(dict, "DictSub", __repr__=lambda self: f"DictSub({dict.__repr__(self)})")
ListSub = _hostile(list, "ListSub", __repr__=lambda self: f"ListSub({list.__repr__(self)})")
TupleSub = _hostile(tuple, "TupleSub", __repr__=lambda self: f"TupleSub({tuple.__repr__(self)})")


class LiesAboutItsClass:
    """``isinstance(x, dict)`` is true; it is not a dict."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return dict

    def __repr__(self) -> str:
        return "LiesAboutItsClass()"


class Meta(type):
    """Its classes raise on every attribute looked up through the metaclass."""

    def __getattribute__(cls, name: str) -> Any:
        if name in ("__name__", "__qualname__", "__module__", "__mro__", "__dict__"):
            _boom()
        return super().__getattribute__(name)


class WeirdType(metaclass=Meta):
    def __repr__(self) -> str:
        return "WeirdType()"


def _generator() -> Any:
    yield _boom()


def self_list() -> list[Any]:
    x: list[Any] = [1]
    x.append(x)
    return x


def self_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"k": "v"}
    d["self"] = d
    return d


def mutual() -> list[Any]:
    a: list[Any] = []
    b = {"a": a}
    a.append((b,))
    return a


def nested(depth: int, kind: str = "list") -> Any:
    v: Any = "leaf"
    for _ in range(depth):
        v = [v] if kind == "list" else {"k": v} if kind == "dict" else (v,)
    return v


def shared(depth: int) -> list[Any]:
    """``depth`` lists, each holding the next one twice: 2**depth paths to the leaf."""
    v: list[Any] = ["leaf"]
    for _ in range(depth):
        v = [v, v]
    return v


ODD_SCALARS = [
    None, True, False, 0, -0, 1, -1, 2**31, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**64), 2**200,
    -(2**200), 10**15, 10**15 + 1, 0.0, -0.0, 1.0, 0.5, math.nan, -math.nan, math.inf, -math.inf, 1e308, 5e-324,
    1j, complex(math.nan, math.inf), decimal.Decimal("1"), decimal.Decimal("NaN"), decimal.Decimal("sNaN"),
    fractions.Fraction(1, 3), b"", b"USD", bytearray(b"usd"), memoryview(b"x"), "", "\x00", "\ud800", "\udfff",
    "a\ud800b", "\U0010ffff", "\ufeff", "\u0131", "\u017f", "USD\x00", "usd", "USD", "k", "/v1/payments", "POST",
    ..., NotImplemented, object(), Hostile(), HashableHostile(), IntSub(5), IntSub(2**200), IntSub(-1),
    StrSub("USD"), StrSub("\ud800"), StrSub("k"), FloatSub(1.0), BytesSub(b"x"), DictSub({"k": "v"}), DictSub(),
    ListSub([1, 2]), TupleSub((100, 0, None, None)), TupleSub(("USD", 1, 0, None, None)), LiesAboutItsClass(),
    WeirdType(), int, str, dict, type, len, print, math, range(3), {1, 2}, frozenset({"a"}),
    _generator(), iter([1]), slice(1, 2), property(), staticmethod(len), (lambda: 0),
]
# Built fresh for every call: containers that hold themselves, nest deeply, or share their parts.
ODD_BUILDERS: list[Callable[[], Any]] = [
    self_list, self_dict, mutual, lambda: nested(33), lambda: nested(40, "dict"), lambda: nested(33, "tuple"),
    lambda: nested(2_000), lambda: shared(12), lambda: [self_list()] * 3, lambda: {"k": self_dict()},
    lambda: DictSub({"a": DictSub({"b": ListSub([TupleSub((1,))])})}), lambda: list(range(5_000)),
    lambda: {str(i): str(i) for i in range(60)}, lambda: {"k": "v" * 501}, lambda: {"k" * 41: "v"},
    lambda: [("USD", 1, 0, None, None)] * 201, lambda: {StrKey("k"): StrSub("v")}, lambda: {IntSub(1): "v"},
    lambda: {HashableHostile(): "v"}, lambda: {"k": Hostile()}, lambda: {(1, 2): "v"}, lambda: {None: "v"},
    lambda: WeirdType, lambda: [WeirdType], lambda: {"k": WeirdType},
]

surrogates = st.characters(categories=["Cs"])
every_category = st.characters(exclude_categories=[])  # includes Cs, Co, Cn and controls
texts = st.one_of(
    st.text(every_category, max_size=8),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=3), surrogates, st.text(max_size=3)),
    st.text(st.characters(max_codepoint=0x7F), max_size=300),  # ASCII of any length around the 255 limit
)
ints = st.one_of(
    st.integers(), st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**64), 2**200, -(2**200), 10**15]),
)
# By index: Hypothesis hashes and prints the elements it samples from, and these raise when hashed.
odd_scalars = st.integers(0, len(ODD_SCALARS) - 1).map(ODD_SCALARS.__getitem__)
odd_builds = st.integers(0, len(ODD_BUILDERS) - 1).map(lambda i: ODD_BUILDERS[i]())
scalars = st.one_of(
    st.none(), st.booleans(), ints, st.floats(), st.binary(max_size=8), texts, odd_scalars, odd_scalars,
    texts.map(StrSub), ints.map(IntSub), odd_builds,
)
keys = st.one_of(texts, ints, st.none(), st.booleans(), st.tuples(ints), texts.map(StrKey), ints.map(IntKey),
                 st.builds(HashableHostile),
                 st.floats(allow_nan=False), st.frozensets(ints, max_size=2))
garbage = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.lists(kids, max_size=4).map(tuple), st.lists(kids, max_size=4).map(ListSub),
        st.lists(kids, max_size=4).map(TupleSub), st.dictionaries(keys, kids, max_size=4),
        st.dictionaries(keys, kids, max_size=4).map(DictSub),
    ),
    max_leaves=16,
)

RISK_MODEL = native.RiskModel.load(
    (Path(native.__file__).parent / "risk" / "models" / "gbdt_v1.json").read_bytes())

# Values that pass the checks of the parameter of that name, so that calls get past the first check
# and reach the later ones with garbage.
PLAUSIBLE: dict[str, list[Any]] = {
    "code": ["USD", "usd", "jpy", "KWD", "CLF", "amount_invalid"],
    "param": [None, "amount", "rules[2].currency"],
    "message": ["Bad 'amount'.", ""],
    "amount_minor": [1, 100, 10**15], "amount": [1, 100, 10**15, None], "percent_bps": [0, 290, 10_000],
    "fixed_minor": [0, 30], "min_minor": [None, 0, 50], "max_minor": [None, 10**15],
    "method": ["POST", "get", ""], "path": ["/v1/payments", "/v1/payments/p/capture", "/"],
    "body": [None, {}, {"a": [1, "b", None, True]}],
    "key": [None, "k", " ", "~" * 255], "idempotency_key": [None, "k", "~" * 255], "required": [True, False],
    "require_idempotency_key": [True, False], "metadata": [None, {}, {"k": "v"}],
    "currency": ["usd", "EUR", "JPY"], "source": ["acct_a"], "destination": ["acct_b"], "capture": [True, False],
    "description": [None, "d"], "expires_in_s": [None, 60, 2_592_000],
    "fee_rule": [None, (290, 30, None, None), [0, 0, 0, 0]], "reason": [None, "duplicate", "abandoned"],
    "allow_negative": [True, False],
    "rules": [[], [("USD", 290, 30, None, None)], [["jpy", 1, 2, None, 5]], [("rule_1", "block", ":amount: > 1")]],
    # The risk functions (a 16-byte id, a state, a time, a policy's parts).
    "source_id": [b"\x01" * 16], "destination_id": [b"\x02" * 16], "counterparty_id": [b"\x02" * 16],
    "tenant_id": [b"\x07" * 16], "state": [None, b"", b"\x01\x00junk"], "source_state": [None, b"\x01"],
    "destination_state": [None, b""], "now_s": [1_800_000_000, 0, -1], "source_created_at_s": [1_700_000_000],
    "destination_created_at_s": [1_700_000_000], "as_source": [True, False],
    "outcome": ["authorized", "declined", "blocked"], "predicates": [[":amount: > 1"], [], [":risk_level: = 'x'"]],
    "mode": ["enforce", "shadow", "off"], "elevated": [65, 0], "highest": [75, 100],
    "champion": [None, RISK_MODEL], "challenger": [None, RISK_MODEL], "challenger_percent": [0, 50, 100],
    "challenger_id": [None, "logreg_v1"], "shadows": [[], [RISK_MODEL]],
}


def value_for(name: str) -> st.SearchStrategy[Any]:
    plausible = PLAUSIBLE.get(name)
    if not plausible:
        return garbage
    # About two in three plausible: every check after the first gets its turn.
    return st.sampled_from([True, True, False]).flatmap(lambda ok: st.sampled_from(plausible) if ok else garbage)


UNKNOWN_KEYWORDS = ["bogus", "self", "args", "kwargs", "fee_rule", "amount", "path", "code", "key"]


@st.composite
def calls(draw: st.DrawFn, name: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments for ``name``: mostly a call that fits its signature (optional arguments left out at
    times, positional-or-keyword ones given either way), sometimes one of a wrong shape."""
    if name in NO_CONSTRUCTOR:
        return (tuple(draw(st.lists(garbage, max_size=3))),
                draw(st.dictionaries(st.sampled_from(UNKNOWN_KEYWORDS), garbage, max_size=2)))
    signature = SIGNATURES[name]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for p in signature.parameters.values():
        if p.default is not p.empty and draw(st.integers(0, 3)) == 0:
            continue
        value = draw(value_for(p.name))
        if p.kind is p.POSITIONAL_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and not kwargs and draw(st.booleans())):
            args.append(value)
        else:
            kwargs[p.name] = value
    shape = draw(st.sampled_from(["fits"] * 5 + ["extra", "unknown", "missing", "by_position", "duplicate"]))
    if shape == "extra":
        args.append(draw(garbage))
    elif shape == "unknown":
        kwargs[draw(st.sampled_from(UNKNOWN_KEYWORDS))] = draw(garbage)
    elif shape == "missing" and (args or kwargs):
        if kwargs and draw(st.booleans()):
            kwargs.pop(draw(st.sampled_from(sorted(kwargs))))
        elif args:
            args.pop()
    elif shape == "by_position" and kwargs:
        args.extend(kwargs.pop(name) for name in list(kwargs))
    elif shape == "duplicate" and args:
        names = [p.name for p in signature.parameters.values()]
        kwargs[names[0] if names else "x"] = draw(garbage)
    return tuple(args), kwargs


# --- the property --------------------------------------------------------------------------------


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 4, 60, 60, 6, 6


class Call:
    """A call, described (shortly: arguments may be deep or cyclic) only when an assertion fails."""

    def __init__(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.name, self.args, self.kwargs = name, args, kwargs

    def __str__(self) -> str:
        return f"{self.name}(*{_REPR.repr(self.args)}, **{_REPR.repr(self.kwargs)})"


def check_core_error(e: BaseException, where: Call) -> None:
    assert type(e) is native.CoreError, where
    assert isinstance(e, ValueError)
    assert type(e.code) is str and e.code, where
    assert e.code != "internal_error", f"{where}: a panic inside the core ({e.message})"
    assert e.param is None or type(e.param) is str, where
    assert type(e.message) is str and e.message, where
    assert same_text(str(e), e.message), where
    assert len(e.args) == 3, where
    assert all(same_text(a, b) for a, b in zip(e.args, (e.code, e.param, e.message), strict=True)), where
    assert isinstance(repr(e), str)


def exercise(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Calls ``name``; asserts the outcome is one the stub allows; returns ``"ok"``, ``"core_error"``
    or ``"type_error"``."""
    fn = getattr(native, name)
    bound: dict[str, Any] | None = None
    if name not in NO_CONSTRUCTOR:
        try:
            bound = dict(SIGNATURES[name].bind(*args, **kwargs).arguments)
        except TypeError:
            pass
    fits = bound is not None
    where = Call(name, args, kwargs)
    try:
        result = fn(*args, **kwargs)
    except native.CoreError as e:
        assert fits, f"{where}: CoreError for a call that does not fit the signature"
        check_core_error(e, where)
        return "core_error"
    except TypeError as e:
        if name == "CoreError" and bound is not None and any(
                not isinstance(v, str) for k, v in bound.items() if not (k == "param" and v is None)):
            return "type_error"  # the exception's own fields are typed str (see the module docstring)
        assert not fits, f"{where}: TypeError for a call that fits the signature: {e!r}"
        assert type(e) is TypeError, f"{where}: {type(e).__name__} instead of pyo3's TypeError"
        return "type_error"
    except BaseException as e:  # PanicException is a BaseException
        if isinstance(e, KeyboardInterrupt):
            raise
        raise AssertionError(f"{where} raised {type(e).__module__}.{type(e).__name__}: {e!r}") from e
    assert fits, f"{where}: a call that does not fit the signature returned {result!r}"
    declared = RETURNS[name]
    assert conforms(result, declared), f"{where} returned {result!r}, not {ast.unparse(declared) if declared else None}"
    if name == "CoreError":
        assert bound is not None
        fields = (result.code, result.param, result.message)
        assert all(same_text(a, b) for a, b in zip(fields, (bound["code"], bound["param"], bound["message"]),
                                                     strict=True)), where
        assert all(same_text(a, b) for a, b in zip(result.args, fields, strict=True)), where
        assert same_text(str(result), result.message)
        assert isinstance(repr(result), str)
    return "ok"


def same_text(a: Any, b: Any) -> bool:
    """``a == b`` for str or None, without calling the (raising) __eq__ of a str subclass."""
    if a is None or b is None:
        return a is None and b is None
    return isinstance(a, str) and isinstance(b, str) and str.__eq__(a, b) is True


def test_the_stub_declares_what_the_module_exports() -> None:
    assert sorted(ALL) == sorted(native.__all__) == sorted(set(FUNCTIONS) | set(CLASSES) | set(CONSTANTS))
    for name in FUNCTIONS:  # the runtime signatures are the declared ones
        assert str(inspect.signature(getattr(native, name))) == str(SIGNATURES[name]).replace(" /", ""), name
    for name, node in CONSTANTS.items():
        assert conforms(getattr(native, name), node.annotation), name


@pytest.mark.parametrize("name", CALLABLES)
@FUZZ
@given(data=st.data())
def test_garbage_in_core_error_or_documented_result_out(name: str, data: st.DataObject) -> None:
    args, kwargs = data.draw(calls(name), label="arguments")
    exercise(name, args, kwargs)


def plausible_call(name: str, **changes: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A call of ``name`` whose every argument passes its checks, but for ``changes``; by keyword,
    except for positional-only parameters."""
    if name in NO_CONSTRUCTOR:
        return tuple(changes.values()), {}
    params = SIGNATURES[name].parameters.values()
    values = {p.name: PLAUSIBLE.get(p.name, ["x"])[0] for p in params} | changes
    positional = {p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_ONLY}
    return (tuple(v for n, v in values.items() if n in positional),
            {n: v for n, v in values.items() if n not in positional})


def parameter_names(name: str) -> list[str]:
    return ["no_constructor"] if name in NO_CONSTRUCTOR else list(SIGNATURES[name].parameters)


@pytest.mark.parametrize("name", CALLABLES)
def test_every_odd_value_in_every_argument(name: str) -> None:
    """Each odd value, alone, in each argument of a call that otherwise passes the checks."""
    for build in [*ODD_BUILDERS, *(lambda v=v: v for v in ODD_SCALARS)]:
        for target in parameter_names(name):
            exercise(name, *plausible_call(name, **{target: build()}))


HUGE: list[Callable[[], Any]] = [
    lambda: shared(40), lambda: {"k": shared(40)}, lambda: [("USD", 0, 0, None, shared(40))],
    lambda: list(range(1_100_000)), lambda: {str(i): "v" for i in range(600_000)},
]


@pytest.mark.parametrize("name", [n for n in CALLABLES if n in FUNCTIONS])
def test_huge_arguments_are_refused_quickly(name: str) -> None:
    """An argument that is small in memory but huge when read (a chain of lists each holding the next
    twice: 2**40 paths) or just huge (over a million values) is refused without reading it all."""
    for i, target in enumerate(parameter_names(name)):
        huge = HUGE[(i + CALLABLES.index(name)) % len(HUGE)]()
        started = time.monotonic()
        outcome = exercise(name, *plausible_call(name, **{target: huge}))
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"{name}({target}=<huge>) took {elapsed:.1f} s ({outcome})"

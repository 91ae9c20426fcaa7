"""The Rust core (``paysvc._native``) against the plain-Python reference (``native_reference``).

For every exported function, generated inputs (valid ones, edge values and garbage) go to both;
they must return equal results, or both fail with the same ``(code, param)``. The core may only
ever raise ``CoreError``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import string
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import native_reference as ref
from paysvc import _native as native

I64_MIN, I64_MAX = ref.I64_MIN, ref.I64_MAX
M = 10**15

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PLAN_FIELDS = {
    native.PaymentPlan: ("amount", "currency", "source", "destination", "capture", "description", "metadata",
                         "expires_in_s", "fee", "net", "fingerprint"),
    native.AccountPlan: ("currency", "allow_negative", "metadata", "fingerprint"),
    native.FeeRule: ("currency", "percent_bps", "fixed", "min", "max"),
    native.CapturePlan: ("amount", "fingerprint"),
    native.CancelPlan: ("reason", "fingerprint"),
    native.RefundPlan: ("amount", "metadata", "fingerprint"),
}


def plain(value: Any) -> Any:
    """Plans (native or reference) as dicts, lists of them as lists, anything else as is."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    if type(value) in PLAN_FIELDS:
        return {name: getattr(value, name) for name in PLAN_FIELDS[type(value)]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def run_native(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "ok", plain(fn(*args, **kwargs))
    except native.CoreError as e:
        assert isinstance(e, ValueError)
        assert isinstance(e.code, str) and e.code
        assert e.param is None or isinstance(e.param, str)
        assert isinstance(e.message, str) and e.message
        assert str(e) == e.message
        assert e.args == (e.code, e.param, e.message)
        return "error", (e.code, e.param)


def same(name: str, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """Calls ``name`` in the core and in the reference; asserts equal outcomes; returns the core's."""
    got = run_native(getattr(native, name), *args, **kwargs)
    kind, value = ref.call(getattr(ref, name), *args, **kwargs)
    want = (kind, plain(value))
    assert got == want, f"{name}{args}{kwargs}: core {got!r} != reference {want!r}"
    return got


def canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_fingerprint(method: str, path: str, body: Any) -> str:
    text = method.upper() + "\n" + path + "\n" + canonical(body)
    return hashlib.sha256(text.encode()).hexdigest()


# --- strategies -------------------------------------------------------------------------------

EDGE_INTS = [0, 1, -1, 2, M - 1, M, M + 1, 10_000, 10_001, 9_999, 59, 60, 61, 604_800, 2_592_000, 2_592_001,
             I64_MAX, I64_MAX + 1, I64_MIN, I64_MIN - 1, 2**100, -(2**100)]
edge_ints = st.sampled_from(EDGE_INTS)
any_ints = st.one_of(edge_ints, st.integers(), st.integers(min_value=0, max_value=M + 1))
not_ints = st.sampled_from([None, True, False, 1.0, 0.5, "1", b"1", [1], (1,), {"a": 1}, float("nan"), 1j])
int_args = st.one_of(any_ints, any_ints, any_ints, not_ints)
opt_int_args = st.one_of(st.none(), int_args)

ALL_CODES = sorted(ref.CURRENCIES)
CODES_BY_EXPONENT = {e: [c for c in ALL_CODES if ref.CURRENCIES[c] == e] for e in (0, 2, 3, 4)}
BAD_CODES = ["XAU", "XAG", "XDR", "XXX", "XTS", "XSU", "XUA", "HRK", "SLL", "ANG", "BGN", "CUC", "ZWL",
             "", "US", "USDD", " USD", "U5D", "\u0131qd", "\u017fek", "\uff35SD", "\ud800SD", "usd\n"]
currencies = st.one_of(
    st.sampled_from(ALL_CODES),
    st.sampled_from(ALL_CODES).map(str.lower),
    st.sampled_from(ALL_CODES).map(lambda c: c[0].lower() + c[1:]),
    st.sampled_from(BAD_CODES),
    st.text(alphabet=string.ascii_letters, min_size=3, max_size=3),
    st.text(max_size=4),
    st.sampled_from([None, 840, b"USD", ["USD"]]),
)

surrogates = st.characters(categories=["Cs"])
texts = st.text()  # any code point but surrogates: control characters, DEL, non-ASCII, astral
texts_with_surrogates = st.builds(lambda a, s, b: a + s + b, st.text(max_size=3), surrogates, st.text(max_size=3))


def sized(lengths: list[int]) -> st.SearchStrategy[str]:
    """Strings of exactly these lengths (in code points), of ASCII, 2-byte, 3-byte or 4-byte characters."""
    chars = st.sampled_from(["a", "\xe9", "\u20ac", "\U0001f600"])
    return st.builds(lambda n, c: c * n, st.sampled_from(lengths), chars)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(I64_MIN, I64_MAX), edge_ints.filter(
    lambda i: I64_MIN <= i <= I64_MAX), texts)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(texts, children, max_size=4),
    ),
    max_leaves=20,
)


class Opaque:
    pass


garbage_scalars = st.one_of(
    st.floats(allow_nan=True), st.binary(max_size=4), st.sampled_from([Opaque(), object(), {1, 2}, frozenset(), 1j,
                                                                    bytearray(b"x"), range(3), Ellipsis]),
    st.sampled_from([I64_MAX + 1, I64_MIN - 1, 2**64, 10**40, -(10**40)]), texts_with_surrogates,
)
garbage_values = st.recursive(
    st.one_of(json_scalars, garbage_scalars),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.one_of(texts, texts_with_surrogates, st.integers(), st.none(), st.booleans(),
                                  st.tuples(st.integers())), children, max_size=3),
    ),
    max_leaves=12,
)
anything = st.one_of(garbage_values, int_args, texts, currencies)


def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any], odds: int = 9) -> st.SearchStrategy[Any]:
    """``valid`` about ``odds`` times in ``odds + 1``, else ``invalid``: so that generated requests
    often get past the first checks and fail (or pass) at every later one."""
    return st.sampled_from([False] + [True] * odds).flatmap(lambda ok: valid if ok else invalid)


def fixed_one_by_one(name: str, broken: dict[str, Any], first: tuple[str, str | None],
                     fixes: Sequence[tuple[str, Any, tuple[str, str | None]]], path: str) -> Any:
    """Calls ``name`` with every field of ``broken`` wrong (``first`` must be reported), then fixes
    them in order (each fix must bring the next error) and last the path; returns the plan."""
    assert same(name, **broken) == ("error", first)
    for field_name, value, expected in fixes:
        broken[field_name] = value
        assert same(name, **broken) == ("error", expected), field_name
    broken["path"] = path
    kind, plan = same(name, **broken)
    assert kind == "ok"
    return plan


def nested(depth: int, leaf: Any = 1, kind: str = "list") -> Any:
    v = leaf
    for _ in range(depth):
        v = [v] if kind == "list" else {"k": v}
    return v


# --- module, constants, CoreError -------------------------------------------------------------


def test_constants() -> None:
    assert native.MAX_AMOUNT_MINOR == 10**15 == ref.MAX_AMOUNT_MINOR
    assert native.MAX_EXPIRES_IN_S == 2_592_000 == ref.MAX_EXPIRES_IN_S
    assert native.MIN_EXPIRES_IN_S == 60 == ref.MIN_EXPIRES_IN_S
    assert native.DEFAULT_EXPIRES_IN_S == 604_800 == ref.DEFAULT_EXPIRES_IN_S
    assert native.CANCELLATION_REASONS == ("requested_by_customer", "duplicate", "fraudulent", "abandoned")
    assert native.CANCELLATION_REASONS == ref.CANCELLATION_REASONS


def test_core_error_is_a_value_error_with_fields() -> None:
    assert issubclass(native.CoreError, ValueError)
    with pytest.raises(ValueError, match="between 0 and 1000000000000000") as info:
        native.compute_fee(M + 1, 0, 0, None, None)
    e = info.value
    assert isinstance(e, native.CoreError)
    assert (e.code, e.param) == ("parameter_invalid", "amount")
    assert str(e) == e.message
    try:
        native.normalize_currency("nope")
    except native.CoreError as caught:
        assert (caught.code, caught.param) == ("currency_invalid", "currency")
        assert "ISO 4217" in caught.message
    else:
        pytest.fail("no CoreError")


def test_core_error_can_be_made_in_python() -> None:
    for e in (native.CoreError("c", None, "m"), native.CoreError(code="c", param=None, message="m")):
        assert (e.code, e.param, e.message, str(e), e.args) == ("c", None, "m", "m", ("c", None, "m"))
    e = native.CoreError("amount_invalid", "amount", "Bad 'amount'.")
    assert repr(e) == "CoreError('amount_invalid', 'amount', \"Bad 'amount'.\")"
    copy = pickle.loads(pickle.dumps(e))  # noqa: S301 - our own object
    assert (type(copy), copy.code, copy.param, copy.message) == (native.CoreError, e.code, e.param, e.message)
    with pytest.raises(native.CoreError):
        raise e
    with pytest.raises(AttributeError):
        e.code = "other"  # type: ignore[misc]


def test_panics_become_internal_errors() -> None:
    with pytest.raises(native.CoreError) as info:
        native._panic_for_tests()
    assert (info.value.code, info.value.param, info.value.message) == (
        "internal_error", None, "internal error in paysvc core")


def test_plans_are_frozen() -> None:
    payment = native.prepare_payment(path="/v1/payments", amount=10, currency="usd", source="a", destination="b",
                                     idempotency_key="k")
    account = native.prepare_account(currency="eur", metadata={"a": "b"})
    (rule,) = native.prepare_fee_schedule([("jpy", 1, 2, None, 5)])
    capture = native.prepare_capture(path="/v1/payments/p/capture", amount=5)
    cancel = native.prepare_cancel(path="/v1/payments/p/cancel")
    refund = native.prepare_refund(path="/v1/payments/p/refunds", metadata={"a": "b"}, idempotency_key="k")
    for obj in (payment, account, rule, capture, cancel, refund):
        for name in PLAN_FIELDS[type(obj)]:
            with pytest.raises(AttributeError):
                setattr(obj, name, getattr(obj, name))
        with pytest.raises(AttributeError):
            obj.extra = 1  # type: ignore[union-attr]
        assert type(obj).__name__ in repr(obj)
    # metadata is a fresh dict every time: changing it changes nothing
    for plan in (account, refund):
        plan.metadata["a"] = "changed"
        assert plan.metadata == {"a": "b"}
    assert (repr(capture), repr(cancel), repr(refund)) == (
        "CapturePlan(amount=5)", "CancelPlan(reason='requested_by_customer')", "RefundPlan(amount=None)")


def test_plan_classes_cannot_be_built_or_subclassed_from_python() -> None:
    for cls in PLAN_FIELDS:
        with pytest.raises(TypeError):
            cls()
        with pytest.raises(TypeError):
            type("Sub", (cls,), {})


# --- currencies -------------------------------------------------------------------------------


def test_currency_table_matches_reference_exhaustively() -> None:
    letters = string.ascii_uppercase
    for a in letters:
        for b in letters:
            for c in letters:
                code = a + b + c
                same("normalize_currency", code)
                same("currency_exponent", code.lower())
    assert len(ref.CURRENCIES) == 165


@pytest.mark.parametrize("exponent", [0, 2, 3, 4])
def test_every_currency_of_each_exponent(exponent: int) -> None:
    codes = CODES_BY_EXPONENT[exponent]
    assert codes
    for code in codes:
        assert native.currency_exponent(code) == exponent
        assert native.currency_exponent(code.lower()) == exponent
        assert native.normalize_currency(code.title()) == code


def test_known_exponents() -> None:
    expected = {"USD": 2, "EUR": 2, "JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
                "LYD": 3, "IQD": 3, "CLF": 4, "UYW": 4, "XCG": 2, "ZWG": 2, "SLE": 2, "VES": 2}
    for code, exponent in expected.items():
        assert native.currency_exponent(code) == exponent
    for code in BAD_CODES:
        same("currency_exponent", code)
        with pytest.raises(native.CoreError):
            native.normalize_currency(code)


@MANY
@given(currencies)
def test_currency_functions(code: Any) -> None:
    same("normalize_currency", code)
    same("currency_exponent", code)


# --- fees -------------------------------------------------------------------------------------


fee_ints = mostly(st.integers(0, M), int_args, odds=3)


@MANY
@given(fee_ints, mostly(st.integers(0, 10_000), int_args, odds=3), fee_ints, st.one_of(st.none(), fee_ints),
       st.one_of(st.none(), fee_ints))
def test_compute_fee_any_arguments(amount: Any, bps: Any, fixed: Any, lo: Any, hi: Any) -> None:
    same("compute_fee", amount, bps, fixed, lo, hi)


@MANY
@given(
    st.one_of(st.integers(0, M), st.sampled_from([0, 1, M, M - 1])),
    st.one_of(st.integers(0, 10_000), st.sampled_from([0, 1, 5_000, 9_999, 10_000])),
    st.one_of(st.integers(0, M), st.sampled_from([0, 1, M])),
    st.one_of(st.none(), st.integers(0, M), st.sampled_from([0, M])),
    st.one_of(st.none(), st.integers(0, M), st.sampled_from([0, M])),
)
def test_compute_fee_valid_arguments(amount: int, bps: int, fixed: int, lo: int | None, hi: int | None) -> None:
    kind, fee = same("compute_fee", amount, bps, fixed, lo, hi)
    assert kind == "ok"
    assert 0 <= fee <= 2 * M
    if hi is not None:
        assert fee <= hi
    elif lo is not None:
        assert fee >= lo


# (bps, amount) families where amount * bps == k * 10000 + 5000: an exact tie.
TIES = st.one_of(
    st.builds(lambda k: (5_000, 2 * k + 1), st.integers(0, (M - 1) // 2)),
    st.builds(lambda k: (2_500, 4 * k + 2), st.integers(0, (M - 2) // 4)),
    st.builds(lambda k: (1_250, 8 * k + 4), st.integers(0, (M - 4) // 8)),
    st.builds(lambda k: (625, 16 * k + 8), st.integers(0, (M - 8) // 16)),
    st.builds(lambda k: (1, 10_000 * k + 5_000), st.integers(0, (M - 5_000) // 10_000)),
    st.builds(lambda k: (5, 2_000 * k + 1_000), st.integers(0, (M - 1_000) // 2_000)),
)


@MANY
@given(TIES, st.integers(0, 1_000))
@example((5_000, 1), 0)
@example((5_000, 3), 0)
@example((1, 5_000), 0)
@example((1, 15_000), 0)
@example((5_000, M - 1), 0)
def test_half_even_ties(tie: tuple[int, int], fixed: int) -> None:
    bps, amount = tie
    assert amount * bps % 10_000 == 5_000
    kind, fee = same("compute_fee", amount, bps, fixed, None, None)
    assert kind == "ok"
    percent = fee - fixed
    assert percent % 2 == 0
    assert percent in (amount * bps // 10_000, amount * bps // 10_000 + 1)


def test_fee_examples() -> None:
    assert native.compute_fee(10_000, 290, 30, None, None) == 320
    assert native.compute_fee(250, 100, 0, None, None) == 2  # 2.5 -> 2
    assert native.compute_fee(350, 100, 0, None, None) == 4  # 3.5 -> 4
    assert native.compute_fee(251, 100, 0, None, None) == 3
    assert native.compute_fee(0, 10_000, 0, None, None) == 0
    assert native.compute_fee(M, 10_000, M, None, None) == 2 * M
    assert native.compute_fee(M, 10_000, M, None, M) == M  # max clamp
    assert native.compute_fee(1, 0, 0, 7, None) == 7  # min clamp
    assert native.compute_fee(1, 0, 0, 9, 8) == 8  # max applied after min
    for bad in (I64_MAX + 1, I64_MIN - 1, 2**200, -(2**200)):
        for i in range(5):
            args: list[Any] = [1, 1, 1, None, None]
            args[i] = bad
            assert same("compute_fee", *args)[0] == "error"


# --- fingerprints -----------------------------------------------------------------------------


def reorder(value: Any) -> Any:
    """The same JSON value with every dict's keys inserted in reverse order."""
    if isinstance(value, dict):
        return {k: reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list | tuple):
        return type(value)(reorder(v) for v in value)
    return value


@MANY
@given(st.sampled_from(["POST", "post", "Get", "pUt", ""]), texts, json_values)
def test_fingerprint_matches_spec(method: str, path: str, body: Any) -> None:
    kind, digest = same("fingerprint", method, path, body)
    assert kind == "ok"
    assert digest == spec_fingerprint(method, path, body)
    assert native.fingerprint(method, path, reorder(body)) == digest
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")


@FAST
@given(st.dictionaries(texts, json_values, min_size=2, max_size=6), st.randoms(use_true_random=False))
def test_fingerprint_ignores_key_order(body: dict[str, Any], rnd: Any) -> None:
    keys = list(body)
    rnd.shuffle(keys)
    shuffled = {k: body[k] for k in keys}
    assert native.fingerprint("POST", "/p", shuffled) == native.fingerprint("POST", "/p", body)


def test_fingerprint_string_escapes() -> None:
    every_low_char = "".join(chr(i) for i in range(0x20)) + '"\\/\x7f\x80\u2028\u2029\ufeff\U0001f600'
    body = {every_low_char: [every_low_char, "caf\xe9", "\u65e5\u672c"], "\U0001f600": 1, "\ufb01": 2, "": None}
    assert native.fingerprint("POST", "/p", body) == spec_fingerprint("POST", "/p", body)
    assert native.fingerprint("post", "/p", None) == spec_fingerprint("POST", "/p", None)
    known = hashlib.sha256(b'POST\n/v1/payments\n{"a":1}').hexdigest()
    assert native.fingerprint("post", "/v1/payments", {"a": 1}) == known


def test_fingerprint_depth_limit() -> None:
    for kind in ("list", "dict"):
        assert same("fingerprint", "POST", "/", nested(32, kind=kind))[0] == "ok"
        assert same("fingerprint", "POST", "/", nested(33, kind=kind)) == ("error", ("parameter_invalid", None))
        assert same("fingerprint", "POST", "/", nested(1000, kind=kind)) == ("error", ("parameter_invalid", None))
    loop: list[Any] = []
    loop.append(loop)
    assert same("fingerprint", "POST", "/", loop)[0] == "error"
    wide: list[Any] = []
    wide.extend([wide] * 50)
    assert same("fingerprint", "POST", "/", wide)[0] == "error"
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert same("fingerprint", "POST", "/", cyclic)[0] == "error"


@pytest.mark.parametrize("body", [
    1.5, float("nan"), b"x", {1: "a"}, {None: 1}, {"a": {(1,): 2}}, [1, 2.0], {"a": object()}, I64_MAX + 1,
    I64_MIN - 1, "\ud800", {"\udfff": 1}, {1, 2}, Opaque(),
])
def test_fingerprint_rejects_non_json(body: Any) -> None:
    assert same("fingerprint", "POST", "/p", body) == ("error", ("parameter_invalid", None))


def test_fingerprint_method_and_path() -> None:
    assert same("fingerprint", "P\xd6ST", "/", None) == ("error", ("parameter_invalid", "method"))
    assert same("fingerprint", None, "/", None) == ("error", ("parameter_invalid", "method"))
    assert same("fingerprint", "POST", 1, None) == ("error", ("parameter_invalid", "path"))
    assert same("fingerprint", "POST", "\ud800", None) == ("error", ("parameter_invalid", "path"))
    assert same("fingerprint", "POST", "/caf\xe9", None)[0] == "ok"


@MANY
@given(anything, anything, garbage_values)
def test_fingerprint_garbage(method: Any, path: Any, body: Any) -> None:
    same("fingerprint", method, path, body)


@FAST
@given(st.sampled_from(["POST", "GET"]), st.sampled_from(["/v1/payments", "/x"]), garbage_values)
def test_fingerprint_garbage_body(method: str, path: str, body: Any) -> None:
    same("fingerprint", method, path, body)


# --- Idempotency-Key and metadata -------------------------------------------------------------

keys = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    sized([0, 1, 254, 255, 256]).filter(lambda s: s[:1] in ("", "a")),
    st.text(max_size=5),
    texts_with_surrogates,
    st.sampled_from(["caf\xe9", "a\tb", "\x7f", "\x1f", " ", "~", 1, b"k", True]),
)


@MANY
@given(keys, st.one_of(st.booleans(), st.booleans(), st.sampled_from([None, 1, 0, "yes"])))
def test_check_idempotency_key(key: Any, required: Any) -> None:
    kind, result = same("check_idempotency_key", key, required)
    if kind == "ok":
        assert result is None


def test_idempotency_key_messages() -> None:
    with pytest.raises(native.CoreError) as info:
        native.check_idempotency_key(None, True)
    assert (info.value.code, info.value.param, info.value.message) == (
        "idempotency_key_missing", "Idempotency-Key", "An Idempotency-Key header is required for this request.")
    assert native.check_idempotency_key(None, False) is None
    assert native.check_idempotency_key("k" * 255, True) is None
    for bad in ("", "k" * 256, "caf\xe9", "a\nb"):
        with pytest.raises(native.CoreError) as info:
            native.check_idempotency_key(bad, False)
        assert (info.value.code, info.value.param) == ("idempotency_key_invalid", "Idempotency-Key")


metadata_keys = st.one_of(st.text(max_size=6), sized([0, 1, 39, 40, 41]), texts_with_surrogates,
                          st.sampled_from([1, None, ("t",), True]))
metadata_values = st.one_of(st.text(max_size=8), sized([0, 499, 500, 501]), texts_with_surrogates,
                            st.sampled_from([1, None, ["x"], {"a": "b"}, 1.5, b"v"]))
good_metadata = st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=5)
metadatas = st.one_of(
    st.none(),
    good_metadata,
    good_metadata,
    st.dictionaries(metadata_keys, metadata_values, max_size=4),
    st.integers(48, 52).map(lambda n: {f"k{i}": "v" for i in range(n)}),
    st.sampled_from([[], [("a", "b")], "a=b", 1]),
)


@MANY
@given(metadatas)
def test_validate_metadata(metadata: Any) -> None:
    same("validate_metadata", metadata)


def test_metadata_limits_count_code_points() -> None:
    assert native.validate_metadata({"\xe9" * 40: "\u20ac" * 500, "\U0001f600" * 40: ""}) is None
    with pytest.raises(native.CoreError) as info:
        native.validate_metadata({"x" * 41: "v"})
    assert info.value.code == "metadata_invalid" and info.value.param == "metadata"
    assert "is longer than 40 characters" in info.value.message and "xxxx" in info.value.message
    with pytest.raises(native.CoreError, match="'count'"):
        native.validate_metadata({"count": 1})


# --- plans ------------------------------------------------------------------------------------

good_codes = st.one_of(st.sampled_from(ALL_CODES), st.sampled_from(ALL_CODES).map(str.lower))
bad_account_ids = st.one_of(sized([0, 256]), texts_with_surrogates, st.sampled_from([None, 1, b"acct_a"]))
sources = mostly(st.one_of(st.sampled_from(["acct_a", "a"]), sized([1, 255])), bad_account_ids)
destinations = mostly(st.one_of(st.sampled_from(["acct_b", "acct_c", "b"]), sized([1, 255])),
                      st.one_of(bad_account_ids, st.just("acct_a")))
descriptions = mostly(st.one_of(st.none(), st.text(max_size=10), sized([999, 1000])),
                      st.one_of(sized([1001]), texts_with_surrogates, st.sampled_from([1, b"d"])))
metadata_or_none = mostly(st.one_of(st.none(), good_metadata), metadatas, odds=5)
expiries = mostly(st.none(), mostly(st.one_of(st.integers(60, 2_592_000), st.sampled_from([60, 2_592_000])),
                                    st.one_of(edge_ints, st.integers(0, 3_000_000),
                                              st.sampled_from(["60", 60.0, True])), odds=2), odds=2)
good_fee_rules = st.tuples(
    st.one_of(st.integers(0, 10_000), st.sampled_from([0, 10_000])),
    st.one_of(st.integers(0, 2_000), st.sampled_from([0, M])),
    st.one_of(st.none(), st.integers(0, 2_000)),
    st.one_of(st.none(), st.integers(0, 2_000), st.sampled_from([0, M])),
)
fee_rules = mostly(
    st.one_of(st.none(), good_fee_rules, good_fee_rules.map(list)),
    st.one_of(st.tuples(int_args, int_args, opt_int_args, opt_int_args),
              st.sampled_from([(), (1, 2, 3), (1, 2, 3, 4, 5), "rule", 5, {"percent_bps": 1}])),
)
amounts = mostly(st.one_of(st.integers(1, 100_000), st.integers(1, M), st.sampled_from([1, 2, M])),
                 st.one_of(edge_ints, not_ints))
idem_keys = mostly(st.one_of(st.sampled_from(["key-1", "k", None]), sized([1, 255]).filter(lambda s: s[0] == "a")),
                   keys)
paths = mostly(st.one_of(st.sampled_from(["/v1/payments", "/v1/payments/"]), texts),
               st.sampled_from([None, 1, "\ud800"]))
optional_idem_keys = mostly(st.one_of(st.none(), idem_keys), keys, odds=3)
flags = mostly(st.booleans(), st.sampled_from([None, 0, 1, "true"]))


@MANY
@given(
    path=paths, amount=amounts, currency=mostly(good_codes, currencies), source=sources, destination=destinations,
    capture=flags, description=descriptions, metadata=metadata_or_none, expires_in_s=expiries, fee_rule=fee_rules,
    idempotency_key=idem_keys, require_idempotency_key=flags,
)
def test_prepare_payment(**kwargs: Any) -> None:
    same("prepare_payment", **kwargs)


@MANY
@given(
    amount=st.one_of(st.integers(1, 100_000), st.sampled_from([1, 2, M])),
    currency=st.sampled_from(ALL_CODES),
    capture=st.booleans(),
    description=st.one_of(st.none(), st.text(max_size=20)),
    metadata=st.one_of(st.none(), good_metadata),
    expires_in_s=st.one_of(st.none(), st.integers(60, 2_592_000)),
    fee_rule=st.one_of(st.none(), good_fee_rules),
)
def test_prepare_payment_mostly_valid(amount: int, currency: str, capture: bool, description: str | None,
                                      metadata: dict[str, str] | None, expires_in_s: int | None,
                                      fee_rule: tuple[int, int, int | None, int | None] | None) -> None:
    kind, plan = same(
        "prepare_payment", path="/v1/payments", amount=amount, currency=currency.lower(), source="acct_a",
        destination="acct_b", capture=capture, description=description, metadata=metadata,
        expires_in_s=None if capture else expires_in_s, fee_rule=fee_rule, idempotency_key="key-1",
    )
    if kind == "error":
        assert plan == ("amount_too_small", "amount")
        return
    assert plan["currency"] == currency
    body = {"amount": amount, "currency": currency, "source": "acct_a", "destination": "acct_b",
            "capture": capture, "description": description, "metadata": metadata or {},
            "expires_in_s": plan["expires_in_s"]}
    assert plan["fingerprint"] == spec_fingerprint("POST", "/v1/payments", body)
    if capture:
        assert plan["expires_in_s"] is None
        assert plan["fee"] + plan["net"] == amount and 0 <= plan["fee"] <= amount
    else:
        assert plan["expires_in_s"] == (expires_in_s or native.DEFAULT_EXPIRES_IN_S)
        assert (plan["fee"], plan["net"]) == (None, None)


def test_prepare_payment_defaults_and_order() -> None:
    base: dict[str, Any] = {"path": "/v1/payments", "amount": 500, "currency": "Usd", "source": "a",
                            "destination": "b", "idempotency_key": "k"}
    plan = native.prepare_payment(**base)
    assert (plan.capture, plan.description, plan.metadata, plan.expires_in_s, plan.fee, plan.net) == (
        True, None, {}, None, 0, 500)
    hold = native.prepare_payment(**{**base, "capture": False})
    assert (hold.expires_in_s, hold.fee, hold.net) == (native.DEFAULT_EXPIRES_IN_S, None, None)
    with pytest.raises(native.CoreError) as info:
        native.prepare_payment(**{**base, "expires_in_s": 60})
    assert (info.value.code, info.value.param, info.value.message) == (
        "parameter_invalid", "expires_in_s", "expires_in_s can only be set when capture is false")
    with pytest.raises(native.CoreError) as info:
        native.prepare_payment(**{**base, "fee_rule": (0, 501, None, None)})
    assert (info.value.code, info.value.param) == ("amount_too_small", "amount")
    assert "501" in info.value.message and "500" in info.value.message
    # every field wrong: the first in the documented order is reported
    broken: dict[str, Any] = {"path": 1, "amount": 0, "currency": "xau", "source": "", "destination": "",
                              "description": 5, "metadata": 5, "expires_in_s": 1, "fee_rule": "x",
                              "idempotency_key": None}
    fixes = [("amount", 10, ("currency_invalid", "currency")),
             ("currency", "eur", ("parameter_invalid", "source")),
             ("source", "a", ("parameter_invalid", "destination")),
             ("destination", "a", ("same_account", "destination")),
             ("destination", "b", ("parameter_invalid", "description")),
             ("description", None, ("metadata_invalid", "metadata")),
             ("metadata", {}, ("parameter_invalid", "expires_in_s")),
             ("expires_in_s", None, ("parameter_invalid", "fee_rule")),
             ("fee_rule", (0, 11, None, None), ("amount_too_small", "amount")),
             ("fee_rule", (0, 10, None, None), ("idempotency_key_missing", "Idempotency-Key")),
             ("idempotency_key", "k", ("parameter_invalid", "path"))]
    fixed_one_by_one("prepare_payment", broken, ("amount_invalid", "amount"), fixes, "/v1/payments")


@MANY
@given(currency=mostly(good_codes, currencies, odds=3), allow_negative=flags, metadata=metadata_or_none,
       idempotency_key=optional_idem_keys)
def test_prepare_account(**kwargs: Any) -> None:
    same("prepare_account", **kwargs)


def test_prepare_account_fingerprint() -> None:
    plan = native.prepare_account(currency="kwd", allow_negative=True, metadata={"owner": "ann"})
    body = {"currency": "KWD", "allow_negative": True, "metadata": {"owner": "ann"}}
    assert plan.fingerprint == spec_fingerprint("POST", "/v1/accounts", body)
    assert native.prepare_account(currency="KWD").fingerprint == spec_fingerprint(
        "POST", "/v1/accounts", {"currency": "KWD", "allow_negative": False, "metadata": {}})


good_schedule_rules = st.tuples(
    st.sampled_from(["usd", "EUR", "jpy", "Kwd", "clf", "XCG"]), st.integers(0, 10_000), st.integers(0, 100),
    st.one_of(st.none(), st.integers(0, 100)), st.one_of(st.none(), st.integers(0, 100)))
schedule_rules = mostly(
    st.one_of(good_schedule_rules, good_schedule_rules.map(list)),
    st.one_of(
        st.tuples(currencies, int_args, int_args, opt_int_args, opt_int_args),
        st.lists(st.integers(0, 5), max_size=6).map(tuple),
        st.sampled_from(["usd", None, 1]),
    ),
    odds=6,
)
schedules = mostly(
    st.one_of(st.lists(schedule_rules, max_size=5), st.lists(schedule_rules, max_size=5).map(tuple)),
    st.sampled_from([None, "rules", 1, {"usd": 1}]),
)


@MANY
@given(schedules)
def test_prepare_fee_schedule(rules: Any) -> None:
    same("prepare_fee_schedule", rules)


def test_prepare_fee_schedule_limits() -> None:
    codes = ALL_CODES[:165]
    ok = [(c.lower(), 1, 0, None, None) for c in reversed(codes)]
    kind, result = same("prepare_fee_schedule", ok)
    assert kind == "ok" and [r["currency"] for r in result] == sorted(codes)
    two_hundred = ok + [("usd", 1, 0, None, None)] * (200 - len(ok))
    assert same("prepare_fee_schedule", two_hundred) == ("error", ("parameter_invalid", "rules[165].currency"))
    too_many = [("usd", 1, 0, None, None)] * 201
    assert same("prepare_fee_schedule", too_many) == ("error", ("parameter_invalid", "rules"))
    assert same("prepare_fee_schedule", [("usd", 1, 0, 9, 8)]) == ("error", ("parameter_invalid", "rules[0].min"))
    assert same("prepare_fee_schedule", [("usd", 1, 0, 8, 8)])[0] == "ok"
    dup = [("usd", 1, 0, None, None), ("eur", 1, 0, None, None), ("USD", 2, 0, None, None)]
    assert same("prepare_fee_schedule", dup) == ("error", ("parameter_invalid", "rules[2].currency"))
    assert same("prepare_fee_schedule", []) == ("ok", [])


# --- captures, cancellations, refunds, settled fees -------------------------------------------

optional_amounts = mostly(st.one_of(st.none(), amounts), amounts, odds=2)
valid_amounts = st.one_of(st.integers(1, 100_000), st.sampled_from([1, 2, M]))
reasons = mostly(
    st.one_of(st.none(), st.sampled_from(ref.CANCELLATION_REASONS)),
    st.one_of(st.sampled_from(["expired", "Duplicate", "duplicate ", "", "\ud800", b"duplicate", ["duplicate"]]),
              st.text(max_size=8), not_ints),
    odds=4,
)


@MANY
@given(mostly(valid_amounts, amounts, odds=3), fee_rules)
@example(0, None)
@example(1, None)
@example(M, (10_000, 0, None, None))
@example(M + 1, None)
@example(I64_MAX, None)
@example(I64_MAX + 1, None)
@example(I64_MIN, None)
@example(I64_MIN - 1, None)
def test_settle_fee(amount: Any, fee_rule: Any) -> None:
    same("settle_fee", amount, fee_rule)


@MANY
@given(st.one_of(valid_amounts, st.integers(1, M)), st.one_of(st.none(), good_fee_rules))
def test_settle_fee_is_compute_fee_up_to_the_amount(amount: int, fee_rule: tuple[Any, ...] | None) -> None:
    kind, fee = same("settle_fee", amount, fee_rule)
    expected = 0 if fee_rule is None else native.compute_fee(amount, *fee_rule)
    if expected > amount:
        assert (kind, fee) == ("error", ("amount_too_small", "amount"))
    else:
        assert (kind, fee) == ("ok", expected)


def test_settle_fee_examples() -> None:
    assert native.settle_fee(10_000, (290, 30, None, None)) == 320
    assert native.settle_fee(10_000, None) == 0
    assert native.settle_fee(amount_minor=1, fee_rule=[0, 1, None, None]) == 1  # type: ignore[arg-type]
    with pytest.raises(native.CoreError) as info:
        native.settle_fee(500, (0, 501, None, None))
    assert (info.value.code, info.value.param, info.value.message) == (
        "amount_too_small", "amount", "The fee (501) is greater than the amount (500).")
    # the amount is checked first
    assert same("settle_fee", 0, "rule") == ("error", ("amount_invalid", "amount"))
    assert same("settle_fee", 1, "rule") == ("error", ("parameter_invalid", "fee_rule"))
    assert same("settle_fee", 1, (10_001, 0, None, None)) == ("error", ("parameter_invalid", "percent_bps"))


@MANY
@given(path=paths, amount=optional_amounts, idempotency_key=optional_idem_keys)
def test_prepare_capture(**kwargs: Any) -> None:
    same("prepare_capture", **kwargs)


@MANY
@given(st.one_of(st.none(), valid_amounts), st.sampled_from([None, "k"]))
def test_prepare_capture_mostly_valid(amount: int | None, key: str | None) -> None:
    path = "/v1/payments/pay_1/capture"
    kind, plan = same("prepare_capture", path=path, amount=amount, idempotency_key=key)
    assert kind == "ok"
    assert plan == {"amount": amount, "fingerprint": spec_fingerprint("POST", path, {"amount": amount})}


def test_prepare_capture_defaults_and_order() -> None:
    path = "/v1/payments/p/capture"
    plan = native.prepare_capture(path=path)
    assert plan.amount is None
    assert plan.fingerprint == spec_fingerprint("POST", path, {"amount": None})
    assert plan.fingerprint == native.prepare_capture(path=path, amount=None, idempotency_key="k").fingerprint
    broken: dict[str, Any] = {"path": None, "amount": M + 1, "idempotency_key": ""}
    fixes = [("amount", 10, ("idempotency_key_invalid", "Idempotency-Key")),
             ("idempotency_key", None, ("parameter_invalid", "path"))]
    done = fixed_one_by_one("prepare_capture", broken, ("amount_invalid", "amount"), fixes, path)
    assert done["amount"] == 10


@MANY
@given(path=paths, reason=reasons, idempotency_key=optional_idem_keys)
def test_prepare_cancel(**kwargs: Any) -> None:
    same("prepare_cancel", **kwargs)


@pytest.mark.parametrize("reason", [None, *native.CANCELLATION_REASONS])
def test_prepare_cancel_reasons(reason: str | None) -> None:
    path = "/v1/payments/p/cancel"
    kind, plan = same("prepare_cancel", path=path, reason=reason)
    expected = reason or "requested_by_customer"
    assert (kind, plan) == ("ok", {"reason": expected,
                                   "fingerprint": spec_fingerprint("POST", path, {"reason": expected})})


def test_prepare_cancel_defaults_and_order() -> None:
    path = "/v1/payments/p/cancel"
    assert native.prepare_cancel(path=path).fingerprint == native.prepare_cancel(
        path=path, reason="requested_by_customer", idempotency_key="k").fingerprint
    for bad in ("expired", "Duplicate", "", "\ud800", 1, True, ["duplicate"]):
        with pytest.raises(native.CoreError) as info:
            native.prepare_cancel(path=path, reason=bad)  # type: ignore[arg-type]
        assert (info.value.code, info.value.param, info.value.message) == (
            "parameter_invalid", "reason",
            "reason must be one of requested_by_customer, duplicate, fraudulent, abandoned.")
    broken: dict[str, Any] = {"path": 1, "reason": "expired", "idempotency_key": 7}
    fixes = [("reason", "abandoned", ("idempotency_key_invalid", "Idempotency-Key")),
             ("idempotency_key", None, ("parameter_invalid", "path"))]
    done = fixed_one_by_one("prepare_cancel", broken, ("parameter_invalid", "reason"), fixes, path)
    assert done["reason"] == "abandoned"


@MANY
@given(path=paths, amount=optional_amounts, metadata=metadata_or_none, idempotency_key=idem_keys,
       require_idempotency_key=flags)
def test_prepare_refund(**kwargs: Any) -> None:
    same("prepare_refund", **kwargs)


@MANY
@given(st.one_of(st.none(), valid_amounts), st.one_of(st.none(), good_metadata))
def test_prepare_refund_mostly_valid(amount: int | None, metadata: dict[str, str] | None) -> None:
    path = "/v1/payments/pay_1/refunds"
    kind, plan = same("prepare_refund", path=path, amount=amount, metadata=metadata, idempotency_key="key-1")
    body = {"amount": amount, "metadata": metadata or {}}
    assert (kind, plan) == ("ok", {"amount": amount, "metadata": metadata or {},
                                   "fingerprint": spec_fingerprint("POST", path, body)})


def test_prepare_refund_defaults_and_order() -> None:
    path = "/v1/payments/p/refunds"
    plan = native.prepare_refund(path=path, idempotency_key="k")
    assert (plan.amount, plan.metadata) == (None, {})
    assert plan.fingerprint == spec_fingerprint("POST", path, {"amount": None, "metadata": {}})
    assert plan.fingerprint == native.prepare_refund(path=path, amount=None, metadata={}, idempotency_key="other",
                                                     require_idempotency_key=False).fingerprint
    assert same("prepare_refund", path=path) == ("error", ("idempotency_key_missing", "Idempotency-Key"))
    assert same("prepare_refund", path=path, require_idempotency_key=False)[0] == "ok"
    broken: dict[str, Any] = {"path": b"/", "amount": 0, "metadata": {"k": 1}, "idempotency_key": None,
                              "require_idempotency_key": 1}
    fixes = [("amount", M, ("metadata_invalid", "metadata")),
             ("metadata", {"k": "v"}, ("parameter_invalid", "require_idempotency_key")),
             ("require_idempotency_key", True, ("idempotency_key_missing", "Idempotency-Key")),
             ("idempotency_key", "k" * 256, ("idempotency_key_invalid", "Idempotency-Key")),
             ("idempotency_key", "k" * 255, ("parameter_invalid", "path"))]
    done = fixed_one_by_one("prepare_refund", broken, ("amount_invalid", "amount"), fixes, path)
    assert done["metadata"] == {"k": "v"}


# --- garbage never raises anything but CoreError ----------------------------------------------


@MANY
@given(st.lists(anything, min_size=12, max_size=12))
def test_every_function_only_raises_core_error(args: list[Any]) -> None:
    same("currency_exponent", args[0])
    same("normalize_currency", args[1])
    same("compute_fee", *args[2:7])
    same("fingerprint", args[7], args[8], args[9])
    same("check_idempotency_key", args[10], args[11])
    same("validate_metadata", args[0])
    names = ("path", "amount", "currency", "source", "destination", "capture", "description", "metadata",
             "expires_in_s", "fee_rule", "idempotency_key", "require_idempotency_key")
    same("prepare_payment", **dict(zip(names, args, strict=True)))
    same("prepare_account", currency=args[0], allow_negative=args[1], metadata=args[2], idempotency_key=args[3])
    same("prepare_fee_schedule", args[4])
    same("prepare_fee_schedule", [args[5:10]])
    same("settle_fee", args[6], args[7])
    same("prepare_capture", path=args[8], amount=args[9], idempotency_key=args[10])
    same("prepare_cancel", path=args[0], reason=args[1], idempotency_key=args[2])
    same("prepare_refund", path=args[3], amount=args[4], metadata=args[5], idempotency_key=args[6],
         require_idempotency_key=args[7])


def test_deep_and_cyclic_arguments_everywhere() -> None:
    deep = nested(5000)
    loop: list[Any] = []
    loop.append(loop)
    for bad in (deep, loop, nested(40, kind="dict")):
        same("validate_metadata", bad)
        same("validate_metadata", {"k": bad})
        same("prepare_fee_schedule", bad)
        same("compute_fee", bad, bad, bad, bad, bad)
        same("prepare_payment", path="/", amount=1, currency="usd", source="a", destination="b", metadata={"k": bad},
             idempotency_key="k")
        same("settle_fee", bad, bad)
        same("settle_fee", 1, bad)
        same("prepare_capture", path=bad, amount=1, idempotency_key=bad)
        same("prepare_cancel", path=bad, reason=bad, idempotency_key=bad)
        same("prepare_refund", path="/", amount=1, metadata={"k": bad}, idempotency_key="k")


def test_keyword_only_and_missing_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError):
        native.prepare_payment("/v1/payments", 1, "usd", "a", "b")  # type: ignore[misc]
    with pytest.raises(TypeError):
        native.prepare_account()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        native.compute_fee(1, 2, 3, 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        native.prepare_capture("/v1/payments/p/capture", 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):  # the fee of a capture is checked by settle_fee, in the ledger transaction
        native.prepare_capture(path="/v1/payments/p/capture", amount=1, fee_rule=None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        native.prepare_cancel("/v1/payments/p/cancel")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        native.prepare_refund("/v1/payments/p/refunds", 1)  # type: ignore[call-arg]
    for missing_path in (native.prepare_capture, native.prepare_cancel, native.prepare_refund):
        with pytest.raises(TypeError):
            missing_path()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        native.settle_fee(1)  # type: ignore[call-arg]

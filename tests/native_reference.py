"""Plain-Python reference implementation of ``paysvc._native`` (the Rust core).

Every function here has the same name, arguments and rules as its Rust counterpart; the tests in
``test_native.py`` feed both the same generated inputs and require equal results, or failures
with the same ``(code, param)``. Failures here raise ``RefError``; messages are not compared.

Argument types are judged as the core judges them:
- an integer argument is an ``int`` that is not a ``bool``; an ``int`` outside the signed 64-bit
  range is out of every allowed range;
- a text argument is a ``str`` that can be encoded as UTF-8 (no unpaired surrogates);
- a boolean argument is a ``bool``;
- ``list`` and ``tuple`` are both accepted where a sequence is expected, ``dict`` where a mapping is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

MAX_AMOUNT_MINOR = 10**15
MAX_PERCENT_BPS = 10_000
MAX_EXPIRES_IN_S = 2_592_000
MIN_EXPIRES_IN_S = 60
DEFAULT_EXPIRES_IN_S = 604_800
MAX_DEPTH = 32
MAX_IDEMPOTENCY_KEY_LEN = 255
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LEN = 40
MAX_METADATA_VALUE_LEN = 500
MAX_ACCOUNT_ID_LEN = 255
MAX_DESCRIPTION_LEN = 1000
MAX_FEE_RULES = 200
CANCELLATION_REASONS = ("requested_by_customer", "duplicate", "fraudulent", "abandoned")
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

# ISO 4217 List One (2026-01-01): every code with a numeric minor unit.
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP "
    "GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT "
    "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN "
    "NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB "
    "SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS "
    "UAH USD USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW ZWG"
)
CURRENCIES: dict[str, int] = {
    code: exponent
    for exponent, codes in ((0, _EXPONENT_0), (2, _EXPONENT_2), (3, _EXPONENT_3), (4, _EXPONENT_4))
    for code in codes.split()
}


class RefError(Exception):
    def __init__(self, code: str, param: str | None) -> None:
        super().__init__(code, param)
        self.code = code
        self.param = param


# --- argument types -------------------------------------------------------------------------


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_in(v: object, lo: int, hi: int) -> bool:
    return _is_int(v) and lo <= v <= hi  # type: ignore[operator]


def _is_text(v: object) -> bool:
    """A str that is valid Unicode text (encodable as UTF-8)."""
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _int_param(v: object, lo: int, hi: int, param: str) -> int:
    if not _int_in(v, lo, hi):
        raise RefError("parameter_invalid", param)
    return int(v)  # type: ignore[call-overload]


def _optional_int_param(v: object, lo: int, hi: int, param: str) -> int | None:
    return None if v is None else _int_param(v, lo, hi, param)


def _bool_param(v: object, param: str) -> bool:
    if not isinstance(v, bool):
        raise RefError("parameter_invalid", param)
    return v


# --- currencies -----------------------------------------------------------------------------


def _lookup(code: object, param: str) -> str:
    if isinstance(code, str) and len(code) == 3 and code.isascii() and code.isalpha():
        upper = code.upper()
        if upper in CURRENCIES:
            return upper
    raise RefError("currency_invalid", param)


def currency_exponent(code: object) -> int:
    return CURRENCIES[_lookup(code, "currency")]


def normalize_currency(code: object) -> str:
    return _lookup(code, "currency")


# --- fees -----------------------------------------------------------------------------------


def _round_half_even_div(n: int, d: int) -> int:
    q, r = divmod(n, d)
    if 2 * r > d or (2 * r == d and q % 2 == 1):
        q += 1
    return q


@dataclass(frozen=True)
class _Rule:
    percent_bps: int
    fixed: int
    min: int | None
    max: int | None

    def fee(self, amount: int) -> int:
        fee = _round_half_even_div(amount * self.percent_bps, 10_000) + self.fixed
        if self.min is not None:
            fee = max(fee, self.min)
        if self.max is not None:
            fee = min(fee, self.max)
        return fee


def _rule(bps: object, fixed: object, lo: object, hi: object, params: tuple[str, str, str, str]) -> _Rule:
    return _Rule(
        _int_param(bps, 0, MAX_PERCENT_BPS, params[0]),
        _int_param(fixed, 0, MAX_AMOUNT_MINOR, params[1]),
        _optional_int_param(lo, 0, MAX_AMOUNT_MINOR, params[2]),
        _optional_int_param(hi, 0, MAX_AMOUNT_MINOR, params[3]),
    )


_FEE_PARAMS = ("percent_bps", "fixed", "min", "max")


def compute_fee(amount_minor: object, percent_bps: object, fixed_minor: object, min_minor: object,
                max_minor: object) -> int:
    amount = _int_param(amount_minor, 0, MAX_AMOUNT_MINOR, "amount")
    return _rule(percent_bps, fixed_minor, min_minor, max_minor, _FEE_PARAMS).fee(amount)


# --- fingerprints ---------------------------------------------------------------------------


def _check_json(v: object, depth: int) -> None:
    """Raises unless ``v`` is JSON the core accepts; ``depth`` counts the containers around it."""
    if v is None or isinstance(v, bool):
        return
    if isinstance(v, int):
        if not I64_MIN <= v <= I64_MAX:
            raise RefError("parameter_invalid", None)
    elif isinstance(v, str):
        if not _is_text(v):
            raise RefError("parameter_invalid", None)
    elif isinstance(v, list | tuple):
        if depth >= MAX_DEPTH:
            raise RefError("parameter_invalid", None)
        for item in v:
            _check_json(item, depth + 1)
    elif isinstance(v, dict):
        if depth >= MAX_DEPTH:
            raise RefError("parameter_invalid", None)
        for key, item in v.items():
            if not _is_text(key):
                raise RefError("parameter_invalid", None)
            _check_json(item, depth + 1)
    else:
        raise RefError("parameter_invalid", None)


def canonical_json(body: object) -> str:
    _check_json(body, 0)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(method: object, path: object, body: object) -> str:
    if not isinstance(method, str) or not method.isascii():
        raise RefError("parameter_invalid", "method")
    if not _is_text(path):
        raise RefError("parameter_invalid", "path")
    text = method.upper() + "\n" + str(path) + "\n" + canonical_json(body)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- single fields --------------------------------------------------------------------------


def _check_key(key: object, required: bool) -> None:
    if key is None:
        if required:
            raise RefError("idempotency_key_missing", "Idempotency-Key")
        return
    if not isinstance(key, str):
        raise RefError("idempotency_key_invalid", "Idempotency-Key")
    if not all(0x20 <= ord(c) <= 0x7E for c in key) or ", " in key or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LEN:
        raise RefError("idempotency_key_invalid", "Idempotency-Key")


def check_idempotency_key(key: object, required: object) -> None:
    _check_key(key, _bool_param(required, "required"))


def _metadata(metadata: object) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise RefError("metadata_invalid", "metadata")
    if len(metadata) > MAX_METADATA_KEYS:
        raise RefError("metadata_invalid", "metadata")
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not _is_text(key) or not 1 <= len(key) <= MAX_METADATA_KEY_LEN:
            raise RefError("metadata_invalid", "metadata")
        if not _is_text(value) or len(value) > MAX_METADATA_VALUE_LEN:
            raise RefError("metadata_invalid", "metadata")
        out[str(key)] = str(value)
    return out


def validate_metadata(metadata: object) -> None:
    _metadata(metadata)


def _account_id(v: object, param: str) -> str:
    if not _is_text(v) or not 1 <= len(str(v)) <= MAX_ACCOUNT_ID_LEN:
        raise RefError("parameter_invalid", param)
    return str(v)


# --- plans ----------------------------------------------------------------------------------


def _amount(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_AMOUNT_MINOR:
        raise RefError("amount_invalid", "amount")
    return v


def _optional_amount(v: object) -> int | None:
    return None if v is None else _amount(v)


def _fee(amount: int, fee_rule: object) -> int:
    if fee_rule is None:
        fee = 0
    elif isinstance(fee_rule, list | tuple) and len(fee_rule) == 4:
        fee = _rule(*fee_rule, _FEE_PARAMS).fee(amount)
    else:
        raise RefError("parameter_invalid", "fee_rule")
    if fee > amount:
        raise RefError("amount_too_small", "amount")
    return fee


def _required_key(key: object, require: object) -> None:
    _check_key(key, _bool_param(require, "require_idempotency_key"))


def _post_fingerprint(path: object, body: object) -> str:
    if not _is_text(path):
        raise RefError("parameter_invalid", "path")
    return fingerprint("POST", path, body)


@dataclass(frozen=True)
class PaymentPlan:
    amount: int
    currency: str
    source: str
    destination: str
    capture: bool
    description: str | None
    metadata: dict[str, str]
    expires_in_s: int | None
    fee: int | None
    net: int | None
    fingerprint: str


def prepare_payment(*, path: object, amount: object, currency: object, source: object, destination: object,
                    capture: object = True, description: object = None, metadata: object = None,
                    expires_in_s: object = None, fee_rule: object = None, idempotency_key: object = None,
                    require_idempotency_key: object = True) -> PaymentPlan:
    # 1. amount
    amt = _amount(amount)
    # 2. currency
    cur = _lookup(currency, "currency")
    # 3. accounts
    src = _account_id(source, "source")
    dst = _account_id(destination, "destination")
    if src == dst:
        raise RefError("same_account", "destination")
    # 4. description
    desc: str | None = None
    if description is not None:
        if not _is_text(description) or len(str(description)) > MAX_DESCRIPTION_LEN:
            raise RefError("parameter_invalid", "description")
        desc = str(description)
    # 5. metadata
    meta = _metadata(metadata)
    # 6. capture and expiry
    cap = _bool_param(capture, "capture")
    expires: int | None
    if cap:
        if expires_in_s is not None:
            raise RefError("parameter_invalid", "expires_in_s")
        expires = None
    elif expires_in_s is None:
        expires = DEFAULT_EXPIRES_IN_S
    else:
        expires = _int_param(expires_in_s, MIN_EXPIRES_IN_S, MAX_EXPIRES_IN_S, "expires_in_s")
    # 7. fee
    fee = _fee(amt, fee_rule)
    # 8. idempotency key
    _required_key(idempotency_key, require_idempotency_key)
    # 9. fingerprint
    body = {
        "amount": amt, "currency": cur, "source": src, "destination": dst, "capture": cap,
        "description": desc, "metadata": meta, "expires_in_s": expires,
    }
    return PaymentPlan(
        amount=amt, currency=cur, source=src, destination=dst, capture=cap, description=desc,
        metadata=meta, expires_in_s=expires,
        fee=fee if cap else None, net=amt - fee if cap else None,
        fingerprint=_post_fingerprint(path, body),
    )


def settle_fee(amount_minor: object, fee_rule: object) -> int:
    return _fee(_amount(amount_minor), fee_rule)


@dataclass(frozen=True)
class CapturePlan:
    amount: int | None
    fingerprint: str


def prepare_capture(*, path: object, amount: object = None, idempotency_key: object = None) -> CapturePlan:
    amt = _optional_amount(amount)
    _check_key(idempotency_key, False)
    return CapturePlan(amt, _post_fingerprint(path, {"amount": amt}))


@dataclass(frozen=True)
class CancelPlan:
    reason: str
    fingerprint: str


def prepare_cancel(*, path: object, reason: object = None, idempotency_key: object = None) -> CancelPlan:
    if reason is None:
        reason = CANCELLATION_REASONS[0]
    if not isinstance(reason, str) or reason not in CANCELLATION_REASONS:
        raise RefError("parameter_invalid", "reason")
    _check_key(idempotency_key, False)
    return CancelPlan(reason, _post_fingerprint(path, {"reason": reason}))


@dataclass(frozen=True)
class RefundPlan:
    amount: int | None
    metadata: dict[str, str]
    fingerprint: str


def prepare_refund(*, path: object, amount: object = None, metadata: object = None, idempotency_key: object = None,
                   require_idempotency_key: object = True) -> RefundPlan:
    amt = _optional_amount(amount)
    meta = _metadata(metadata)
    _required_key(idempotency_key, require_idempotency_key)
    return RefundPlan(amt, meta, _post_fingerprint(path, {"amount": amt, "metadata": meta}))


@dataclass(frozen=True)
class AccountPlan:
    currency: str
    allow_negative: bool
    metadata: dict[str, str]
    fingerprint: str


def prepare_account(*, currency: object, allow_negative: object = False, metadata: object = None,
                    idempotency_key: object = None) -> AccountPlan:
    cur = _lookup(currency, "currency")
    neg = _bool_param(allow_negative, "allow_negative")
    meta = _metadata(metadata)
    _check_key(idempotency_key, False)
    body = {"currency": cur, "allow_negative": neg, "metadata": meta}
    return AccountPlan(cur, neg, meta, fingerprint("POST", "/v1/accounts", body))


@dataclass(frozen=True)
class FeeRule:
    currency: str
    percent_bps: int
    fixed: int
    min: int | None
    max: int | None


def prepare_fee_schedule(rules: object) -> list[FeeRule]:
    if not isinstance(rules, list | tuple) or len(rules) > MAX_FEE_RULES:
        raise RefError("parameter_invalid", "rules")
    out: list[FeeRule] = []
    for i, item in enumerate(rules):
        if not isinstance(item, list | tuple) or len(item) != 5:
            raise RefError("parameter_invalid", f"rules[{i}]")
        p = f"rules[{i}]."
        cur = _lookup(item[0], p + "currency")
        rule = _rule(item[1], item[2], item[3], item[4], (p + "percent_bps", p + "fixed", p + "min", p + "max"))
        if rule.min is not None and rule.max is not None and rule.min > rule.max:
            raise RefError("parameter_invalid", p + "min")
        if any(r.currency == cur for r in out):
            raise RefError("parameter_invalid", p + "currency")
        out.append(FeeRule(cur, rule.percent_bps, rule.fixed, rule.min, rule.max))
    return sorted(out, key=lambda r: r.currency)


def call(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", (code, param))``, for comparing with the core."""
    try:
        return "ok", fn(*args, **kwargs)
    except RefError as e:
        return "error", (e.code, e.param)

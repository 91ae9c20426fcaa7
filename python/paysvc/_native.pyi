"""Type stubs for ``paysvc._native``, the Rust core (``rust/src``).

Every function checks its arguments in a fixed order and raises ``CoreError`` for the first
failure, for arguments of any type (wrong types too). Integers are minor units held as signed
64-bit integers; a Python ``int`` outside that range is rejected, never silently wrapped. An
argument is read without calling into it, at most 1,000,000 values deep in all (more is a
``CoreError``: nothing the API accepts comes close), and a panic inside the core becomes
``CoreError("internal_error", ...)``.
"""

from typing import Final, final

__all__ = [
    "CANCELLATION_REASONS",
    "DEFAULT_EXPIRES_IN_S",
    "MAX_AMOUNT_MINOR",
    "MAX_EXPIRES_IN_S",
    "MIN_EXPIRES_IN_S",
    "AccountPlan",
    "CancelPlan",
    "CapturePlan",
    "CoreError",
    "FeeRule",
    "PaymentPlan",
    "RefundPlan",
    "RiskAssessment",
    "RiskModel",
    "RiskPolicy",
    "check_idempotency_key",
    "compute_fee",
    "currency_exponent",
    "fingerprint",
    "normalize_currency",
    "prepare_account",
    "prepare_cancel",
    "prepare_capture",
    "prepare_fee_schedule",
    "prepare_payment",
    "prepare_refund",
    "risk_feature_names",
    "risk_features",
    "risk_rules_check",
    "risk_state_record",
    "settle_fee",
    "validate_metadata",
]

MAX_AMOUNT_MINOR: Final[int]
"""The largest amount (and fixed fee, minimum and maximum fee), in minor units: 10**15."""
MAX_EXPIRES_IN_S: Final[int]
"""The longest a hold may last: 2_592_000 seconds (30 days)."""
MIN_EXPIRES_IN_S: Final[int]
"""The shortest a hold may last: 60 seconds."""
DEFAULT_EXPIRES_IN_S: Final[int]
"""How long a hold lasts when ``expires_in_s`` is not given: 604_800 seconds (7 days)."""
CANCELLATION_REASONS: Final[tuple[str, ...]]
"""The reasons a client may give for cancelling a hold: ``("requested_by_customer", "duplicate",
"fraudulent", "abandoned")``. The first is the default; ``"expired"`` is set by the system only."""

@final
class CoreError(ValueError):
    """A rejected input. ``str(error) == error.message``; ``error.args == (code, param, message)``."""

    def __init__(self, code: str, param: str | None, message: str) -> None: ...
    @property
    def code(self) -> str:
        """Machine-readable code, e.g. ``"amount_invalid"``."""
    @property
    def param(self) -> str | None:
        """The field concerned, e.g. ``"amount"``, ``"rules[2].currency"`` or ``"Idempotency-Key"``."""
    @property
    def message(self) -> str:
        """A sentence for the API user."""

def currency_exponent(code: str) -> int:
    """Decimal places of the minor unit of an ISO 4217 currency (any case): USD 2, JPY 0, KWD 3, CLF 4."""

def normalize_currency(code: str) -> str:
    """The upper-case ISO 4217 code; ``CoreError("currency_invalid", "currency")`` if unknown."""

def compute_fee(
    amount_minor: int, percent_bps: int, fixed_minor: int, min_minor: int | None, max_minor: int | None
) -> int:
    """``round_half_even(amount * percent_bps / 10000) + fixed``, raised to ``min``, then lowered to ``max``."""

def fingerprint(method: str, path: str, body: object) -> str:
    """Lower-case hex SHA-256 of ``METHOD + "\\n" + path + "\\n" + canonical JSON of body``.

    The canonical JSON equals ``json.dumps(body, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``. ``body`` may hold ``None``, ``bool``, 64-bit ``int``, ``str``, ``list``,
    ``tuple`` and ``dict`` with ``str`` keys, nested at most 32 deep. ``method`` must be ASCII.
    """

def check_idempotency_key(key: str | None, required: bool) -> None:
    """A key is 1..255 printable ASCII characters; ``None`` is allowed unless ``required``."""

def validate_metadata(metadata: dict[str, str] | None) -> None:
    """At most 50 keys of 1..40 characters, each value a string of at most 500 characters."""

@final
class PaymentPlan:
    """A checked payment request."""

    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def capture(self) -> bool: ...
    @property
    def description(self) -> str | None: ...
    @property
    def metadata(self) -> dict[str, str]:
        """A new dict on every access."""
    @property
    def expires_in_s(self) -> int | None:
        """Seconds until a hold expires; ``None`` for a captured payment."""
    @property
    def fee(self) -> int | None:
        """The fee of a captured payment; ``None`` for a hold."""
    @property
    def net(self) -> int | None:
        """``amount - fee`` for a captured payment; ``None`` for a hold."""
    @property
    def fingerprint(self) -> str: ...

def prepare_payment(
    *,
    path: str,
    amount: int,
    currency: str,
    source: str,
    destination: str,
    capture: bool = True,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    expires_in_s: int | None = None,
    fee_rule: tuple[int, int, int | None, int | None] | None = None,
    idempotency_key: str | None = None,
    require_idempotency_key: bool = True,
) -> PaymentPlan:
    """Checks, in order: amount, currency, source and destination, description, metadata,
    capture and expires_in_s, the fee (``fee_rule`` is ``(percent_bps, fixed, min, max)``),
    the idempotency key, and fingerprints the request."""

def settle_fee(amount_minor: int, fee_rule: tuple[int, int, int | None, int | None] | None) -> int:
    """The fee of capturing ``amount_minor`` (1..``MAX_AMOUNT_MINOR``) under ``fee_rule``
    (``(percent_bps, fixed, min, max)``, or ``None``: no fee); ``CoreError("amount_too_small",
    "amount")`` when the fee is greater than the amount."""

@final
class CapturePlan:
    """A checked capture of a hold."""

    @property
    def amount(self) -> int | None:
        """``None`` to capture the whole authorized amount."""
    @property
    def fingerprint(self) -> str: ...

def prepare_capture(
    *,
    path: str,
    amount: int | None = None,
    idempotency_key: str | None = None,
) -> CapturePlan:
    """Checks, in order: amount (``None`` or 1..``MAX_AMOUNT_MINOR``), the (optional) idempotency
    key, path, and fingerprints ``{"amount": amount}``. The fee is not checked here (the
    payment's currency, hence its fee rule, is unknown before the ledger transaction): the
    transaction checks it with ``settle_fee``."""

@final
class CancelPlan:
    """A checked cancellation of a hold."""

    @property
    def reason(self) -> str:
        """One of ``CANCELLATION_REASONS``; ``"requested_by_customer"`` when none was given."""
    @property
    def fingerprint(self) -> str: ...

def prepare_cancel(*, path: str, reason: str | None = None, idempotency_key: str | None = None) -> CancelPlan:
    """Checks, in order: reason (``None`` or one of ``CANCELLATION_REASONS``), the (optional)
    idempotency key, path, and fingerprints ``{"reason": reason}`` (after the default)."""

@final
class RefundPlan:
    """A checked refund request."""

    @property
    def amount(self) -> int | None:
        """``None`` to refund all that is left."""
    @property
    def metadata(self) -> dict[str, str]:
        """A new dict on every access."""
    @property
    def fingerprint(self) -> str: ...

def prepare_refund(
    *,
    path: str,
    amount: int | None = None,
    metadata: dict[str, str] | None = None,
    idempotency_key: str | None = None,
    require_idempotency_key: bool = True,
) -> RefundPlan:
    """Checks, in order: amount (``None`` or 1..``MAX_AMOUNT_MINOR``), metadata, the idempotency
    key, path, and fingerprints ``{"amount": amount, "metadata": metadata}``."""

@final
class AccountPlan:
    """A checked account creation request."""

    @property
    def currency(self) -> str: ...
    @property
    def allow_negative(self) -> bool: ...
    @property
    def metadata(self) -> dict[str, str]:
        """A new dict on every access."""
    @property
    def fingerprint(self) -> str: ...

def prepare_account(
    *,
    currency: str,
    allow_negative: bool = False,
    metadata: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> AccountPlan:
    """Checks currency, allow_negative, metadata and the (optional) key; fingerprints the request."""

@final
class FeeRule:
    """One checked rule of a fee schedule."""

    @property
    def currency(self) -> str: ...
    @property
    def percent_bps(self) -> int: ...
    @property
    def fixed(self) -> int: ...
    @property
    def min(self) -> int | None: ...
    @property
    def max(self) -> int | None: ...

def prepare_fee_schedule(rules: list[tuple[str, int, int, int | None, int | None]]) -> list[FeeRule]:
    """At most 200 ``(currency, percent_bps, fixed, min, max)`` rules, one per currency; sorted by currency."""

# ---- Risk (BRIEF §8). The functions and ``RiskPolicy(...)`` check their arguments like the rest of
# the core (a wrong type is ``CoreError("parameter_invalid", <parameter>)``; ids and states are
# ``bytes`` exactly). The per-payment methods (``RiskPolicy.assess``, ``RiskModel.score`` ...) take
# typed arguments from the service itself: a wrong type there is pyo3's ``TypeError``.

def risk_feature_names() -> list[str]:
    """The names of the features ``risk_features`` returns, in order (a model's ``features``)."""

def risk_features(
    amount_minor: int,
    currency: str,
    capture: bool,
    source_id: bytes,
    destination_id: bytes,
    source_state: bytes | None,
    source_created_at_s: int,
    destination_state: bytes | None,
    destination_created_at_s: int,
    now_s: int,
    metadata: dict[str, str] | None,
) -> list[float]:
    """The ONE feature function, used live (inside ``RiskPolicy.assess``) and offline (training
    rows). ``source_id``/``destination_id`` are the 16-byte account UUIDs; the states are what
    ``risk_state_record`` returned (``None``: a new account; garbage: treated as empty)."""

def risk_state_record(
    state: bytes | None,
    now_s: int,
    *,
    as_source: bool,
    counterparty_id: bytes,
    amount_minor: int,
    outcome: str,
) -> bytes:
    """The account's risk state after one payment, recorded as its source (``as_source=True``,
    ``counterparty_id`` = the destination) or its destination. ``outcome`` is ``"authorized"``
    (money moved or held, manual review included), ``"declined"`` or ``"blocked"``; anything else
    is ``CoreError("parameter_invalid", "outcome")``. The bytes are opaque and bounded: at most
    90 minute buckets per direction, 24 recent destinations, 40 recent sources (about 4 KiB at
    the very most, see ``rust/src/risk/state.rs``)."""

def _risk_bench(
    policy: RiskPolicy,
    model: RiskModel,
    cases: list[tuple[int, bool, bytes, bytes, bytes | None, int, bytes | None, int, int]],
    iterations: int,
) -> dict[str, object]:
    """For ``paysvc bench``: ``{"model_eval": {"p50_us", "p99_us", "mean_us", "calls"}, "step": {...},
    "model_trees"}``, each call timed natively. ``cases`` are ``(amount, capture, source_id,
    destination_id, source_state, source_created_at_s, destination_state, destination_created_at_s,
    now_s)``."""

def _risk_state_summary(state: bytes | None, now_s: int) -> dict[str, int | bool]:
    """What a state holds, windows evaluated at ``now_s``. For tests and debugging."""

@final
class RiskModel:
    """A validated risk model (file format ``paysvc-risk-model/1``)."""

    @staticmethod
    def load(data: bytes) -> RiskModel:
        """Parses and validates a model file; ``CoreError("model_invalid", None, why)`` if bad."""
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str:
        """``"gbdt"`` or ``"logreg"``."""
    @property
    def features(self) -> list[str]: ...
    @property
    def metrics_json(self) -> str:
        """The file's ``metrics`` object as compact JSON (``"{}"`` when absent)."""
    @property
    def created_at(self) -> str:
        """As written in the file (``""`` when absent)."""
    def probability(self, features: list[float]) -> float:
        """``1 / (1 + exp(-margin))``; ``features`` must have ``len(risk_feature_names())`` numbers."""
    def score(self, features: list[float]) -> int:
        """``round(100 * probability)``, 0..100."""

def risk_rules_check(predicates: list[str]) -> None:
    """Raises ``CoreError("parameter_invalid", "rules[i].predicate", ...)`` for the first predicate
    that does not parse or type-check; the message names what and the column."""

@final
class RiskAssessment:
    """What ``RiskPolicy.assess`` decided for one payment."""

    @property
    def decision(self) -> str:
        """``"authorize"``, ``"block"`` or ``"review"`` (always ``"authorize"`` unless enforcing)."""
    @property
    def risk_score(self) -> int | None: ...
    @property
    def risk_level(self) -> str:
        """``normal``, ``elevated``, ``highest``, ``not_assessed`` (mode off) or ``unknown`` (no model)."""
    @property
    def reason(self) -> str | None:
        """``None``, ``"rule"`` or ``"highest_risk_level"`` (what enforce would decide, in shadow too)."""
    @property
    def rule_index(self) -> int | None:
        """Index into the policy's rules of the deciding rule."""
    @property
    def model(self) -> str | None:
        """Id of the model that scored, ``None`` when not scored."""
    @property
    def arm(self) -> str | None:
        """``"champion"``, ``"challenger"``, or ``None`` (mode off)."""
    @property
    def shadow_scores(self) -> list[tuple[str, int]]:
        """``(model id, score)`` of every shadow model: logged, never acted on."""
    @property
    def features(self) -> list[float]:
        """The feature vector used (empty in mode off)."""

@final
class RiskPolicy:
    """One tenant's risk configuration, compiled once; ``assess`` is the per-payment step."""

    def __init__(
        self,
        *,
        tenant_id: bytes,
        mode: str,
        elevated: int,
        highest: int,
        rules: list[tuple[str, str, str]],
        champion: RiskModel | None,
        challenger: RiskModel | None,
        challenger_percent: int,
        challenger_id: str | None,
        shadows: list[RiskModel],
    ) -> None:
        """``rules`` are ``(id, action, predicate)``; a bad one is ``CoreError("parameter_invalid",
        "rules[i].predicate" or "rules[i].action")``; a bad mode, thresholds or percent too."""
    def assess(
        self,
        *,
        amount_minor: int,
        currency: str,
        capture: bool,
        source: str,
        destination: str,
        source_id: bytes,
        destination_id: bytes,
        metadata: dict[str, str] | None,
        source_state: bytes | None,
        source_created_at_s: int,
        destination_state: bytes | None,
        destination_created_at_s: int,
        now_s: int,
    ) -> RiskAssessment:
        """BRIEF §8: scores with the source's arm model, runs the rules, decides (see
        ``rust/src/risk/decide.rs``). Never raises for a valid call."""

def _panic_for_tests() -> None:
    """Panics inside the core; raises ``CoreError("internal_error", None, ...)``. For tests only."""

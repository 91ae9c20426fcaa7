//! Whole requests: a payment, its capture, cancellation and refunds, an account, a fee schedule.
//! Each is checked field by field in a fixed order, the first failure is reported, and a plan of
//! normalized values comes out.

use crate::currency;
use crate::errors::{CoreError, CoreResult, code};
use crate::fees::{self, FeeRule, MAX_AMOUNT_MINOR};
use crate::fingerprint::{PaymentBody, fingerprint, payment_fingerprint};
use crate::validate::{
    bool_param, bounded_str_param, check_idempotency_key_value, metadata_value, optional_str_param,
    validate_metadata,
};
use crate::value::Value;

pub const MIN_EXPIRES_IN_S: i64 = 60;
pub const MAX_EXPIRES_IN_S: i64 = 2_592_000;
pub const DEFAULT_EXPIRES_IN_S: i64 = 604_800;
pub const MAX_ACCOUNT_ID_LEN: usize = 255;
pub const MAX_DESCRIPTION_LEN: usize = 1000;
pub const MAX_FEE_RULES: usize = 200;
pub const ACCOUNTS_PATH: &str = "/v1/accounts";

/// The arguments of `prepare_payment`, as received.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub path: Value,
    pub amount: Value,
    pub currency: Value,
    pub source: Value,
    pub destination: Value,
    pub capture: Value,
    pub description: Value,
    pub metadata: Value,
    pub expires_in_s: Value,
    pub fee_rule: Value,
    pub idempotency_key: Value,
    pub require_idempotency_key: Value,
}

impl Default for PaymentRequest {
    /// The defaults of the optional arguments; the required ones are `None` (invalid).
    fn default() -> Self {
        PaymentRequest {
            path: Value::None,
            amount: Value::None,
            currency: Value::None,
            source: Value::None,
            destination: Value::None,
            capture: Value::Bool(true),
            description: Value::None,
            metadata: Value::None,
            expires_in_s: Value::None,
            fee_rule: Value::None,
            idempotency_key: Value::None,
            require_idempotency_key: Value::Bool(true),
        }
    }
}

/// A checked payment. `fee` and `net` are set for captured payments only; `expires_in_s` for
/// holds only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPlan {
    pub amount: i64,
    pub currency: &'static str,
    pub source: String,
    pub destination: String,
    pub capture: bool,
    pub description: Option<String>,
    pub metadata: Vec<(String, String)>,
    pub expires_in_s: Option<i64>,
    pub fee: Option<i64>,
    pub net: Option<i64>,
    pub fingerprint: String,
}

fn amount_error(got: &Value) -> CoreError {
    let detail = match got {
        Value::Int(v) => format!("; got {v}"),
        Value::BigInt => String::new(),
        other => format!(", not {}", other.kind()),
    };
    CoreError::new(
        code::AMOUNT_INVALID,
        Some("amount"),
        format!(
            "amount must be a positive integer in the currency's minor unit, at most {MAX_AMOUNT_MINOR}{detail}."
        ),
    )
}

fn fee_rule_of(v: &Value) -> CoreResult<Option<FeeRule>> {
    match v {
        Value::None => Ok(None),
        Value::List(items) if items.len() == 4 => {
            fees::rule_from_values(&items[0], &items[1], &items[2], &items[3], fees::FEE_PARAMS)
                .map(Some)
        }
        _ => Err(CoreError::parameter(
            Some("fee_rule"),
            "fee_rule must be null or a (percent_bps, fixed, min, max) tuple.",
        )),
    }
}

fn path_of(v: &Value) -> CoreResult<&str> {
    v.as_str().ok_or_else(|| {
        CoreError::parameter(
            Some("path"),
            "path must be a string (the request path, such as /v1/payments).",
        )
    })
}

/// An `int` within `1..=MAX_AMOUNT_MINOR`, else `amount_invalid`.
fn amount_of(v: &Value) -> CoreResult<i64> {
    v.int_in(1, MAX_AMOUNT_MINOR).ok_or_else(|| amount_error(v))
}

/// `None` (the whole amount), or an amount as [`amount_of`] checks it.
fn optional_amount_of(v: &Value) -> CoreResult<Option<i64>> {
    if v.is_none() {
        Ok(None)
    } else {
        amount_of(v).map(Some)
    }
}

/// The fee of `amount` under `fee_rule` (0 without a rule); `amount_too_small` when the fee is
/// greater than the amount.
fn fee_of(amount: i64, fee_rule: &Value) -> CoreResult<i64> {
    let fee = fee_rule_of(fee_rule)?.map_or(0, |rule| rule.fee(amount));
    if fee > amount {
        return Err(CoreError::new(
            code::AMOUNT_TOO_SMALL,
            Some("amount"),
            format!("The fee ({fee}) is greater than the amount ({amount})."),
        ));
    }
    Ok(fee)
}

/// Checks `require_idempotency_key` (a `bool`), then the key.
fn idempotency_key_of(key: &Value, require: &Value) -> CoreResult<()> {
    let required = bool_param(require, "require_idempotency_key")?;
    check_idempotency_key_value(key, required)
}

/// The fingerprint of a `POST` of `body` to `path` (checked first: it must be a string).
fn post_fingerprint(path: &Value, body: &Value) -> CoreResult<String> {
    fingerprint("POST", path_of(path)?, body)
}

/// Checks a payment request in this order and reports the first failure: amount, currency,
/// source and destination, description, metadata, capture and expires_in_s, fee, idempotency
/// key, path.
pub fn prepare_payment(req: &PaymentRequest) -> CoreResult<PaymentPlan> {
    // 1. amount
    let amount = amount_of(&req.amount)?;
    // 2. currency
    let currency = currency::normalize_value(&req.currency, "currency")?;
    // 3. accounts
    let source = bounded_str_param(&req.source, MAX_ACCOUNT_ID_LEN, "source", "an account id")?;
    let destination = bounded_str_param(
        &req.destination,
        MAX_ACCOUNT_ID_LEN,
        "destination",
        "an account id",
    )?;
    if source == destination {
        return Err(CoreError::new(
            code::SAME_ACCOUNT,
            Some("destination"),
            "The destination account must be different from the source account.",
        ));
    }
    // 4. description
    let description = optional_str_param(&req.description, MAX_DESCRIPTION_LEN, "description")?;
    // 5. metadata
    let metadata = validate_metadata(&req.metadata)?;
    // 6. capture / expiry
    let capture = bool_param(&req.capture, "capture")?;
    let expires_in_s = if capture {
        if !req.expires_in_s.is_none() {
            return Err(CoreError::parameter(
                Some("expires_in_s"),
                "expires_in_s can only be set when capture is false",
            ));
        }
        None
    } else if req.expires_in_s.is_none() {
        Some(DEFAULT_EXPIRES_IN_S)
    } else {
        Some(fees::int_param(
            &req.expires_in_s,
            MIN_EXPIRES_IN_S,
            MAX_EXPIRES_IN_S,
            "expires_in_s",
        )?)
    };
    // 7. fee
    let fee = fee_of(amount, &req.fee_rule)?;
    // 8. idempotency key
    idempotency_key_of(&req.idempotency_key, &req.require_idempotency_key)?;
    // 9. fingerprint
    let body = PaymentBody {
        amount,
        currency,
        source,
        destination,
        capture,
        description,
        metadata: &metadata,
        expires_in_s,
    };
    let fingerprint = payment_fingerprint(path_of(&req.path)?, &body);
    let (fee, net) = if capture {
        (Some(fee), Some(amount - fee))
    } else {
        (None, None)
    };
    Ok(PaymentPlan {
        amount,
        currency,
        source: source.to_owned(),
        destination: destination.to_owned(),
        capture,
        description: description.map(str::to_owned),
        metadata,
        expires_in_s,
        fee,
        net,
        fingerprint,
    })
}

/// The fee of capturing `amount` (1..=10^15) under `fee_rule` (`None`: no fee).
pub fn settle_fee(amount: &Value, fee_rule: &Value) -> CoreResult<i64> {
    fee_of(amount_of(amount)?, fee_rule)
}

/// The arguments of `prepare_capture`, as received.
#[derive(Debug, Clone)]
pub struct CaptureRequest {
    pub path: Value,
    pub amount: Value,
    pub idempotency_key: Value,
}

impl Default for CaptureRequest {
    /// The defaults of the optional arguments; the path is `None` (invalid).
    fn default() -> Self {
        CaptureRequest {
            path: Value::None,
            amount: Value::None,
            idempotency_key: Value::None,
        }
    }
}

/// A checked capture of a hold. `amount` is `None` to capture all that was authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturePlan {
    pub amount: Option<i64>,
    pub fingerprint: String,
}

/// Checks a capture request in this order: amount, the (optional) idempotency key, path. The
/// fee is not checked here (the payment's currency, hence its fee rule, is not known before the
/// ledger transaction): the transaction checks it with [`settle_fee`].
pub fn prepare_capture(req: &CaptureRequest) -> CoreResult<CapturePlan> {
    let amount = optional_amount_of(&req.amount)?;
    check_idempotency_key_value(&req.idempotency_key, false)?;
    let body = Value::object([("amount", amount.map_or(Value::None, Value::Int))]);
    let fingerprint = post_fingerprint(&req.path, &body)?;
    Ok(CapturePlan {
        amount,
        fingerprint,
    })
}

/// The reasons a client may give for cancelling a hold (`expired` is set by the system only).
pub const CANCELLATION_REASONS: [&str; 4] = [
    "requested_by_customer",
    "duplicate",
    "fraudulent",
    "abandoned",
];
/// The reason of a cancellation that gives none.
pub const DEFAULT_CANCELLATION_REASON: &str = CANCELLATION_REASONS[0];

/// The arguments of `prepare_cancel`, as received.
#[derive(Debug, Clone)]
pub struct CancelRequest {
    pub path: Value,
    pub reason: Value,
    pub idempotency_key: Value,
}

impl Default for CancelRequest {
    /// The defaults of the optional arguments; the path is `None` (invalid).
    fn default() -> Self {
        CancelRequest {
            path: Value::None,
            reason: Value::None,
            idempotency_key: Value::None,
        }
    }
}

/// A checked cancellation of a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelPlan {
    pub reason: &'static str,
    pub fingerprint: String,
}

/// `None` (the default reason) or one of [`CANCELLATION_REASONS`], else `parameter_invalid`.
fn reason_of(v: &Value) -> CoreResult<&'static str> {
    if v.is_none() {
        return Ok(DEFAULT_CANCELLATION_REASON);
    }
    let given = v.as_str();
    CANCELLATION_REASONS
        .into_iter()
        .find(|r| Some(*r) == given)
        .ok_or_else(|| {
            CoreError::parameter(
                Some("reason"),
                format!("reason must be one of {}.", CANCELLATION_REASONS.join(", ")),
            )
        })
}

/// Checks a cancellation request in this order: reason, the (optional) idempotency key, path.
pub fn prepare_cancel(req: &CancelRequest) -> CoreResult<CancelPlan> {
    let reason = reason_of(&req.reason)?;
    check_idempotency_key_value(&req.idempotency_key, false)?;
    let body = Value::object([("reason", Value::str(reason))]);
    let fingerprint = post_fingerprint(&req.path, &body)?;
    Ok(CancelPlan {
        reason,
        fingerprint,
    })
}

/// The arguments of `prepare_refund`, as received.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub path: Value,
    pub amount: Value,
    pub metadata: Value,
    pub idempotency_key: Value,
    pub require_idempotency_key: Value,
}

impl Default for RefundRequest {
    /// The defaults of the optional arguments; the path is `None` (invalid).
    fn default() -> Self {
        RefundRequest {
            path: Value::None,
            amount: Value::None,
            metadata: Value::None,
            idempotency_key: Value::None,
            require_idempotency_key: Value::Bool(true),
        }
    }
}

/// A checked refund. `amount` is `None` to refund all that is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlan {
    pub amount: Option<i64>,
    pub metadata: Vec<(String, String)>,
    pub fingerprint: String,
}

/// Checks a refund request in this order: amount, metadata, idempotency key, path.
pub fn prepare_refund(req: &RefundRequest) -> CoreResult<RefundPlan> {
    let amount = optional_amount_of(&req.amount)?;
    let metadata = validate_metadata(&req.metadata)?;
    idempotency_key_of(&req.idempotency_key, &req.require_idempotency_key)?;
    let body = Value::object([
        ("amount", amount.map_or(Value::None, Value::Int)),
        ("metadata", metadata_value(&metadata)),
    ]);
    let fingerprint = post_fingerprint(&req.path, &body)?;
    Ok(RefundPlan {
        amount,
        metadata,
        fingerprint,
    })
}

/// The arguments of `prepare_account`, as received.
#[derive(Debug, Clone)]
pub struct AccountRequest {
    pub currency: Value,
    pub allow_negative: Value,
    pub metadata: Value,
    pub idempotency_key: Value,
}

impl Default for AccountRequest {
    fn default() -> Self {
        AccountRequest {
            currency: Value::None,
            allow_negative: Value::Bool(false),
            metadata: Value::None,
            idempotency_key: Value::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPlan {
    pub currency: &'static str,
    pub allow_negative: bool,
    pub metadata: Vec<(String, String)>,
    pub fingerprint: String,
}

/// Checks currency, allow_negative, metadata and the (optional) idempotency key, in that order.
pub fn prepare_account(req: &AccountRequest) -> CoreResult<AccountPlan> {
    let currency = currency::normalize_value(&req.currency, "currency")?;
    let allow_negative = bool_param(&req.allow_negative, "allow_negative")?;
    let metadata = validate_metadata(&req.metadata)?;
    check_idempotency_key_value(&req.idempotency_key, false)?;
    let body = Value::object([
        ("currency", Value::str(currency)),
        ("allow_negative", Value::Bool(allow_negative)),
        ("metadata", metadata_value(&metadata)),
    ]);
    let fingerprint = fingerprint("POST", ACCOUNTS_PATH, &body)?;
    Ok(AccountPlan {
        currency,
        allow_negative,
        metadata,
        fingerprint,
    })
}

/// One checked rule of a fee schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleRule {
    pub currency: &'static str,
    pub rule: FeeRule,
}

/// Checks a list of `(currency, percent_bps, fixed, min, max)` rules (at most 200, one per
/// currency) and returns them sorted by currency.
pub fn prepare_fee_schedule(rules: &Value) -> CoreResult<Vec<ScheduleRule>> {
    let items = match rules {
        Value::List(items) => items,
        other => {
            return Err(CoreError::parameter(
                Some("rules"),
                format!(
                    "rules must be a list of (currency, percent_bps, fixed, min, max) rules, not {}.",
                    other.kind()
                ),
            ));
        }
    };
    if items.len() > MAX_FEE_RULES {
        return Err(CoreError::parameter(
            Some("rules"),
            format!(
                "A fee schedule can have at most {MAX_FEE_RULES} rules; got {}.",
                items.len()
            ),
        ));
    }
    let mut out: Vec<ScheduleRule> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let fields = match item {
            Value::List(fields) if fields.len() == 5 => fields,
            _ => {
                return Err(CoreError::parameter(
                    Some(&format!("rules[{i}]")),
                    format!("rules[{i}] must be a (currency, percent_bps, fixed, min, max) rule."),
                ));
            }
        };
        let param = |field: &str| format!("rules[{i}].{field}");
        let currency = currency::normalize_value(&fields[0], &param("currency"))?;
        let rule = fees::rule_from_values(
            &fields[1],
            &fields[2],
            &fields[3],
            &fields[4],
            [
                &param("percent_bps"),
                &param("fixed"),
                &param("min"),
                &param("max"),
            ],
        )?;
        if let (Some(min), Some(max)) = (rule.min, rule.max) {
            if min > max {
                return Err(CoreError::parameter(
                    Some(&param("min")),
                    format!(
                        "{} ({min}) must not be greater than {} ({max}).",
                        param("min"),
                        param("max")
                    ),
                ));
            }
        }
        if out.iter().any(|r| r.currency == currency) {
            return Err(CoreError::parameter(
                Some(&param("currency")),
                format!(
                    "The fee schedule has more than one rule for {currency}; {} repeats it.",
                    param("currency")
                ),
            ));
        }
        out.push(ScheduleRule { currency, rule });
    }
    out.sort_by_key(|r| r.currency);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::canonical_json;

    const M: i64 = MAX_AMOUNT_MINOR;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn base() -> PaymentRequest {
        PaymentRequest {
            path: s("/v1/payments"),
            amount: Value::Int(10_000),
            currency: s("usd"),
            source: s("acct_a"),
            destination: s("acct_b"),
            idempotency_key: s("key-1"),
            ..PaymentRequest::default()
        }
    }

    fn err_of(req: &PaymentRequest) -> (&'static str, Option<String>) {
        let e = prepare_payment(req).unwrap_err();
        assert!(!e.message.is_empty());
        (e.code, e.param)
    }

    fn e(code: &'static str, param: &str) -> (&'static str, Option<String>) {
        (code, Some(param.to_owned()))
    }

    fn rule(bps: i64, fixed: i64, min: Option<i64>, max: Option<i64>) -> Value {
        let opt = |o: Option<i64>| o.map_or(Value::None, Value::Int);
        Value::List(vec![Value::Int(bps), Value::Int(fixed), opt(min), opt(max)])
    }

    #[test]
    fn captured_payment_plan() {
        let mut req = base();
        req.fee_rule = rule(290, 30, None, None);
        req.description = s("rent");
        req.metadata = Value::Dict(vec![(s("invoice"), s("7"))]);
        let plan = prepare_payment(&req).unwrap();
        assert_eq!(plan.amount, 10_000);
        assert_eq!(plan.currency, "USD");
        assert_eq!(
            (plan.source.as_str(), plan.destination.as_str()),
            ("acct_a", "acct_b")
        );
        assert!(plan.capture);
        assert_eq!(plan.description.as_deref(), Some("rent"));
        assert_eq!(plan.metadata, vec![("invoice".to_owned(), "7".to_owned())]);
        assert_eq!(plan.expires_in_s, None);
        assert_eq!((plan.fee, plan.net), (Some(320), Some(9_680)));
        let body = r#"{"amount":10000,"capture":true,"currency":"USD","description":"rent","destination":"acct_b","expires_in_s":null,"metadata":{"invoice":"7"},"source":"acct_a"}"#;
        let expected = fingerprint("POST", "/v1/payments", &Value::None).unwrap();
        assert_ne!(plan.fingerprint, expected);
        let v = Value::object([
            ("amount", Value::Int(10_000)),
            ("currency", s("USD")),
            ("source", s("acct_a")),
            ("destination", s("acct_b")),
            ("capture", Value::Bool(true)),
            ("description", s("rent")),
            ("metadata", Value::Dict(vec![(s("invoice"), s("7"))])),
            ("expires_in_s", Value::None),
        ]);
        assert_eq!(canonical_json(&v).unwrap(), body);
        assert_eq!(
            plan.fingerprint,
            fingerprint("POST", "/v1/payments", &v).unwrap()
        );
    }

    #[test]
    fn hold_plan_defaults_expiry_and_has_no_fee() {
        let mut req = base();
        req.capture = Value::Bool(false);
        req.fee_rule = rule(100, 0, None, None);
        let plan = prepare_payment(&req).unwrap();
        assert_eq!(plan.expires_in_s, Some(DEFAULT_EXPIRES_IN_S));
        assert_eq!((plan.fee, plan.net), (None, None));
        for ok in [MIN_EXPIRES_IN_S, MAX_EXPIRES_IN_S, 3_600] {
            req.expires_in_s = Value::Int(ok);
            assert_eq!(prepare_payment(&req).unwrap().expires_in_s, Some(ok));
        }
        for bad in [
            Value::Int(MIN_EXPIRES_IN_S - 1),
            Value::Int(MAX_EXPIRES_IN_S + 1),
            Value::Int(0),
            Value::Int(-1),
            Value::Int(i64::MAX),
            Value::BigInt,
            Value::Bool(true),
            s("60"),
        ] {
            req.expires_in_s = bad;
            assert_eq!(err_of(&req), e("parameter_invalid", "expires_in_s"));
        }
    }

    #[test]
    fn expiry_only_for_holds() {
        let mut req = base();
        req.expires_in_s = Value::Int(3_600);
        let err = prepare_payment(&req).unwrap_err();
        assert_eq!(err.code, "parameter_invalid");
        assert_eq!(err.param.as_deref(), Some("expires_in_s"));
        assert_eq!(
            err.message,
            "expires_in_s can only be set when capture is false"
        );
        req.capture = Value::Int(1);
        assert_eq!(err_of(&req), e("parameter_invalid", "capture"));
    }

    /// Amounts within `1..=M`.
    const GOOD_AMOUNTS: [i64; 3] = [1, 2, M];

    /// Values that are not an amount (but for `None`, which is optional in some requests).
    fn bad_amounts() -> Vec<Value> {
        vec![
            Value::Int(0),
            Value::Int(-1),
            Value::Int(M + 1),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::BigInt,
            Value::Bool(true),
            s("100"),
            Value::Unsupported("float".into()),
        ]
    }

    #[test]
    fn amount_bounds() {
        let mut req = base();
        for ok in GOOD_AMOUNTS {
            req.amount = Value::Int(ok);
            assert_eq!(prepare_payment(&req).unwrap().amount, ok);
        }
        for bad in bad_amounts().into_iter().chain([Value::None]) {
            req.amount = bad;
            assert_eq!(err_of(&req), e("amount_invalid", "amount"));
        }
    }

    #[test]
    fn check_order_is_fixed() {
        // Every field broken: the amount is reported; fix them one by one.
        let mut req = PaymentRequest {
            path: Value::Int(0),
            amount: Value::Int(0),
            currency: s("XXX"),
            source: s(""),
            destination: Value::None,
            capture: Value::Bool(true),
            description: Value::Int(1),
            metadata: Value::Int(1),
            expires_in_s: Value::Int(5),
            fee_rule: Value::Int(1),
            idempotency_key: Value::None,
            require_idempotency_key: Value::Bool(true),
        };
        assert_eq!(err_of(&req), e("amount_invalid", "amount"));
        req.amount = Value::Int(100);
        assert_eq!(err_of(&req), e("currency_invalid", "currency"));
        req.currency = s("jpy");
        assert_eq!(err_of(&req), e("parameter_invalid", "source"));
        req.source = s("a");
        assert_eq!(err_of(&req), e("parameter_invalid", "destination"));
        req.destination = s("a");
        assert_eq!(err_of(&req), e("same_account", "destination"));
        req.destination = s("b");
        assert_eq!(err_of(&req), e("parameter_invalid", "description"));
        req.description = s(&"d".repeat(1001));
        assert_eq!(err_of(&req), e("parameter_invalid", "description"));
        req.description = s(&"d".repeat(1000));
        assert_eq!(err_of(&req), e("metadata_invalid", "metadata"));
        req.metadata = Value::None;
        assert_eq!(err_of(&req), e("parameter_invalid", "expires_in_s"));
        req.expires_in_s = Value::None;
        assert_eq!(err_of(&req), e("parameter_invalid", "fee_rule"));
        req.fee_rule = rule(0, 101, None, None);
        assert_eq!(err_of(&req), e("amount_too_small", "amount"));
        req.fee_rule = rule(0, 100, None, None);
        assert_eq!(
            err_of(&req),
            e("idempotency_key_missing", "Idempotency-Key")
        );
        req.idempotency_key = s("");
        assert_eq!(
            err_of(&req),
            e("idempotency_key_invalid", "Idempotency-Key")
        );
        req.idempotency_key = s("k");
        assert_eq!(err_of(&req), e("parameter_invalid", "path"));
        req.path = s("/v1/payments");
        let plan = prepare_payment(&req).unwrap();
        assert_eq!((plan.fee, plan.net), (Some(100), Some(0)));
        assert_eq!(plan.currency, "JPY");
    }

    #[test]
    fn account_ids() {
        let mut req = base();
        req.source = s(&"s".repeat(255));
        req.destination = s(&"é".repeat(255));
        assert!(prepare_payment(&req).is_ok());
        req.source = s(&"s".repeat(256));
        assert_eq!(err_of(&req), e("parameter_invalid", "source"));
        req.source = Value::InvalidStr;
        assert_eq!(err_of(&req), e("parameter_invalid", "source"));
        req.source = s("x");
        req.destination = s(&"d".repeat(256));
        assert_eq!(err_of(&req), e("parameter_invalid", "destination"));
    }

    #[test]
    fn fee_rules_in_payments() {
        let mut req = base();
        req.amount = Value::Int(1_000);
        req.fee_rule = rule(10_000, 0, None, None);
        assert_eq!(prepare_payment(&req).unwrap().net, Some(0));
        req.fee_rule = rule(10_000, 1, None, None);
        let err = prepare_payment(&req).unwrap_err();
        assert_eq!(err.code, "amount_too_small");
        assert_eq!(
            err.message,
            "The fee (1001) is greater than the amount (1000)."
        );
        req.fee_rule = rule(10_000, 1, None, Some(1_000));
        assert_eq!(prepare_payment(&req).unwrap().fee, Some(1_000));
        req.fee_rule = rule(0, 0, Some(5), None);
        assert_eq!(prepare_payment(&req).unwrap().fee, Some(5));
        // the fee is checked for holds too
        req.capture = Value::Bool(false);
        req.fee_rule = rule(0, 1_001, None, None);
        assert_eq!(err_of(&req), e("amount_too_small", "amount"));
        req.capture = Value::Bool(true);
        for (bad, param) in [
            (rule(10_001, 0, None, None), "percent_bps"),
            (rule(0, -1, None, None), "fixed"),
            (rule(0, 0, Some(M + 1), None), "min"),
            (rule(0, 0, None, Some(-1)), "max"),
            (Value::List(vec![]), "fee_rule"),
            (Value::List(vec![Value::Int(0); 5]), "fee_rule"),
            (s("rule"), "fee_rule"),
        ] {
            req.fee_rule = bad;
            assert_eq!(err_of(&req), e("parameter_invalid", param));
        }
    }

    #[test]
    fn idempotency_key_optional_when_not_required() {
        let mut req = base();
        req.idempotency_key = Value::None;
        req.require_idempotency_key = Value::Bool(false);
        assert!(prepare_payment(&req).is_ok());
        req.require_idempotency_key = Value::None;
        assert_eq!(
            err_of(&req),
            e("parameter_invalid", "require_idempotency_key")
        );
    }

    #[test]
    fn fingerprint_ignores_idempotency_key_and_metadata_order() {
        let mut a = base();
        a.metadata = Value::Dict(vec![(s("x"), s("1")), (s("y"), s("2"))]);
        let mut b = base();
        b.metadata = Value::Dict(vec![(s("y"), s("2")), (s("x"), s("1"))]);
        b.idempotency_key = s("other");
        b.currency = s("USD");
        let (pa, pb) = (prepare_payment(&a).unwrap(), prepare_payment(&b).unwrap());
        assert_eq!(pa.fingerprint, pb.fingerprint);
        b.metadata = Value::None;
        let pc = prepare_payment(&b).unwrap();
        assert_ne!(pa.fingerprint, pc.fingerprint);
        b.metadata = Value::Dict(vec![]);
        assert_eq!(prepare_payment(&b).unwrap().fingerprint, pc.fingerprint);
    }

    #[test]
    fn account_plan() {
        let req = AccountRequest {
            currency: s("kwd"),
            allow_negative: Value::Bool(true),
            metadata: Value::Dict(vec![(s("owner"), s("ann"))]),
            idempotency_key: Value::None,
        };
        let plan = prepare_account(&req).unwrap();
        assert_eq!(plan.currency, "KWD");
        assert!(plan.allow_negative);
        assert_eq!(plan.metadata, vec![("owner".to_owned(), "ann".to_owned())]);
        let body = Value::object([
            ("currency", s("KWD")),
            ("allow_negative", Value::Bool(true)),
            ("metadata", Value::Dict(vec![(s("owner"), s("ann"))])),
        ]);
        assert_eq!(
            plan.fingerprint,
            fingerprint("POST", "/v1/accounts", &body).unwrap()
        );
    }

    #[test]
    fn account_check_order() {
        let mut req = AccountRequest {
            currency: s("usdx"),
            allow_negative: Value::Int(1),
            metadata: Value::Int(1),
            idempotency_key: s(""),
        };
        let err = |r: &AccountRequest| {
            let x = prepare_account(r).unwrap_err();
            (x.code, x.param)
        };
        assert_eq!(err(&req), e("currency_invalid", "currency"));
        req.currency = s("EUR");
        assert_eq!(err(&req), e("parameter_invalid", "allow_negative"));
        req.allow_negative = Value::Bool(false);
        assert_eq!(err(&req), e("metadata_invalid", "metadata"));
        req.metadata = Value::None;
        assert_eq!(err(&req), e("idempotency_key_invalid", "Idempotency-Key"));
        req.idempotency_key = Value::None;
        assert!(prepare_account(&req).is_ok());
        assert!(prepare_account(&AccountRequest::default()).is_err());
    }

    fn r(c: &str, bps: i64, fixed: i64, min: Option<i64>, max: Option<i64>) -> Value {
        let opt = |o: Option<i64>| o.map_or(Value::None, Value::Int);
        Value::List(vec![
            s(c),
            Value::Int(bps),
            Value::Int(fixed),
            opt(min),
            opt(max),
        ])
    }

    fn sched_err(rules: Vec<Value>) -> (&'static str, Option<String>) {
        let x = prepare_fee_schedule(&Value::List(rules)).unwrap_err();
        (x.code, x.param)
    }

    #[test]
    fn fee_schedule_sorted_and_normalized() {
        let rules = Value::List(vec![
            r("usd", 290, 30, None, None),
            r("EUR", 100, 0, Some(1), Some(M)),
            r("Jpy", 0, 0, Some(0), Some(0)),
        ]);
        let out = prepare_fee_schedule(&rules).unwrap();
        let names: Vec<_> = out.iter().map(|x| x.currency).collect();
        assert_eq!(names, ["EUR", "JPY", "USD"]);
        assert_eq!(
            out[2].rule,
            FeeRule {
                percent_bps: 290,
                fixed: 30,
                min: None,
                max: None
            }
        );
        assert_eq!(prepare_fee_schedule(&Value::List(vec![])), Ok(vec![]));
    }

    #[test]
    fn fee_schedule_errors() {
        assert_eq!(
            sched_err(vec![r("usd", 10_001, 0, None, None)]),
            e("parameter_invalid", "rules[0].percent_bps")
        );
        assert_eq!(
            sched_err(vec![
                r("usd", 1, 0, None, None),
                r("eur", -1, 0, None, None)
            ]),
            e("parameter_invalid", "rules[1].percent_bps")
        );
        assert_eq!(
            sched_err(vec![r("usd", 1, -1, None, None)]),
            e("parameter_invalid", "rules[0].fixed")
        );
        assert_eq!(
            sched_err(vec![r("usd", 1, M + 1, None, None)]),
            e("parameter_invalid", "rules[0].fixed")
        );
        assert_eq!(
            sched_err(vec![r("usd", 1, 0, Some(-1), None)]),
            e("parameter_invalid", "rules[0].min")
        );
        assert_eq!(
            sched_err(vec![r("usd", 1, 0, None, Some(M + 1))]),
            e("parameter_invalid", "rules[0].max")
        );
        assert_eq!(
            sched_err(vec![r("usd", 1, 0, Some(9), Some(8))]),
            e("parameter_invalid", "rules[0].min")
        );
        assert_eq!(
            sched_err(vec![r("xau", 1, 0, None, None)]),
            e("currency_invalid", "rules[0].currency")
        );
        assert_eq!(
            sched_err(vec![
                r("usd", 1, 0, None, None),
                r("EUR", 1, 0, None, None),
                r("USD", 2, 0, None, None)
            ]),
            e("parameter_invalid", "rules[2].currency")
        );
        assert_eq!(
            sched_err(vec![Value::List(vec![s("usd")])]),
            e("parameter_invalid", "rules[0]")
        );
        assert_eq!(
            sched_err(vec![s("usd")]),
            e("parameter_invalid", "rules[0]")
        );
        let x = prepare_fee_schedule(&Value::None).unwrap_err();
        assert_eq!(x.param.as_deref(), Some("rules"));
        // min == max is fine
        assert!(prepare_fee_schedule(&Value::List(vec![r("usd", 1, 0, Some(8), Some(8))])).is_ok());
    }

    #[test]
    fn fee_schedule_size_limit() {
        let codes: Vec<&str> = crate::currency::CURRENCIES
            .iter()
            .map(|(c, _)| *c)
            .collect();
        let ok: Vec<Value> = codes
            .iter()
            .take(MAX_FEE_RULES.min(codes.len()))
            .map(|c| r(c, 1, 0, None, None))
            .collect();
        assert!(prepare_fee_schedule(&Value::List(ok)).is_ok());
        let too_many: Vec<Value> = (0..=MAX_FEE_RULES)
            .map(|_| r("usd", 1, 0, None, None))
            .collect();
        assert_eq!(sched_err(too_many), e("parameter_invalid", "rules"));
    }

    fn code_param(r: CoreResult<impl std::fmt::Debug>) -> (&'static str, Option<String>) {
        let x = r.unwrap_err();
        assert!(!x.message.is_empty());
        (x.code, x.param)
    }

    fn amount_body(amount: Option<i64>) -> Value {
        Value::object([("amount", amount.map_or(Value::None, Value::Int))])
    }

    #[test]
    fn settle_fee_checks_amount_then_rule() {
        assert_eq!(settle_fee(&Value::Int(10_000), &Value::None), Ok(0));
        assert_eq!(
            settle_fee(&Value::Int(10_000), &rule(290, 30, None, None)),
            Ok(320)
        );
        assert_eq!(settle_fee(&Value::Int(1), &rule(0, 1, None, None)), Ok(1));
        assert_eq!(
            settle_fee(&Value::Int(M), &rule(10_000, 0, None, None)),
            Ok(M)
        );
        let err = settle_fee(&Value::Int(1_000), &rule(10_000, 1, None, None)).unwrap_err();
        assert_eq!(
            (err.code, err.param.as_deref(), err.message.as_str()),
            (
                "amount_too_small",
                Some("amount"),
                "The fee (1001) is greater than the amount (1000)."
            )
        );
        for bad in bad_amounts().into_iter().chain([Value::None]) {
            // the amount is checked before the rule
            assert_eq!(
                code_param(settle_fee(&bad, &s("rule"))),
                e("amount_invalid", "amount")
            );
        }
        for (bad, param) in [
            (rule(10_001, 0, None, None), "percent_bps"),
            (rule(0, M + 1, None, None), "fixed"),
            (rule(0, 0, Some(-1), None), "min"),
            (rule(0, 0, None, Some(M + 1)), "max"),
            (Value::List(vec![Value::Int(0); 3]), "fee_rule"),
            (Value::Int(0), "fee_rule"),
        ] {
            assert_eq!(
                code_param(settle_fee(&Value::Int(100), &bad)),
                e("parameter_invalid", param)
            );
        }
    }

    fn capture_base() -> CaptureRequest {
        CaptureRequest {
            path: s("/v1/payments/pay_1/capture"),
            ..CaptureRequest::default()
        }
    }

    #[test]
    fn capture_defaults_to_the_whole_amount() {
        let plan = prepare_capture(&capture_base()).unwrap();
        assert_eq!(plan.amount, None);
        let path = "/v1/payments/pay_1/capture";
        let expected = fingerprint("POST", path, &amount_body(None)).unwrap();
        assert_eq!(plan.fingerprint, expected);
        assert_eq!(
            canonical_json(&amount_body(None)).unwrap(),
            r#"{"amount":null}"#
        );
        // an explicit None is the same request
        let mut req = capture_base();
        req.amount = Value::None;
        req.idempotency_key = s("k");
        assert_eq!(prepare_capture(&req).unwrap().fingerprint, expected);
    }

    #[test]
    fn capture_of_part_of_the_amount() {
        let mut req = capture_base();
        for ok in GOOD_AMOUNTS {
            req.amount = Value::Int(ok);
            let plan = prepare_capture(&req).unwrap();
            assert_eq!(plan.amount, Some(ok));
            assert_eq!(
                plan.fingerprint,
                fingerprint("POST", "/v1/payments/pay_1/capture", &amount_body(Some(ok))).unwrap()
            );
        }
    }

    /// `prepare` (a request with this amount, the rest valid) takes `None` and `1..=M`, and
    /// reports any other amount as `amount_invalid`.
    fn check_optional_amounts(prepare: impl Fn(Value) -> CoreResult<Option<i64>>) {
        assert_eq!(prepare(Value::None), Ok(None));
        for ok in GOOD_AMOUNTS {
            assert_eq!(prepare(Value::Int(ok)), Ok(Some(ok)));
        }
        for bad in bad_amounts() {
            assert_eq!(code_param(prepare(bad)), e("amount_invalid", "amount"));
        }
    }

    #[test]
    fn optional_amounts_of_captures_and_refunds() {
        check_optional_amounts(|amount| {
            let req = CaptureRequest {
                amount,
                ..capture_base()
            };
            prepare_capture(&req).map(|plan| plan.amount)
        });
        check_optional_amounts(|amount| {
            let req = RefundRequest {
                amount,
                ..refund_base()
            };
            prepare_refund(&req).map(|plan| plan.amount)
        });
    }

    #[test]
    fn capture_check_order_is_fixed() {
        let mut req = CaptureRequest {
            path: Value::Int(0),
            amount: Value::Int(0),
            idempotency_key: s(""),
        };
        let err = |r: &CaptureRequest| code_param(prepare_capture(r));
        assert_eq!(err(&req), e("amount_invalid", "amount"));
        req.amount = Value::Int(100);
        assert_eq!(err(&req), e("idempotency_key_invalid", "Idempotency-Key"));
        req.idempotency_key = Value::Int(1);
        assert_eq!(err(&req), e("idempotency_key_invalid", "Idempotency-Key"));
        req.idempotency_key = Value::None;
        assert_eq!(err(&req), e("parameter_invalid", "path"));
        req.path = Value::InvalidStr;
        assert_eq!(err(&req), e("parameter_invalid", "path"));
        req.path = s("/v1/payments/p/capture");
        assert_eq!(prepare_capture(&req).unwrap().amount, Some(100));
        req.idempotency_key = s(&"k".repeat(255));
        assert!(prepare_capture(&req).is_ok());
    }

    fn cancel_base() -> CancelRequest {
        CancelRequest {
            path: s("/v1/payments/pay_1/cancel"),
            ..CancelRequest::default()
        }
    }

    fn reason_body(reason: &str) -> Value {
        Value::object([("reason", s(reason))])
    }

    #[test]
    fn cancel_reason_defaults() {
        let plan = prepare_cancel(&cancel_base()).unwrap();
        assert_eq!(plan.reason, "requested_by_customer");
        let path = "/v1/payments/pay_1/cancel";
        let expected = fingerprint("POST", path, &reason_body("requested_by_customer")).unwrap();
        assert_eq!(plan.fingerprint, expected);
        let mut req = cancel_base();
        req.reason = s("requested_by_customer");
        req.idempotency_key = s("k");
        assert_eq!(prepare_cancel(&req).unwrap().fingerprint, expected);
        for reason in CANCELLATION_REASONS {
            req.reason = s(reason);
            let plan = prepare_cancel(&req).unwrap();
            assert_eq!(plan.reason, reason);
            assert_eq!(
                plan.fingerprint,
                fingerprint("POST", path, &reason_body(reason)).unwrap()
            );
        }
    }

    #[test]
    fn cancel_reasons_are_a_closed_list() {
        let mut req = cancel_base();
        for bad in [
            s("expired"),
            s("Duplicate"),
            s(" duplicate"),
            s(""),
            Value::InvalidStr,
            Value::Int(1),
            Value::Bool(false),
            Value::List(vec![s("duplicate")]),
        ] {
            req.reason = bad;
            let err = prepare_cancel(&req).unwrap_err();
            assert_eq!(
                (err.code, err.param.as_deref(), err.message.as_str()),
                (
                    "parameter_invalid",
                    Some("reason"),
                    "reason must be one of requested_by_customer, duplicate, fraudulent, abandoned."
                )
            );
        }
    }

    #[test]
    fn cancel_check_order_is_fixed() {
        let mut req = CancelRequest {
            path: Value::None,
            reason: s("expired"),
            idempotency_key: s("caf\u{e9}"),
        };
        let err = |r: &CancelRequest| code_param(prepare_cancel(r));
        assert_eq!(err(&req), e("parameter_invalid", "reason"));
        req.reason = s("fraudulent");
        assert_eq!(err(&req), e("idempotency_key_invalid", "Idempotency-Key"));
        req.idempotency_key = Value::None;
        assert_eq!(err(&req), e("parameter_invalid", "path"));
        req.path = s("/v1/payments/p/cancel");
        assert_eq!(prepare_cancel(&req).unwrap().reason, "fraudulent");
    }

    fn refund_base() -> RefundRequest {
        RefundRequest {
            path: s("/v1/payments/pay_1/refunds"),
            idempotency_key: s("key-1"),
            ..RefundRequest::default()
        }
    }

    fn refund_body(amount: Option<i64>, metadata: Vec<(Value, Value)>) -> Value {
        Value::object([
            ("amount", amount.map_or(Value::None, Value::Int)),
            ("metadata", Value::Dict(metadata)),
        ])
    }

    #[test]
    fn refund_defaults_to_what_is_left() {
        let path = "/v1/payments/pay_1/refunds";
        let plan = prepare_refund(&refund_base()).unwrap();
        assert_eq!((plan.amount, plan.metadata.len()), (None, 0));
        let expected = fingerprint("POST", path, &refund_body(None, vec![])).unwrap();
        assert_eq!(plan.fingerprint, expected);
        assert_eq!(
            canonical_json(&refund_body(None, vec![])).unwrap(),
            r#"{"amount":null,"metadata":{}}"#
        );
        // explicit None, empty metadata and another key are the same request
        let mut req = refund_base();
        req.amount = Value::None;
        req.metadata = Value::Dict(vec![]);
        req.idempotency_key = s("other");
        assert_eq!(prepare_refund(&req).unwrap().fingerprint, expected);
        req.amount = Value::Int(250);
        req.metadata = Value::Dict(vec![(s("why"), s("damaged")), (s("a"), s(""))]);
        let plan = prepare_refund(&req).unwrap();
        assert_eq!(plan.amount, Some(250));
        assert_eq!(
            plan.metadata,
            vec![
                ("why".to_owned(), "damaged".to_owned()),
                ("a".to_owned(), String::new())
            ]
        );
        let meta = vec![(s("a"), s("")), (s("why"), s("damaged"))];
        assert_eq!(
            plan.fingerprint,
            fingerprint("POST", path, &refund_body(Some(250), meta)).unwrap()
        );
    }

    #[test]
    fn refund_check_order_is_fixed() {
        let mut req = RefundRequest {
            path: Value::Int(0),
            amount: Value::Int(M + 1),
            metadata: Value::Dict(vec![(s("k"), Value::Int(1))]),
            idempotency_key: Value::None,
            require_idempotency_key: Value::Int(1),
        };
        let err = |r: &RefundRequest| code_param(prepare_refund(r));
        assert_eq!(err(&req), e("amount_invalid", "amount"));
        req.amount = Value::Int(M);
        assert_eq!(err(&req), e("metadata_invalid", "metadata"));
        req.metadata = Value::None;
        assert_eq!(err(&req), e("parameter_invalid", "require_idempotency_key"));
        req.require_idempotency_key = Value::Bool(true);
        assert_eq!(err(&req), e("idempotency_key_missing", "Idempotency-Key"));
        req.idempotency_key = s(&"k".repeat(256));
        assert_eq!(err(&req), e("idempotency_key_invalid", "Idempotency-Key"));
        req.idempotency_key = s("k");
        assert_eq!(err(&req), e("parameter_invalid", "path"));
        req.path = s("/v1/payments/p/refunds");
        assert_eq!(prepare_refund(&req).unwrap().amount, Some(M));
        // a key is optional only when not required
        req.idempotency_key = Value::None;
        req.require_idempotency_key = Value::Bool(false);
        assert!(prepare_refund(&req).is_ok());
    }
}

//! Whole requests: a payment, an account, a fee schedule. Each is checked field by field in a
//! fixed order, the first failure is reported, and a plan of normalized values comes out.

use crate::currency;
use crate::errors::{CoreError, CoreResult, code};
use crate::fees::{self, FeeRule, MAX_AMOUNT_MINOR};
use crate::fingerprint::fingerprint;
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

/// Checks a payment request in this order and reports the first failure: amount, currency,
/// source and destination, description, metadata, capture and expires_in_s, fee, idempotency
/// key, path.
pub fn prepare_payment(req: &PaymentRequest) -> CoreResult<PaymentPlan> {
    // 1. amount
    let amount = req
        .amount
        .int_in(1, MAX_AMOUNT_MINOR)
        .ok_or_else(|| amount_error(&req.amount))?;
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
    let fee = fee_rule_of(&req.fee_rule)?.map_or(0, |rule| rule.fee(amount));
    if fee > amount {
        return Err(CoreError::new(
            code::AMOUNT_TOO_SMALL,
            Some("amount"),
            format!("The fee ({fee}) is greater than the amount ({amount})."),
        ));
    }
    // 8. idempotency key
    let required = bool_param(&req.require_idempotency_key, "require_idempotency_key")?;
    check_idempotency_key_value(&req.idempotency_key, required)?;
    // 9. fingerprint
    let path = path_of(&req.path)?;
    let body = Value::object([
        ("amount", Value::Int(amount)),
        ("currency", Value::str(currency)),
        ("source", Value::str(source)),
        ("destination", Value::str(destination)),
        ("capture", Value::Bool(capture)),
        ("description", description.map_or(Value::None, Value::str)),
        ("metadata", metadata_value(&metadata)),
        ("expires_in_s", expires_in_s.map_or(Value::None, Value::Int)),
    ]);
    let fingerprint = fingerprint("POST", path, &body)?;
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

    #[test]
    fn amount_bounds() {
        let mut req = base();
        for ok in [1, 2, M] {
            req.amount = Value::Int(ok);
            assert_eq!(prepare_payment(&req).unwrap().amount, ok);
        }
        for bad in [
            Value::Int(0),
            Value::Int(-1),
            Value::Int(M + 1),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::BigInt,
            Value::Bool(true),
            Value::None,
            s("100"),
            Value::Unsupported("float".into()),
        ] {
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
}

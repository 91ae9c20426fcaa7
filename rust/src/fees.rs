//! Fee arithmetic: integer minor units only, round half to even, then clamp.

use crate::errors::{CoreError, CoreResult};
use crate::value::Value;

/// The largest amount (and fixed fee, minimum, maximum) in minor units: 10^15.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;
/// 100 %, in basis points.
pub const MAX_PERCENT_BPS: i64 = 10_000;

/// `n / d` rounded to the nearest integer, ties to the even one. `n >= 0`, `d > 0`.
pub fn div_round_half_even(n: i128, d: i128) -> i128 {
    assert!(
        n >= 0 && d > 0,
        "div_round_half_even needs n >= 0 and d > 0"
    );
    let (q, r) = (n / d, n % d);
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// A validated fee rule: every field is within `0..=10^15` (`percent_bps` within `0..=10000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeRule {
    pub percent_bps: i64,
    pub fixed: i64,
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl FeeRule {
    /// `clamp(round_half_even(amount * percent_bps / 10000) + fixed, min, max)` for an amount
    /// in `0..=10^15`: `min` is applied first, then `max` (so `max` wins when `min > max`).
    pub fn fee(&self, amount: i64) -> i64 {
        let percent = div_round_half_even(
            i128::from(amount) * i128::from(self.percent_bps),
            i128::from(MAX_PERCENT_BPS),
        );
        let mut fee = percent + i128::from(self.fixed);
        if let Some(min) = self.min {
            fee = fee.max(i128::from(min));
        }
        if let Some(max) = self.max {
            fee = fee.min(i128::from(max));
        }
        i64::try_from(fee).expect("a fee is at most 2 * 10^15")
    }
}

/// The message for an integer argument of another type or out of range.
pub fn int_range_message(name: &str, lo: i64, hi: i64, nullable: bool, got: &Value) -> String {
    let expected = if nullable {
        format!("null or an integer between {lo} and {hi}")
    } else {
        format!("an integer between {lo} and {hi}")
    };
    match got {
        Value::Int(v) => format!("{name} must be {expected}; got {v}."),
        Value::BigInt => format!("{name} must be {expected}."),
        other => format!("{name} must be {expected}, not {}.", other.kind()),
    }
}

/// An `int` within `lo..=hi`, else `parameter_invalid` on `param`.
pub fn int_param(v: &Value, lo: i64, hi: i64, param: &str) -> CoreResult<i64> {
    v.int_in(lo, hi).ok_or_else(|| {
        CoreError::parameter(Some(param), int_range_message(param, lo, hi, false, v))
    })
}

/// `None`, or an `int` within `lo..=hi`, else `parameter_invalid` on `param`.
pub fn optional_int_param(v: &Value, lo: i64, hi: i64, param: &str) -> CoreResult<Option<i64>> {
    if v.is_none() {
        return Ok(None);
    }
    v.int_in(lo, hi)
        .map(Some)
        .ok_or_else(|| CoreError::parameter(Some(param), int_range_message(param, lo, hi, true, v)))
}

/// Checks `percent_bps, fixed, min, max` in that order; `params` names them in errors.
pub fn rule_from_values(
    percent_bps: &Value,
    fixed: &Value,
    min: &Value,
    max: &Value,
    params: [&str; 4],
) -> CoreResult<FeeRule> {
    Ok(FeeRule {
        percent_bps: int_param(percent_bps, 0, MAX_PERCENT_BPS, params[0])?,
        fixed: int_param(fixed, 0, MAX_AMOUNT_MINOR, params[1])?,
        min: optional_int_param(min, 0, MAX_AMOUNT_MINOR, params[2])?,
        max: optional_int_param(max, 0, MAX_AMOUNT_MINOR, params[3])?,
    })
}

/// The parameter names `compute_fee` reports.
pub const FEE_PARAMS: [&str; 4] = ["percent_bps", "fixed", "min", "max"];

/// `compute_fee(amount_minor, percent_bps, fixed_minor, min_minor, max_minor)`.
pub fn compute_fee(
    amount: &Value,
    percent_bps: &Value,
    fixed: &Value,
    min: &Value,
    max: &Value,
) -> CoreResult<i64> {
    let amount = int_param(amount, 0, MAX_AMOUNT_MINOR, "amount")?;
    let rule = rule_from_values(percent_bps, fixed, min, max, FEE_PARAMS)?;
    Ok(rule.fee(amount))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = MAX_AMOUNT_MINOR;

    fn fee(
        amount: i64,
        bps: i64,
        fixed: i64,
        min: Option<i64>,
        max: Option<i64>,
    ) -> CoreResult<i64> {
        let opt = |o: Option<i64>| o.map_or(Value::None, Value::Int);
        compute_fee(
            &Value::Int(amount),
            &Value::Int(bps),
            &Value::Int(fixed),
            &opt(min),
            &opt(max),
        )
    }

    fn err(r: CoreResult<i64>) -> (&'static str, Option<String>) {
        let e = r.unwrap_err();
        (e.code, e.param)
    }

    fn p(s: &str) -> (&'static str, Option<String>) {
        ("parameter_invalid", Some(s.to_owned()))
    }

    #[test]
    fn half_even_division() {
        assert_eq!(div_round_half_even(0, 10_000), 0);
        assert_eq!(div_round_half_even(4_999, 10_000), 0);
        assert_eq!(div_round_half_even(5_000, 10_000), 0); // tie -> even 0
        assert_eq!(div_round_half_even(5_001, 10_000), 1);
        assert_eq!(div_round_half_even(15_000, 10_000), 2); // tie -> even 2
        assert_eq!(div_round_half_even(25_000, 10_000), 2); // tie -> even 2
        assert_eq!(div_round_half_even(35_000, 10_000), 4);
        assert_eq!(div_round_half_even(14_999, 10_000), 1);
        assert_eq!(div_round_half_even(20_000, 10_000), 2);
        assert_eq!(div_round_half_even(7, 1), 7);
        assert_eq!(div_round_half_even(1, 2), 0);
        assert_eq!(div_round_half_even(3, 2), 2);
    }

    #[test]
    #[should_panic(expected = "needs n >= 0")]
    fn half_even_rejects_negative() {
        div_round_half_even(-1, 10);
    }

    #[test]
    fn percentage_and_fixed() {
        assert_eq!(fee(10_000, 290, 30, None, None), Ok(320));
        assert_eq!(fee(0, 290, 30, None, None), Ok(30));
        assert_eq!(fee(1, 0, 0, None, None), Ok(0));
        assert_eq!(fee(1, 10_000, 0, None, None), Ok(1));
        assert_eq!(fee(1, 5_000, 0, None, None), Ok(0)); // 0.5 -> 0
        assert_eq!(fee(3, 5_000, 0, None, None), Ok(2)); // 1.5 -> 2
        assert_eq!(fee(5, 5_000, 0, None, None), Ok(2)); // 2.5 -> 2
        assert_eq!(fee(7, 5_000, 0, None, None), Ok(4)); // 3.5 -> 4
        assert_eq!(fee(150, 100, 0, None, None), Ok(2)); // 1.5 -> 2
        assert_eq!(fee(250, 100, 0, None, None), Ok(2)); // 2.5 -> 2
        assert_eq!(fee(251, 100, 0, None, None), Ok(3)); // 2.51 -> 3
        assert_eq!(fee(249, 100, 0, None, None), Ok(2)); // 2.49 -> 2
        assert_eq!(fee(1_050, 1, 0, None, None), Ok(0)); // 0.105 -> 0
        assert_eq!(fee(5_000, 1, 0, None, None), Ok(0)); // 0.5 -> 0
        assert_eq!(fee(15_000, 1, 0, None, None), Ok(2)); // 1.5 -> 2
    }

    #[test]
    fn extremes_use_wide_intermediates() {
        assert_eq!(fee(M, 10_000, 0, None, None), Ok(M));
        assert_eq!(fee(M, 10_000, M, None, None), Ok(2 * M));
        assert_eq!(fee(M, 9_999, 0, None, None), Ok(M / 10_000 * 9_999));
        assert_eq!(fee(M, 1, 0, None, None), Ok(100_000_000_000));
        assert_eq!(fee(M - 1, 1, 0, None, None), Ok(100_000_000_000)); // 99999999999.9999
        assert_eq!(fee(M, 0, M, Some(M), Some(M)), Ok(M));
    }

    #[test]
    fn clamps() {
        assert_eq!(fee(100, 100, 0, Some(5), None), Ok(5)); // 1 -> min 5
        assert_eq!(fee(100_000, 100, 0, Some(5), None), Ok(1_000));
        assert_eq!(fee(100_000, 100, 0, None, Some(50)), Ok(50)); // max
        assert_eq!(fee(100_000, 100, 0, Some(0), Some(0)), Ok(0));
        assert_eq!(fee(100, 100, 0, Some(10), Some(20)), Ok(10));
        assert_eq!(fee(100_000, 100, 0, Some(10), Some(20)), Ok(20));
        assert_eq!(fee(1_500, 100, 0, Some(10), Some(20)), Ok(15));
        // min > max: min first, then max wins.
        assert_eq!(fee(0, 0, 0, Some(9), Some(8)), Ok(8));
        assert_eq!(fee(M, 10_000, M, Some(0), Some(M)), Ok(M));
        assert_eq!(fee(0, 0, 0, Some(M), None), Ok(M));
    }

    #[test]
    fn argument_ranges() {
        assert_eq!(err(fee(-1, 0, 0, None, None)), p("amount"));
        assert_eq!(err(fee(M + 1, 0, 0, None, None)), p("amount"));
        assert_eq!(err(fee(i64::MIN, 0, 0, None, None)), p("amount"));
        assert_eq!(err(fee(i64::MAX, 0, 0, None, None)), p("amount"));
        assert_eq!(err(fee(1, -1, 0, None, None)), p("percent_bps"));
        assert_eq!(err(fee(1, 10_001, 0, None, None)), p("percent_bps"));
        assert_eq!(err(fee(1, i64::MAX, 0, None, None)), p("percent_bps"));
        assert_eq!(err(fee(1, 0, -1, None, None)), p("fixed"));
        assert_eq!(err(fee(1, 0, M + 1, None, None)), p("fixed"));
        assert_eq!(err(fee(1, 0, 0, Some(-1), None)), p("min"));
        assert_eq!(err(fee(1, 0, 0, Some(M + 1), None)), p("min"));
        assert_eq!(err(fee(1, 0, 0, None, Some(-1))), p("max"));
        assert_eq!(err(fee(1, 0, 0, None, Some(i64::MIN))), p("max"));
        // first failure wins, in argument order
        assert_eq!(err(fee(-1, -1, -1, Some(-1), Some(-1))), p("amount"));
        assert_eq!(err(fee(0, -1, -1, Some(-1), Some(-1))), p("percent_bps"));
        assert_eq!(err(fee(0, 0, -1, Some(-1), Some(-1))), p("fixed"));
        assert_eq!(err(fee(0, 0, 0, Some(-1), Some(-1))), p("min"));
        assert_eq!(fee(M, MAX_PERCENT_BPS, M, Some(M), Some(M)), Ok(M));
        assert_eq!(fee(0, 0, 0, Some(0), Some(0)), Ok(0));
    }

    #[test]
    fn argument_types() {
        let n = Value::None;
        let z = Value::Int(0);
        for bad in [
            Value::BigInt,
            Value::Bool(true),
            Value::str("1"),
            Value::Unsupported("float".into()),
            Value::None,
        ] {
            assert_eq!(err(compute_fee(&bad, &z, &z, &n, &n)), p("amount"));
            assert_eq!(err(compute_fee(&z, &bad, &z, &n, &n)), p("percent_bps"));
            assert_eq!(err(compute_fee(&z, &z, &bad, &n, &n)), p("fixed"));
            if !bad.is_none() {
                assert_eq!(err(compute_fee(&z, &z, &z, &bad, &n)), p("min"));
                assert_eq!(err(compute_fee(&z, &z, &z, &n, &bad)), p("max"));
            }
        }
    }

    #[test]
    fn messages_name_field_and_limits() {
        let e = fee(M + 1, 0, 0, None, None).unwrap_err();
        assert_eq!(
            e.message,
            "amount must be an integer between 0 and 1000000000000000; got 1000000000000001."
        );
        let e = compute_fee(
            &Value::Int(1),
            &Value::str("x"),
            &Value::Int(0),
            &Value::None,
            &Value::None,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "percent_bps must be an integer between 0 and 10000, not a string."
        );
        let e = fee(1, 0, 0, Some(-3), None).unwrap_err();
        assert_eq!(
            e.message,
            "min must be null or an integer between 0 and 1000000000000000; got -3."
        );
    }

    #[test]
    fn rule_params_are_reported_as_given() {
        let e = rule_from_values(
            &Value::Int(0),
            &Value::Int(0),
            &Value::Int(5),
            &Value::BigInt,
            ["r.a", "r.b", "r.c", "r.d"],
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("r.d"));
    }
}

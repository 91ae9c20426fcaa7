//! ISO 4217 currencies and their minor-unit exponents.
//!
//! The table holds every code of ISO 4217 List One (the SIX list of 2026-01-01) whose minor unit
//! is a number: currencies and funds. Codes whose minor unit is "N.A." (precious metals XAU XAG
//! XPD XPT, bond-market units XBA..XBD, XDR, XSU, XUA, XTS, XXX) are left out, and so are the
//! withdrawn ones of List Three (e.g. ANG, BGN, CUC, HRK, SLL, ZWL).

use crate::errors::{CoreError, CoreResult, code, quoted};
use crate::value::Value;

/// `(code, exponent)`, sorted by code.
pub const CURRENCIES: [(&str, u8); 165] = [
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAD", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// The table entry for `code`: exactly three ASCII letters, in any case.
fn lookup(code: &str) -> Option<(&'static str, u8)> {
    let bytes = code.as_bytes();
    if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let upper = [
        bytes[0].to_ascii_uppercase(),
        bytes[1].to_ascii_uppercase(),
        bytes[2].to_ascii_uppercase(),
    ];
    CURRENCIES
        .binary_search_by(|(c, _)| c.as_bytes().cmp(&upper[..]))
        .ok()
        .map(|i| CURRENCIES[i])
}

fn invalid(param: &str, shown: Option<&str>) -> CoreError {
    let message = match shown {
        Some(s) => format!(
            "{} is not a supported currency. Use a three-letter ISO 4217 currency code such as USD, EUR or JPY.",
            quoted(s)
        ),
        None => {
            "The currency must be a three-letter ISO 4217 currency code such as USD, EUR or JPY."
                .to_owned()
        }
    };
    CoreError::new(code::CURRENCY_INVALID, Some(param), message)
}

/// The upper-case code for `code`, or `currency_invalid` on `param`.
pub fn normalize(code: &str, param: &str) -> CoreResult<&'static str> {
    lookup(code)
        .map(|(c, _)| c)
        .ok_or_else(|| invalid(param, Some(code)))
}

/// The number of decimal places of the minor unit of `code`, or `currency_invalid` on `param`.
pub fn exponent(code: &str, param: &str) -> CoreResult<u8> {
    lookup(code)
        .map(|(_, e)| e)
        .ok_or_else(|| invalid(param, Some(code)))
}

/// [`normalize`] for an argument of any type (anything but a `str` is `currency_invalid`).
pub fn normalize_value(v: &Value, param: &str) -> CoreResult<&'static str> {
    match v {
        Value::Str(s) => normalize(s, param),
        _ => Err(invalid(param, None)),
    }
}

/// [`exponent`] for an argument of any type.
pub fn exponent_value(v: &Value, param: &str) -> CoreResult<u8> {
    match v {
        Value::Str(s) => exponent(s, param),
        _ => Err(invalid(param, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(c: &str) -> Option<u8> {
        exponent(c, "currency").ok()
    }

    #[test]
    fn table_is_sorted_unique_upper_ascii() {
        for w in CURRENCIES.windows(2) {
            assert!(w[0].0 < w[1].0, "{} !< {}", w[0].0, w[1].0);
        }
        for (c, e) in CURRENCIES {
            assert_eq!(c.len(), 3);
            assert!(c.bytes().all(|b| b.is_ascii_uppercase()), "{c}");
            assert!(matches!(e, 0 | 2 | 3 | 4), "{c} {e}");
        }
    }

    #[test]
    fn every_exponent_class() {
        let zero = [
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
            "VND", "VUV", "XAF", "XOF", "XPF",
        ];
        let three = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
        let four = ["CLF", "UYW"];
        for c in zero {
            assert_eq!(exp(c), Some(0), "{c}");
        }
        for c in three {
            assert_eq!(exp(c), Some(3), "{c}");
        }
        for c in four {
            assert_eq!(exp(c), Some(4), "{c}");
        }
        let count = |e: u8| CURRENCIES.iter().filter(|(_, x)| *x == e).count();
        assert_eq!(count(0), zero.len());
        assert_eq!(count(3), three.len());
        assert_eq!(count(4), four.len());
        assert_eq!(
            count(2),
            CURRENCIES.len() - zero.len() - three.len() - four.len()
        );
        for c in [
            "USD", "EUR", "GBP", "CHF", "MGA", "MRU", "BOV", "USN", "COU",
        ] {
            assert_eq!(exp(c), Some(2), "{c}");
        }
    }

    #[test]
    fn recent_additions_present() {
        for c in [
            "XCG", "ZWG", "SLE", "VES", "VED", "XAD", "STN", "MRU", "BYN",
        ] {
            assert_eq!(exp(c), Some(2), "{c}");
        }
    }

    #[test]
    fn na_and_withdrawn_codes_rejected() {
        for c in [
            "XAU", "XAG", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA", "XTS",
            "XXX", "HRK", "SLL", "ANG", "BGN", "CUC", "ZWL", "VEF", "MRO", "STD", "BYR", "LTL",
            "EEK", "DEM", "FRF", "ZMK", "USS",
        ] {
            assert_eq!(exp(c), None, "{c}");
        }
    }

    #[test]
    fn case_insensitive_and_normalized() {
        assert_eq!(normalize("usd", "currency"), Ok("USD"));
        assert_eq!(normalize("Jpy", "currency"), Ok("JPY"));
        assert_eq!(normalize("kWd", "currency"), Ok("KWD"));
        assert_eq!(normalize("EUR", "currency"), Ok("EUR"));
        assert_eq!(exponent("clf", "currency"), Ok(4));
    }

    #[test]
    fn malformed_codes_rejected_with_param() {
        for c in [
            "",
            "U",
            "US",
            "USDD",
            " USD",
            "USD ",
            "U$D",
            "123",
            "US1",
            "ｕｓｄ",
            "ıqd",
            "ſek",
            "US\u{0}",
            "€UR",
        ] {
            let e = normalize(c, "rules[3].currency").unwrap_err();
            assert_eq!(e.code, "currency_invalid", "{c:?}");
            assert_eq!(e.param.as_deref(), Some("rules[3].currency"));
            assert!(e.message.contains("ISO 4217"));
        }
    }

    #[test]
    fn values_of_other_types_rejected() {
        for v in [
            Value::None,
            Value::Int(840),
            Value::Bool(true),
            Value::InvalidStr,
            Value::List(vec![]),
        ] {
            let e = normalize_value(&v, "currency").unwrap_err();
            assert_eq!(
                (e.code, e.param.as_deref()),
                ("currency_invalid", Some("currency"))
            );
            assert!(exponent_value(&v, "currency").is_err());
        }
        assert_eq!(normalize_value(&Value::str("eur"), "currency"), Ok("EUR"));
        assert_eq!(exponent_value(&Value::str("bhd"), "currency"), Ok(3));
    }
}

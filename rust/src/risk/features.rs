//! The ONE feature function: (request, source state, destination state, now) → the feature
//! vector, used live (inside the decision) and offline (training rows), so training and
//! serving features are the same by construction.
//!
//! Every feature is a plain f64. Counts are raw; amounts and durations are `ln(1 + x)` (their
//! scale spans orders of magnitude); flags are 0 or 1. Amounts are in minor units (no currency
//! conversion: the same amount in two currencies is the same feature value).

use super::state::{State, Summary, minute_of, summarize};

/// The names, in order. A model's `features` must equal this list.
pub const FEATURE_NAMES: [&str; 20] = [
    "amount_log",
    "capture",
    "source_age_log",
    "destination_age_log",
    "source_payments_10m",
    "source_payments_hour",
    "source_payments_day",
    "source_amount_day_log",
    "source_declines_hour",
    "source_declines_day",
    "source_idle_log",
    "source_history_log",
    "amount_vs_source_usual",
    "new_destination",
    "destination_payments_hour",
    "destination_payments_day",
    "destination_sources_hour",
    "destination_sources_day",
    "destination_history_log",
    "destination_idle_log",
];

pub const N_FEATURES: usize = FEATURE_NAMES.len();

pub type Features = [f64; N_FEATURES];

/// One payment as the risk step sees it (ids are the 16-byte account UUIDs).
#[derive(Debug, Clone, Copy)]
pub struct Payment<'a> {
    pub amount_minor: i64,
    pub capture: bool,
    pub source_id: &'a [u8],
    pub destination_id: &'a [u8],
    pub source_created_at_s: i64,
    pub destination_created_at_s: i64,
    pub now_s: i64,
}

/// The velocity figures of one payment, before it (this payment is not counted). Also what the
/// rule attributes read.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Velocity {
    pub source_age_s: i64,
    pub destination_age_s: i64,
    pub source_payments_10m: u64,
    pub source_payments_hour: u64,
    pub source_payments_day: u64,
    /// Amounts of the day's payments from the source, any outcome.
    pub source_amount_day: u64,
    pub source_declines_hour: u64,
    pub source_declines_day: u64,
    /// Seconds since the source's last payment (or its creation when it has none).
    pub source_idle_s: i64,
    pub source_history: u64,
    pub source_usual_log: Option<f64>,
    pub new_destination: bool,
    pub destination_payments_hour: u64,
    pub destination_payments_day: u64,
    pub destination_sources_hour: u64,
    pub destination_sources_day: u64,
    pub destination_history: u64,
    pub destination_idle_s: i64,
}

impl Velocity {
    /// From decoded states (tests and tools); the same as [`Velocity::from_summaries`].
    pub fn of(p: &Payment<'_>, source: &State, destination: &State) -> Velocity {
        let m = minute_of(p.now_s);
        Velocity::from_summaries(
            p,
            &Summary::of_state(source, m, Some(p.destination_id)),
            &Summary::of_state(destination, m, None),
        )
    }

    /// Straight from the state bytes (the risk step).
    pub fn from_bytes(
        p: &Payment<'_>,
        source_state: Option<&[u8]>,
        destination_state: Option<&[u8]>,
    ) -> Velocity {
        let m = minute_of(p.now_s);
        Velocity::from_summaries(
            p,
            &summarize(source_state, m, Some(p.destination_id)),
            &summarize(destination_state, m, None),
        )
    }

    pub fn from_summaries(p: &Payment<'_>, source: &Summary, destination: &Summary) -> Velocity {
        let since = |last: u64, created: i64| -> i64 {
            let last = i64::try_from(last).unwrap_or(i64::MAX);
            let from = if last > 0 { last } else { created };
            p.now_s.saturating_sub(from).max(0)
        };
        Velocity {
            source_age_s: p.now_s.saturating_sub(p.source_created_at_s).max(0),
            destination_age_s: p.now_s.saturating_sub(p.destination_created_at_s).max(0),
            source_payments_10m: source.out_10m.count,
            source_payments_hour: source.out_hour.count,
            source_payments_day: source.out_day.count,
            source_amount_day: source.out_day.amount,
            source_declines_hour: source.out_hour.declines,
            source_declines_day: source.out_day.declines,
            source_idle_s: since(source.last_out_s, p.source_created_at_s),
            source_history: source.out_total,
            source_usual_log: source.out_log_mean(),
            new_destination: !source.knows_destination,
            destination_payments_hour: destination.in_hour.count,
            destination_payments_day: destination.in_day.count,
            destination_sources_hour: destination.sources_hour,
            destination_sources_day: destination.sources_day,
            destination_history: destination.in_total,
            destination_idle_s: since(destination.last_in_s, p.destination_created_at_s),
        }
    }
}

fn ln1p_u(x: u64) -> f64 {
    (x as f64).ln_1p()
}

fn ln1p_i(x: i64) -> f64 {
    (x.max(0) as f64).ln_1p()
}

/// The feature vector of a payment given its velocity figures.
pub fn features(p: &Payment<'_>, v: &Velocity) -> Features {
    let amount_log = ln1p_i(p.amount_minor);
    [
        amount_log,
        f64::from(u8::from(p.capture)),
        ln1p_i(v.source_age_s),
        ln1p_i(v.destination_age_s),
        v.source_payments_10m as f64,
        v.source_payments_hour as f64,
        v.source_payments_day as f64,
        ln1p_u(v.source_amount_day),
        v.source_declines_hour as f64,
        v.source_declines_day as f64,
        ln1p_i(v.source_idle_s),
        ln1p_u(v.source_history),
        v.source_usual_log.map_or(0.0, |usual| amount_log - usual),
        f64::from(u8::from(v.new_destination)),
        v.destination_payments_hour as f64,
        v.destination_payments_day as f64,
        v.destination_sources_hour as f64,
        v.destination_sources_day as f64,
        ln1p_u(v.destination_history),
        ln1p_i(v.destination_idle_s),
    ]
}

/// Decodes both states and computes the features (the offline entry point).
pub fn features_of(
    p: &Payment<'_>,
    source_state: Option<&[u8]>,
    destination_state: Option<&[u8]>,
) -> Features {
    features(p, &Velocity::from_bytes(p, source_state, destination_state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::state::Outcome;

    const T0: i64 = 1_800_000_000;
    const SRC: [u8; 16] = [1; 16];
    const DST: [u8; 16] = [2; 16];

    fn payment(now_s: i64, amount_minor: i64) -> Payment<'static> {
        Payment {
            amount_minor,
            capture: true,
            source_id: &SRC,
            destination_id: &DST,
            source_created_at_s: T0 - 86_400,
            destination_created_at_s: T0 - 3600,
            now_s,
        }
    }

    fn idx(name: &str) -> usize {
        FEATURE_NAMES.iter().position(|n| *n == name).unwrap()
    }

    #[test]
    fn names_unique() {
        for (i, a) in FEATURE_NAMES.iter().enumerate() {
            assert!(!FEATURE_NAMES[i + 1..].contains(a));
        }
    }

    #[test]
    fn empty_states() {
        let p = payment(T0, 999);
        let f = features_of(&p, None, None);
        assert!((f[idx("amount_log")] - 1000f64.ln()).abs() < 1e-12);
        assert_eq!(f[idx("capture")], 1.0);
        assert!((f[idx("source_age_log")] - 86_401f64.ln()).abs() < 1e-12);
        assert_eq!(f[idx("source_payments_hour")], 0.0);
        assert_eq!(f[idx("new_destination")], 1.0);
        assert_eq!(f[idx("amount_vs_source_usual")], 0.0);
        assert!((f[idx("source_idle_log")] - 86_401f64.ln()).abs() < 1e-12);
        // Garbage state is the empty state.
        assert_eq!(features_of(&p, Some(&[7, 7, 7]), Some(&[1])), f);
    }

    #[test]
    fn velocity_from_states() {
        let mut src = State::default();
        let mut dst = State::default();
        for i in 0..5 {
            src.record(T0 + i * 60, true, &DST, 100, Outcome::Authorized);
            dst.record(
                T0 + i * 60,
                false,
                &[i as u8 + 10; 16],
                100,
                Outcome::Authorized,
            );
        }
        src.record(T0 + 300, true, &[3; 16], 100, Outcome::Declined);
        let p = payment(T0 + 360, 10_000);
        let v = Velocity::of(&p, &src, &dst);
        assert_eq!(v.source_payments_hour, 6);
        assert_eq!(v.source_payments_10m, 6);
        assert_eq!(v.source_declines_day, 1);
        assert_eq!(v.source_amount_day, 600);
        assert!(!v.new_destination);
        assert_eq!(v.destination_sources_hour, 5);
        assert_eq!(v.destination_payments_day, 5);
        assert_eq!(v.source_idle_s, 60);
        let f = features(&p, &v);
        let usual = 101f64.ln();
        assert!((f[idx("amount_vs_source_usual")] - (10_001f64.ln() - usual)).abs() < 1e-3);
        let later = payment(T0 + 2 * 3600, 5);
        let v = Velocity::of(&later, &src, &dst);
        assert_eq!((v.source_payments_hour, v.source_payments_day), (0, 6));
    }
}

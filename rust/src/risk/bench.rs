//! Timing loops for `paysvc bench`: each call timed on its own (the clock read, tens of ns, is in
//! every figure), percentiles over all of them. Inputs rotate so that branches are not all
//! predicted from the previous call.

use std::hint::black_box;
use std::time::Instant;

use super::decide::{Policy, Request};
use super::features::{Payment, features_of};
use super::model::Model;

/// One payment's inputs, owned.
pub struct Case {
    pub amount_minor: i64,
    pub capture: bool,
    pub source_id: Vec<u8>,
    pub destination_id: Vec<u8>,
    pub source_state: Option<Vec<u8>>,
    pub source_created_at_s: i64,
    pub destination_state: Option<Vec<u8>>,
    pub destination_created_at_s: i64,
    pub now_s: i64,
}

impl Case {
    fn payment(&self) -> Payment<'_> {
        Payment {
            amount_minor: self.amount_minor,
            capture: self.capture,
            source_id: &self.source_id,
            destination_id: &self.destination_id,
            source_created_at_s: self.source_created_at_s,
            destination_created_at_s: self.destination_created_at_s,
            now_s: self.now_s,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub mean_ns: f64,
    pub calls: usize,
}

fn percentiles(mut ns: Vec<u64>) -> Timing {
    ns.sort_unstable();
    let n = ns.len().max(1);
    let at = |q: f64| {
        ns.get(((n as f64 * q) as usize).min(n - 1))
            .copied()
            .unwrap_or(0) as f64
    };
    Timing {
        p50_ns: at(0.50),
        p99_ns: at(0.99),
        mean_ns: ns.iter().sum::<u64>() as f64 / n as f64,
        calls: ns.len(),
    }
}

fn time_each(iterations: usize, mut f: impl FnMut(usize)) -> Timing {
    // Warm up caches and the branch predictor first.
    for i in 0..iterations.min(1000) {
        f(i);
    }
    let mut ns = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let t = Instant::now();
        f(i);
        ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    percentiles(ns)
}

/// Model evaluation alone, on the cases' feature vectors.
pub fn model_eval(model: &Model, cases: &[Case], iterations: usize) -> Timing {
    let xs: Vec<_> = cases
        .iter()
        .map(|c| {
            features_of(
                &c.payment(),
                c.source_state.as_deref(),
                c.destination_state.as_deref(),
            )
        })
        .collect();
    if xs.is_empty() {
        return percentiles(Vec::new());
    }
    time_each(iterations, |i| {
        black_box(model.score(black_box(&xs[i % xs.len()])));
    })
}

/// The whole step: decode both states, features, model, rules, decision.
pub fn step(policy: &Policy, cases: &[Case], iterations: usize) -> Timing {
    if cases.is_empty() {
        return percentiles(Vec::new());
    }
    let metadata = vec![("order".to_owned(), "42".to_owned())];
    time_each(iterations, |i| {
        let c = &cases[i % cases.len()];
        let r = Request {
            amount_minor: c.amount_minor,
            currency: "USD",
            capture: c.capture,
            source: "acct_11111111111111111111111111111111",
            destination: "acct_22222222222222222222222222222222",
            source_id: &c.source_id,
            destination_id: &c.destination_id,
            metadata: &metadata,
            source_state: c.source_state.as_deref(),
            source_created_at_s: c.source_created_at_s,
            destination_state: c.destination_state.as_deref(),
            destination_created_at_s: c.destination_created_at_s,
            now_s: c.now_s,
        };
        black_box(policy.assess(black_box(&r)));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_values() {
        let t = percentiles((1..=100).collect());
        assert_eq!((t.p50_ns, t.p99_ns, t.calls), (51.0, 100.0, 100));
        assert!((t.mean_ns - 50.5).abs() < 1e-9);
        assert_eq!(percentiles(Vec::new()).calls, 0);
    }
}

//! The §8 decision: one tenant's policy (mode, thresholds, rules, models) applied to a payment.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::features::{Features, Payment, Velocity, features};
use super::model::Model;
use super::rules::{self, Attrs, Expr};
use crate::errors::{CoreError, CoreResult};

pub const MAX_RULES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    Shadow,
    Enforce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Block,
    Review,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Authorize,
    Block,
    Review,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Authorize => "authorize",
            Decision::Block => "block",
            Decision::Review => "review",
        }
    }
}

#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub action: Action,
    pub expr: Expr,
}

#[derive(Debug)]
pub struct Policy {
    pub tenant_id: Vec<u8>,
    pub mode: Mode,
    pub elevated: i64,
    pub highest: i64,
    pub rules: Vec<Rule>,
    pub champion: Option<Arc<Model>>,
    pub challenger: Option<Arc<Model>>,
    pub challenger_percent: u8,
    pub challenger_id: Option<String>,
    pub shadows: Vec<Arc<Model>>,
}

/// Checks predicates; the first bad one is `parameter_invalid` with `param` `rules[i].predicate`.
pub fn check_predicates<'a>(predicates: impl IntoIterator<Item = &'a str>) -> CoreResult<()> {
    for (i, p) in predicates.into_iter().enumerate() {
        compile(i, p)?;
    }
    Ok(())
}

fn compile(i: usize, predicate: &str) -> CoreResult<Expr> {
    rules::parse(predicate).map_err(|m| {
        CoreError::parameter(
            Some(&format!("rules[{i}].predicate")),
            format!("rules[{i}].predicate: {m}"),
        )
    })
}

pub struct PolicyConfig<'a> {
    pub tenant_id: &'a [u8],
    pub mode: &'a str,
    pub elevated: i64,
    pub highest: i64,
    pub rules: &'a [(String, String, String)],
    pub champion: Option<Arc<Model>>,
    pub challenger: Option<Arc<Model>>,
    pub challenger_percent: i64,
    pub challenger_id: Option<String>,
    pub shadows: Vec<Arc<Model>>,
}

impl Policy {
    pub fn new(c: PolicyConfig<'_>) -> CoreResult<Policy> {
        let mode = match c.mode {
            "off" => Mode::Off,
            "shadow" => Mode::Shadow,
            "enforce" => Mode::Enforce,
            _ => {
                return Err(CoreError::parameter(
                    Some("mode"),
                    "mode must be 'off', 'shadow' or 'enforce'",
                ));
            }
        };
        if !(0 <= c.elevated && c.elevated <= c.highest && c.highest <= 100) {
            return Err(CoreError::parameter(
                Some("thresholds"),
                "thresholds must satisfy 0 <= elevated <= highest <= 100",
            ));
        }
        if !(0..=100).contains(&c.challenger_percent) {
            return Err(CoreError::parameter(
                Some("challenger.percent"),
                "challenger.percent must be 0 to 100",
            ));
        }
        if c.rules.len() > MAX_RULES {
            return Err(CoreError::parameter(
                Some("rules"),
                format!("at most {MAX_RULES} rules"),
            ));
        }
        let mut rules = Vec::with_capacity(c.rules.len());
        for (i, (id, action, predicate)) in c.rules.iter().enumerate() {
            let action = match action.as_str() {
                "allow" => Action::Allow,
                "block" => Action::Block,
                "review" => Action::Review,
                _ => {
                    return Err(CoreError::parameter(
                        Some(&format!("rules[{i}].action")),
                        format!("rules[{i}].action must be 'allow', 'block' or 'review'"),
                    ));
                }
            };
            rules.push(Rule {
                id: id.clone(),
                action,
                expr: compile(i, predicate)?,
            });
        }
        Ok(Policy {
            tenant_id: c.tenant_id.to_vec(),
            mode,
            elevated: c.elevated,
            highest: c.highest,
            rules,
            champion: c.champion,
            challenger: c.challenger,
            challenger_percent: c.challenger_percent as u8,
            challenger_id: c.challenger_id,
            shadows: c.shadows,
        })
    }
}

/// The A/B bucket of a source for a challenger: 0..100, a pure function of its inputs. A source
/// is in the challenger arm when its bucket is below the percent, so raising the percent only
/// moves sources from champion to challenger.
pub fn ab_bucket(tenant_id: &[u8], source_id: &[u8], challenger_id: &str) -> u8 {
    let mut h = Sha256::new();
    // Length prefixes keep (tenant, source, challenger) unambiguous for ids of any length.
    for part in [tenant_id, source_id, challenger_id.as_bytes()] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// One payment as `assess` takes it.
pub struct Request<'a> {
    pub amount_minor: i64,
    pub currency: &'a str,
    pub capture: bool,
    pub source: &'a str,
    pub destination: &'a str,
    pub source_id: &'a [u8],
    pub destination_id: &'a [u8],
    pub metadata: &'a [(String, String)],
    pub source_state: Option<&'a [u8]>,
    pub source_created_at_s: i64,
    pub destination_state: Option<&'a [u8]>,
    pub destination_created_at_s: i64,
    pub now_s: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub decision: Decision,
    pub risk_score: Option<u8>,
    pub risk_level: &'static str,
    pub reason: Option<&'static str>,
    pub rule_index: Option<usize>,
    /// The model that scored (the arm's model), `None` when there was no score.
    pub model: Option<Arc<Model>>,
    pub arm: Option<&'static str>,
    pub shadow_scores: Vec<(Arc<Model>, u8)>,
    /// Empty when not assessed (mode off).
    pub features: Option<Features>,
}

fn level(score: Option<u8>, elevated: i64, highest: i64) -> &'static str {
    match score {
        None => "unknown",
        Some(s) if i64::from(s) >= highest => "highest",
        Some(s) if i64::from(s) >= elevated => "elevated",
        Some(_) => "normal",
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Policy {
    pub fn assess(&self, r: &Request<'_>) -> Assessment {
        if self.mode == Mode::Off {
            return Assessment {
                decision: Decision::Authorize,
                risk_score: None,
                risk_level: "not_assessed",
                reason: None,
                rule_index: None,
                model: None,
                arm: None,
                shadow_scores: Vec::new(),
                features: None,
            };
        }
        let p = Payment {
            amount_minor: r.amount_minor,
            capture: r.capture,
            source_id: r.source_id,
            destination_id: r.destination_id,
            source_created_at_s: r.source_created_at_s,
            destination_created_at_s: r.destination_created_at_s,
            now_s: r.now_s,
        };
        let v = Velocity::from_bytes(&p, r.source_state, r.destination_state);
        let x = features(&p, &v);

        let challenger_arm = match &self.challenger_id {
            Some(id) if self.challenger_percent > 0 => {
                ab_bucket(&self.tenant_id, r.source_id, id) < self.challenger_percent
            }
            _ => false,
        };
        let (arm, model) = if challenger_arm {
            ("challenger", self.challenger.clone())
        } else {
            ("champion", self.champion.clone())
        };
        let risk_score = model.as_ref().map(|m| m.score(&x));
        let risk_level = level(risk_score, self.elevated, self.highest);
        let shadow_scores = self
            .shadows
            .iter()
            .map(|m| (Arc::clone(m), m.score(&x)))
            .collect();

        let attrs = Attrs {
            amount: r.amount_minor,
            currency: r.currency,
            capture: r.capture,
            risk_score: risk_score.map(i64::from),
            risk_level,
            source: r.source,
            destination: r.destination,
            source_age_s: v.source_age_s,
            destination_age_s: v.destination_age_s,
            payments_per_source_hourly: to_i64(v.source_payments_hour),
            payments_per_source_daily: to_i64(v.source_payments_day),
            amount_per_source_daily: to_i64(v.source_amount_day),
            declines_per_source_hourly: to_i64(v.source_declines_hour),
            declines_per_source_daily: to_i64(v.source_declines_day),
            payments_per_destination_hourly: to_i64(v.destination_payments_hour),
            sources_per_destination_hourly: to_i64(v.destination_sources_hour),
            is_new_destination_for_source: v.new_destination,
            metadata: r.metadata,
        };
        let first = |action: Action| {
            self.rules
                .iter()
                .position(|rule| rule.action == action && rule.expr.eval(&attrs))
        };
        // allow > block > highest level > review, the first matching rule within an action.
        let (decision, reason, rule_index) = if let Some(i) = first(Action::Allow) {
            (Decision::Authorize, Some("rule"), Some(i))
        } else if let Some(i) = first(Action::Block) {
            (Decision::Block, Some("rule"), Some(i))
        } else if risk_level == "highest" {
            (Decision::Block, Some("highest_risk_level"), None)
        } else if let Some(i) = first(Action::Review) {
            (Decision::Review, Some("rule"), Some(i))
        } else {
            (Decision::Authorize, None, None)
        };
        Assessment {
            decision: if self.mode == Mode::Enforce {
                decision
            } else {
                Decision::Authorize
            },
            risk_score,
            risk_level,
            reason,
            rule_index,
            model: if risk_score.is_some() { model } else { None },
            arm: Some(arm),
            shadow_scores,
            features: Some(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::model::tests::stump;

    const T0: i64 = 1_800_000_000;

    fn model(id: &str, lo: f64, hi: f64) -> Arc<Model> {
        // Splits on capture (feature 1): capture=1 → hi.
        Arc::new(Model::load(stump(id, 1, 0.5, lo, hi).as_bytes()).unwrap())
    }

    fn policy(mode: &str, rules: &[(&str, &str)], champion: Option<Arc<Model>>) -> Policy {
        let rules: Vec<(String, String, String)> = rules
            .iter()
            .enumerate()
            .map(|(i, (a, p))| (format!("rule_{i}"), (*a).to_owned(), (*p).to_owned()))
            .collect();
        Policy::new(PolicyConfig {
            tenant_id: &[7; 16],
            mode,
            elevated: 65,
            highest: 75,
            rules: &rules,
            champion,
            challenger: None,
            challenger_percent: 0,
            challenger_id: None,
            shadows: vec![],
        })
        .unwrap()
    }

    fn req(amount: i64) -> Request<'static> {
        Request {
            amount_minor: amount,
            currency: "USD",
            capture: true,
            source: "acct_s",
            destination: "acct_d",
            source_id: &[1; 16],
            destination_id: &[2; 16],
            metadata: &[],
            source_state: None,
            source_created_at_s: T0 - 10,
            destination_state: None,
            destination_created_at_s: T0 - 10,
            now_s: T0,
        }
    }

    #[test]
    fn off_is_not_assessed() {
        let a = policy(
            "off",
            &[("block", ":amount: > 0")],
            Some(model("m", 0.0, 9.0)),
        )
        .assess(&req(5));
        assert_eq!(a.decision, Decision::Authorize);
        assert_eq!(
            (a.risk_level, a.risk_score, a.arm, a.reason),
            ("not_assessed", None, None, None)
        );
        assert!(a.model.is_none() && a.features.is_none());
    }

    #[test]
    fn enforce_order() {
        let hi = Some(model("m", 0.0, 9.0)); // score 100 → highest
        let lo = Some(model("m", -9.0, -9.0)); // score 0
        let p = policy("enforce", &[], hi.clone());
        let a = p.assess(&req(5));
        assert_eq!(
            (a.decision, a.reason, a.risk_level),
            (Decision::Block, Some("highest_risk_level"), "highest")
        );
        assert_eq!(a.arm, Some("champion"));
        assert_eq!(a.model.as_ref().unwrap().id, "m");
        let rules = [
            ("review", ":amount: > 1"),
            ("block", ":amount: > 100"),
            ("allow", ":amount: = 5"),
            ("block", ":amount: > 2"),
        ];
        let p = policy("enforce", &rules, hi.clone());
        let a = p.assess(&req(5));
        assert_eq!(
            (a.decision, a.reason, a.rule_index),
            (Decision::Authorize, Some("rule"), Some(2))
        );
        let a = p.assess(&req(500));
        assert_eq!((a.decision, a.rule_index), (Decision::Block, Some(1)));
        let a = p.assess(&req(50));
        assert_eq!((a.decision, a.rule_index), (Decision::Block, Some(3)));
        let p = policy("enforce", &rules, lo.clone());
        let a = p.assess(&req(2));
        assert_eq!(
            (a.decision, a.rule_index, a.risk_level),
            (Decision::Review, Some(0), "normal")
        );
        let a = p.assess(&req(1));
        assert_eq!(
            (a.decision, a.reason, a.rule_index),
            (Decision::Authorize, None, None)
        );
        // Review loses to the highest level.
        let p = policy("enforce", &[("review", ":amount: > 0")], hi);
        assert_eq!(p.assess(&req(1)).reason, Some("highest_risk_level"));
    }

    #[test]
    fn shadow_never_acts() {
        let p = policy(
            "shadow",
            &[("block", ":amount: > 0")],
            Some(model("m", 0.0, 9.0)),
        );
        let a = p.assess(&req(5));
        assert_eq!(
            (a.decision, a.reason, a.rule_index),
            (Decision::Authorize, Some("rule"), Some(0))
        );
        assert_eq!(a.risk_score, Some(100));
    }

    #[test]
    fn missing_model_is_unknown_and_rules_run() {
        let p = policy(
            "enforce",
            &[
                ("block", ":risk_score: >= 0"),
                ("block", ":risk_level: = 'unknown'"),
            ],
            None,
        );
        let a = p.assess(&req(5));
        assert_eq!((a.risk_level, a.risk_score), ("unknown", None));
        assert_eq!((a.decision, a.rule_index), (Decision::Block, Some(1)));
        assert!(a.model.is_none());
    }

    #[test]
    fn arms_are_stable_and_monotone() {
        let mut prev = vec![false; 500];
        for pct in [0u8, 10, 50, 90, 100] {
            let mut n = 0;
            for s in 0..500u32 {
                let src = s.to_be_bytes().repeat(4);
                let ch = ab_bucket(&[7; 16], &src, "logreg_v1") < pct;
                assert_eq!(ch, ab_bucket(&[7; 16], &src, "logreg_v1") < pct);
                assert!(!prev[s as usize] || ch, "monotone");
                prev[s as usize] = ch;
                n += usize::from(ch);
            }
            let expect = 5 * usize::from(pct);
            assert!(n.abs_diff(expect) <= 40, "{pct}: {n}");
        }
    }

    #[test]
    fn bad_config() {
        let mk = |mode: &str, e: i64, h: i64, rules: &[(String, String, String)]| {
            Policy::new(PolicyConfig {
                tenant_id: &[0; 16],
                mode,
                elevated: e,
                highest: h,
                rules,
                champion: None,
                challenger: None,
                challenger_percent: 0,
                challenger_id: None,
                shadows: vec![],
            })
            .unwrap_err()
        };
        assert_eq!(mk("on", 1, 2, &[]).param.as_deref(), Some("mode"));
        assert_eq!(mk("off", 3, 2, &[]).param.as_deref(), Some("thresholds"));
        let r = vec![
            ("rule_a".into(), "block".into(), ":amount: > 1".into()),
            ("rule_b".into(), "block".into(), ":nope: > 1".into()),
        ];
        let e = mk("off", 1, 2, &r);
        assert_eq!(e.param.as_deref(), Some("rules[1].predicate"));
        assert!(e.message.contains("unknown attribute :nope: at column 1"));
        let r = vec![("rule_a".into(), "deny".into(), ":amount: > 1".into())];
        assert_eq!(
            mk("off", 1, 2, &r).param.as_deref(),
            Some("rules[0].action")
        );
    }
}

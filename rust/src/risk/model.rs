//! The model evaluator for our flat JSON format ("paysvc-risk-model/1"): gradient-boosted trees
//! and logistic regression. Load validates everything once; evaluation then reads flat arrays,
//! allocates nothing and cannot fail.

use serde_json::Value as Json;

use super::features::{FEATURE_NAMES, N_FEATURES};

pub const FORMAT: &str = "paysvc-risk-model/1";
/// Bounds that keep a model file from using unbounded memory or time per payment.
pub const MAX_TREES: usize = 5000;
pub const MAX_NODES_PER_TREE: usize = 1 << 16;
pub const MAX_ID_CHARS: usize = 100;

/// One tree node, flattened. A leaf has `feature == LEAF` and its value in `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    threshold: f64,
    feature: u32,
    /// Absolute node indices (into the model's node array).
    left: u32,
    right: u32,
    default_left: bool,
}

const LEAF: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Gbdt {
        base_score: f64,
        /// Every tree's nodes, one after another.
        nodes: Vec<Node>,
        /// The root index of each tree.
        roots: Vec<u32>,
    },
    Logreg {
        intercept: f64,
        /// coef / scale, and Σ coef·mean/scale folded into the intercept.
        weights: [f64; N_FEATURES],
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub id: String,
    pub kind_name: &'static str,
    pub created_at: String,
    /// The `metrics` object as compact JSON.
    pub metrics_json: String,
    kind: Kind,
}

fn err(msg: impl Into<String>) -> String {
    msg.into()
}

fn finite(v: &Json, what: &str) -> Result<f64, String> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(err(format!("{what} must be a finite number"))),
    }
}

fn array<'a>(obj: &'a Json, key: &str, what: &str) -> Result<&'a Vec<Json>, String> {
    obj.get(key)
        .and_then(Json::as_array)
        .ok_or_else(|| err(format!("{what}'{key}' must be an array")))
}

fn numbers(obj: &Json, key: &str, what: &str) -> Result<Vec<f64>, String> {
    array(obj, key, what)?
        .iter()
        .enumerate()
        .map(|(i, v)| finite(v, &format!("{what}{key}[{i}]")))
        .collect()
}

fn ints(obj: &Json, key: &str, what: &str) -> Result<Vec<i64>, String> {
    array(obj, key, what)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i64()
                .ok_or_else(|| err(format!("{what}{key}[{i}] must be an integer")))
        })
        .collect()
}

fn bools(obj: &Json, key: &str, what: &str) -> Result<Vec<bool>, String> {
    array(obj, key, what)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_bool()
                .ok_or_else(|| err(format!("{what}{key}[{i}] must be true or false")))
        })
        .collect()
}

fn string<'a>(obj: &'a Json, key: &str) -> Result<&'a str, String> {
    obj.get(key)
        .and_then(Json::as_str)
        .ok_or_else(|| err(format!("'{key}' must be a string")))
}

fn parse_tree(t: &Json, i: usize, nodes: &mut Vec<Node>) -> Result<u32, String> {
    let what = format!("trees[{i}].");
    if !t.is_object() {
        return Err(format!("trees[{i}] must be an object"));
    }
    let feature = ints(t, "feature", &what)?;
    let threshold = numbers(t, "threshold", &what)?;
    let left = ints(t, "left", &what)?;
    let right = ints(t, "right", &what)?;
    let value = numbers(t, "value", &what)?;
    let default_left = bools(t, "default_left", &what)?;
    let n = feature.len();
    if n == 0 || n > MAX_NODES_PER_TREE {
        return Err(format!(
            "trees[{i}] must have 1 to {MAX_NODES_PER_TREE} nodes, not {n}"
        ));
    }
    for (name, len) in [
        ("threshold", threshold.len()),
        ("left", left.len()),
        ("right", right.len()),
        ("value", value.len()),
        ("default_left", default_left.len()),
    ] {
        if len != n {
            return Err(format!(
                "trees[{i}].{name} has {len} entries, 'feature' has {n}"
            ));
        }
    }
    let base = nodes.len();
    let offset = |j: usize, child: i64, side: &str| -> Result<u32, String> {
        // Children come after their parent: no cycles, and every node is reached at most once.
        match usize::try_from(child) {
            Ok(c) if c > j && c < n => Ok(u32::try_from(base + c).map_err(|_| "too many nodes")?),
            _ => Err(format!(
                "trees[{i}].{side}[{j}] = {child} must be a node after {j} and before {n}"
            )),
        }
    };
    for j in 0..n {
        let node = if feature[j] == -1 {
            Node {
                threshold: value[j],
                feature: LEAF,
                left: 0,
                right: 0,
                default_left: false,
            }
        } else {
            let f = usize::try_from(feature[j])
                .ok()
                .filter(|f| *f < N_FEATURES)
                .ok_or_else(|| {
                    format!(
                        "trees[{i}].feature[{j}] = {} is not -1 (leaf) or a feature index 0..{}",
                        feature[j],
                        N_FEATURES - 1
                    )
                })?;
            Node {
                threshold: threshold[j],
                feature: f as u32,
                left: offset(j, left[j], "left")?,
                right: offset(j, right[j], "right")?,
                default_left: default_left[j],
            }
        };
        nodes.push(node);
    }
    Ok(u32::try_from(base).map_err(|_| "too many nodes")?)
}

impl Model {
    /// Parses and validates a model file.
    pub fn load(data: &[u8]) -> Result<Model, String> {
        let json: Json =
            serde_json::from_slice(data).map_err(|e| format!("model is not valid JSON: {e}"))?;
        if !json.is_object() {
            return Err("model must be a JSON object".to_owned());
        }
        let format = string(&json, "format")?;
        if format != FORMAT {
            return Err(format!("'format' must be '{FORMAT}', not '{format}'"));
        }
        let id = string(&json, "id")?;
        if id.is_empty() || id.chars().count() > MAX_ID_CHARS {
            return Err(format!("'id' must be 1 to {MAX_ID_CHARS} characters"));
        }
        let created_at = match json.get("created_at") {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(_) => return Err("'created_at' must be a string".to_owned()),
        };
        let metrics_json = match json.get("metrics") {
            None | Some(Json::Null) => "{}".to_owned(),
            Some(m @ Json::Object(map)) => {
                for (k, v) in map {
                    if !v.as_f64().is_some_and(f64::is_finite) {
                        return Err(format!("metrics.{k} must be a finite number"));
                    }
                }
                m.to_string()
            }
            Some(_) => return Err("'metrics' must be an object of numbers".to_owned()),
        };
        let features = array(&json, "features", "")?;
        let names: Vec<&str> = features.iter().filter_map(Json::as_str).collect();
        if names.len() != features.len() || names != FEATURE_NAMES {
            return Err(format!(
                "'features' must be the serving features in order: {}",
                FEATURE_NAMES.join(", ")
            ));
        }
        let kind_name = string(&json, "kind")?;
        let (kind_name, kind) = match kind_name {
            "gbdt" => {
                let base_score = finite(
                    json.get("base_score").unwrap_or(&Json::Null),
                    "'base_score'",
                )?;
                let trees = array(&json, "trees", "")?;
                if trees.is_empty() || trees.len() > MAX_TREES {
                    return Err(format!("'trees' must hold 1 to {MAX_TREES} trees"));
                }
                let mut nodes = Vec::new();
                let mut roots = Vec::with_capacity(trees.len());
                for (i, t) in trees.iter().enumerate() {
                    roots.push(parse_tree(t, i, &mut nodes)?);
                }
                (
                    "gbdt",
                    Kind::Gbdt {
                        base_score,
                        nodes,
                        roots,
                    },
                )
            }
            "logreg" => {
                let intercept =
                    finite(json.get("intercept").unwrap_or(&Json::Null), "'intercept'")?;
                let coef = numbers(&json, "coef", "")?;
                let mean = numbers(&json, "mean", "")?;
                let scale = numbers(&json, "scale", "")?;
                for (name, v) in [("coef", &coef), ("mean", &mean), ("scale", &scale)] {
                    if v.len() != N_FEATURES {
                        return Err(format!(
                            "'{name}' must have {N_FEATURES} numbers, not {}",
                            v.len()
                        ));
                    }
                }
                if let Some(i) = scale.iter().position(|s| *s == 0.0) {
                    return Err(format!("scale[{i}] must not be 0"));
                }
                let mut weights = [0.0; N_FEATURES];
                let mut folded = intercept;
                for i in 0..N_FEATURES {
                    weights[i] = coef[i] / scale[i];
                    folded -= weights[i] * mean[i];
                }
                if !folded.is_finite() || weights.iter().any(|w| !w.is_finite()) {
                    return Err("the coefficients overflow".to_owned());
                }
                (
                    "logreg",
                    Kind::Logreg {
                        intercept: folded,
                        weights,
                    },
                )
            }
            other => return Err(format!("'kind' must be 'gbdt' or 'logreg', not '{other}'")),
        };
        Ok(Model {
            id: id.to_owned(),
            kind_name,
            created_at,
            metrics_json,
            kind,
        })
    }

    /// The raw margin (log-odds).
    #[inline]
    pub fn margin(&self, x: &[f64; N_FEATURES]) -> f64 {
        match &self.kind {
            Kind::Gbdt {
                base_score,
                nodes,
                roots,
            } => {
                let mut sum = *base_score;
                for &root in roots {
                    let mut i = root as usize;
                    loop {
                        // Indices were checked at load: in range, children after parents.
                        let n = &nodes[i];
                        if n.feature == LEAF {
                            sum += n.threshold;
                            break;
                        }
                        let v = x[n.feature as usize];
                        let go_left = if v.is_nan() {
                            n.default_left
                        } else {
                            v <= n.threshold
                        };
                        i = if go_left { n.left } else { n.right } as usize;
                    }
                }
                sum
            }
            Kind::Logreg { intercept, weights } => {
                let mut z = *intercept;
                for i in 0..N_FEATURES {
                    z += weights[i] * x[i];
                }
                z
            }
        }
    }

    pub fn probability(&self, x: &[f64; N_FEATURES]) -> f64 {
        probability_of(self.margin(x))
    }

    pub fn score(&self, x: &[f64; N_FEATURES]) -> u8 {
        score_of(self.probability(x))
    }

    pub fn n_trees(&self) -> usize {
        match &self.kind {
            Kind::Gbdt { roots, .. } => roots.len(),
            Kind::Logreg { .. } => 0,
        }
    }
}

pub fn probability_of(margin: f64) -> f64 {
    if margin.is_nan() {
        return 0.5;
    }
    1.0 / (1.0 + (-margin).exp())
}

/// `round(100·p)` clamped to 0..100.
pub fn score_of(p: f64) -> u8 {
    let s = (100.0 * p).round();
    if s.is_nan() {
        50
    } else {
        s.clamp(0.0, 100.0) as u8
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn names_json() -> String {
        serde_json::to_string(&FEATURE_NAMES).unwrap()
    }

    pub(crate) fn stump(id: &str, feature: usize, threshold: f64, lo: f64, hi: f64) -> String {
        format!(
            r#"{{"format":"paysvc-risk-model/1","id":"{id}","kind":"gbdt","features":{},
            "created_at":"2026-12-04T00:00:00Z","metrics":{{"average_precision":0.5}},
            "base_score":0.0,"trees":[{{"feature":[{feature},-1,-1],"threshold":[{threshold},0,0],
            "left":[1,-1,-1],"right":[2,-1,-1],"value":[0,{lo},{hi}],"default_left":[true,false,false]}}]}}"#,
            names_json()
        )
    }

    fn x(v: &[(usize, f64)]) -> [f64; N_FEATURES] {
        let mut x = [0.0; N_FEATURES];
        for (i, val) in v {
            x[*i] = *val;
        }
        x
    }

    #[test]
    fn gbdt_stump() {
        let m = Model::load(stump("m1", 0, 5.5, -2.0, 2.0).as_bytes()).unwrap();
        assert_eq!(m.id, "m1");
        assert_eq!(m.kind_name, "gbdt");
        assert_eq!(m.metrics_json, r#"{"average_precision":0.5}"#);
        assert_eq!(m.margin(&x(&[(0, 5.5)])), -2.0);
        assert_eq!(m.margin(&x(&[(0, 5.6)])), 2.0);
        assert_eq!(m.margin(&x(&[(0, f64::NAN)])), -2.0);
        assert_eq!(m.score(&x(&[(0, 9.0)])), 88);
        assert_eq!(m.score(&x(&[(0, 0.0)])), 12);
    }

    #[test]
    fn logreg() {
        let zeros = vec![0.0; N_FEATURES];
        let mut coef = zeros.clone();
        coef[0] = 2.0;
        let mut mean = zeros.clone();
        mean[0] = 1.0;
        let mut scale = vec![1.0; N_FEATURES];
        scale[0] = 0.5;
        let s = format!(
            r#"{{"format":"paysvc-risk-model/1","id":"lr","kind":"logreg","features":{},
            "intercept":-1.0,"coef":{coef:?},"mean":{mean:?},"scale":{scale:?}}}"#,
            names_json()
        );
        let m = Model::load(s.as_bytes()).unwrap();
        // z = -1 + 2 * (x - 1) / 0.5
        let z = m.margin(&x(&[(0, 2.0)]));
        assert!((z - 3.0).abs() < 1e-12);
        assert!((m.probability(&x(&[(0, 1.0)])) - 1.0 / (1.0 + 1f64.exp())).abs() < 1e-12);
        assert_eq!(m.metrics_json, "{}");
    }

    #[test]
    fn load_errors() {
        let good = stump("m", 0, 1.0, 0.0, 1.0);
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "not valid JSON"),
            ("[]".into(), "JSON object"),
            (good.replace("paysvc-risk-model/1", "x"), "'format'"),
            (
                good.replace(r#""kind":"gbdt""#, r#""kind":"svm""#),
                "'kind'",
            ),
            (good.replace("amount_log", "amount"), "'features'"),
            (
                good.replace(r#""left":[1,-1,-1]"#, r#""left":[0,-1,-1]"#),
                "left[0]",
            ),
            (
                good.replace(r#""left":[1,-1,-1]"#, r#""left":[7,-1,-1]"#),
                "left[0]",
            ),
            (
                good.replace(r#""left":[1,-1,-1]"#, r#""left":[1,-1]"#),
                "'feature' has 3",
            ),
            (
                good.replace(r#""feature":[0,"#, r#""feature":[99,"#),
                "feature[0] = 99",
            ),
            (
                good.replace(r#""base_score":0.0"#, r#""base_score":"x""#),
                "'base_score'",
            ),
            (
                good.replace(r#""trees":["#, r#""trees":[],"x":["#),
                "'trees'",
            ),
            (good.replace(r#""id":"m""#, r#""id":"""#), "'id'"),
            (good.replace("0.5}", "\"x\"}"), "metrics.average_precision"),
        ];
        for (text, want) in cases {
            let e = Model::load(text.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{e} should contain {want}");
        }
        // 1e400 is not finite once parsed.
        let e = Model::load(
            good.replace("\"threshold\":[1", "\"threshold\":[1e400")
                .as_bytes(),
        );
        assert!(e.is_err());
    }

    #[test]
    fn scores_clamp() {
        assert_eq!(score_of(0.0), 0);
        assert_eq!(score_of(1.0), 100);
        assert_eq!(score_of(0.745), 75);
        assert_eq!(score_of(0.004), 0);
        assert_eq!(probability_of(f64::INFINITY), 1.0);
        assert_eq!(probability_of(f64::NEG_INFINITY), 0.0);
    }
}

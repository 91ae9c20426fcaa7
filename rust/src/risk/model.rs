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

/// One tree node, flattened for a branch-free walk: the next node is `next + go_right * step`.
/// Siblings are adjacent (left, then right). A leaf has `step == 0` and `next` = itself, so a
/// walk that has reached it stays there; its value is in `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    threshold: f64,
    next: u32,
    /// Feature index, plus `DEFAULT_LEFT` when a NaN goes left.
    feature: u8,
    step: u8,
}

const DEFAULT_LEFT: u8 = 0x80;

/// A tree: its root and how many steps reach every leaf (its depth).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tree {
    root: u32,
    depth: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Gbdt {
        base_score: f64,
        /// Every tree's nodes, one after another.
        nodes: Vec<Node>,
        trees: Vec<Tree>,
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

fn parse_tree(t: &Json, i: usize, nodes: &mut Vec<Node>) -> Result<Tree, String> {
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
    // Children come after their parent (no cycles) and no node has two parents (a tree).
    let mut has_parent = vec![false; n];
    let mut child = |j: usize, c: i64, side: &str| -> Result<usize, String> {
        match usize::try_from(c) {
            Ok(c) if c > j && c < n && !has_parent[c] => {
                has_parent[c] = true;
                Ok(c)
            }
            _ => Err(format!(
                "trees[{i}].{side}[{j}] = {c} must be a node after {j}, before {n}, not used twice"
            )),
        }
    };
    let mut kids = vec![(0usize, 0usize); n];
    let mut feat = vec![0u8; n];
    for j in 0..n {
        if feature[j] == -1 {
            continue;
        }
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
        feat[j] = f as u8 | if default_left[j] { DEFAULT_LEFT } else { 0 };
        kids[j] = (child(j, left[j], "left")?, child(j, right[j], "right")?);
    }
    // Lay the reachable nodes out breadth first with siblings adjacent; unreachable ones are
    // dropped. Depth = the longest root-to-leaf path.
    let base = nodes.len();
    let mut order = vec![(0usize, 0u32)]; // (file index, depth)
    let mut new_index = vec![u32::MAX; n];
    new_index[0] = 0;
    let mut depth = 0u32;
    let mut k = 0;
    while k < order.len() {
        let (j, d) = order[k];
        depth = depth.max(d);
        if feature[j] != -1 {
            let (l, r) = kids[j];
            new_index[l] = order.len() as u32;
            order.push((l, d + 1));
            new_index[r] = order.len() as u32;
            order.push((r, d + 1));
        }
        k += 1;
    }
    let at = |local: u32| -> Result<u32, String> {
        u32::try_from(base + local as usize).map_err(|_| "too many nodes".to_owned())
    };
    for (local, &(j, _)) in order.iter().enumerate() {
        nodes.push(if feature[j] == -1 {
            Node {
                threshold: value[j],
                next: at(local as u32)?,
                feature: 0,
                step: 0,
            }
        } else {
            Node {
                threshold: threshold[j],
                next: at(new_index[kids[j].0])?,
                feature: feat[j],
                step: 1,
            }
        });
    }
    Ok(Tree {
        root: at(0)?,
        depth,
    })
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
                let mut parsed = Vec::with_capacity(trees.len());
                for (i, t) in trees.iter().enumerate() {
                    parsed.push(parse_tree(t, i, &mut nodes)?);
                }
                (
                    "gbdt",
                    Kind::Gbdt {
                        base_score,
                        nodes,
                        trees: parsed,
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
                trees,
            } => {
                // A fixed number of steps per tree and no data-dependent branch, four trees
                // walked side by side: their loads overlap instead of waiting on each other and
                // no split is mispredicted. Indices were checked at load.
                let step = |i: usize| -> usize {
                    let n = nodes[i];
                    let v = x[usize::from(n.feature & !DEFAULT_LEFT)];
                    let go_left = (v <= n.threshold) | (v.is_nan() & (n.feature >= DEFAULT_LEFT));
                    (n.next + u32::from(!go_left) * u32::from(n.step)) as usize
                };
                let mut sum = *base_score;
                let mut quads = trees.chunks_exact(4);
                for q in &mut quads {
                    let mut i = [
                        q[0].root as usize,
                        q[1].root as usize,
                        q[2].root as usize,
                        q[3].root as usize,
                    ];
                    let common = q.iter().map(|t| t.depth).min().unwrap_or(0);
                    for _ in 0..common {
                        i = [step(i[0]), step(i[1]), step(i[2]), step(i[3])];
                    }
                    for (k, t) in q.iter().enumerate() {
                        for _ in common..t.depth {
                            i[k] = step(i[k]);
                        }
                        sum += nodes[i[k]].threshold;
                    }
                }
                for t in quads.remainder() {
                    let mut i = t.root as usize;
                    for _ in 0..t.depth {
                        i = step(i);
                    }
                    sum += nodes[i].threshold;
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
            Kind::Gbdt { trees, .. } => trees.len(),
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
    fn unbalanced_tree_in_any_order() {
        // 0: x0 <= 1 ? 3 : 1;  1: x1 <= 2 ? 4 : 2;  leaves 2 = 30, 3 = 10, 4 = 20.
        let s = format!(
            r#"{{"format":"paysvc-risk-model/1","id":"u","kind":"gbdt","features":{},
            "base_score":0.5,"trees":[{{"feature":[0,1,-1,-1,-1],"threshold":[1,2,0,0,0],
            "left":[3,4,-1,-1,-1],"right":[1,2,-1,-1,-1],"value":[0,0,30,10,20],
            "default_left":[false,true,false,false,false]}}]}}"#,
            names_json()
        );
        let m = Model::load(s.as_bytes()).unwrap();
        assert_eq!(m.margin(&x(&[(0, 0.0)])), 10.5);
        assert_eq!(m.margin(&x(&[(0, 5.0), (1, 2.0)])), 20.5);
        assert_eq!(m.margin(&x(&[(0, 5.0), (1, 3.0)])), 30.5);
        assert_eq!(m.margin(&x(&[(0, f64::NAN), (1, f64::NAN)])), 20.5);
        // A node with two parents is refused.
        let twice = s.replace(r#""left":[3,4,-1,-1,-1]"#, r#""left":[3,3,-1,-1,-1]"#);
        assert!(
            Model::load(twice.as_bytes())
                .unwrap_err()
                .contains("not used twice")
        );
        // A single leaf is a tree.
        let leaf = s.replace(
            r#""feature":[0,1,-1,-1,-1]"#,
            r#""feature":[-1,1,-1,-1,-1]"#,
        );
        assert_eq!(Model::load(leaf.as_bytes()).unwrap().margin(&x(&[])), 0.5);
    }

    #[test]
    fn thresholds_parse_exactly() {
        // A row equal to a threshold must go left, so thresholds are read correctly rounded
        // (serde_json's `float_roundtrip`), as Python writes them.
        for t in [
            "0.1",
            "8.517193191416238",
            "2.2250738585072011e-308",
            "9007199254740993",
            "1e23",
        ] {
            let v: f64 = t.parse().unwrap();
            let m = Model::load(
                stump("t", 0, 0.0, -1.0, 1.0)
                    .replace(
                        r#""threshold":[0,0,0]"#,
                        &format!(r#""threshold":[{t},0,0]"#),
                    )
                    .as_bytes(),
            )
            .unwrap();
            assert_eq!(m.margin(&x(&[(0, v)])), -1.0, "{t}");
            assert_eq!(
                m.margin(&x(&[(0, f64::from_bits(v.to_bits() + 1))])),
                1.0,
                "{t}"
            );
        }
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

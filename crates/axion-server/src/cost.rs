//! Cost from usage and model, with Langfuse's default price table.
//!
//! The first model whose `matchPattern` matches wins; within it the first non-default pricing
//! tier (by priority) whose conditions all hold, else the default tier. A cost the client sent
//! always wins over a computed one.

use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::Value;

use crate::JsonMap;

const DEFAULT_PRICES: &str = include_str!("../data/model-prices.json");

/// A price table: models in match order.
#[derive(Debug)]
pub struct Pricing {
    models: Vec<Model>,
    /// Model name → index of the first matching model; the regexes run once per name.
    matched: std::sync::RwLock<std::collections::HashMap<String, Option<usize>>>,
}

/// Distinct model names remembered before the cache starts over.
const MATCH_CACHE_SIZE: usize = 4096;

#[derive(Debug)]
struct Model {
    id: String,
    pattern: Regex,
    tiers: Vec<Tier>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tier {
    #[serde(default)]
    is_default: bool,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    conditions: Vec<Condition>,
    prices: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    values: Vec<Value>,
    #[serde(default)]
    usage_detail_pattern: Option<String>,
    #[serde(default)]
    operator: String,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    case_sensitive: bool,
    #[serde(skip)]
    usage_regex: Option<Regex>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawModel {
    id: String,
    match_pattern: String,
    #[serde(default)]
    pricing_tiers: Vec<Tier>,
}

/// What the price table says about one observation (serialised as an observation's stored
/// `derived` column).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Priced {
    /// The matched model's id.
    pub model_id: Option<String>,
    /// The chosen tier's prices per unit for `input`, `output`, `total`.
    pub prices: BTreeMap<String, f64>,
    /// Usage with `total` filled in.
    pub usage: BTreeMap<String, f64>,
    /// Cost per usage key plus `total` (provided, or computed when none was provided).
    pub cost: BTreeMap<String, f64>,
}

impl Priced {
    /// The JSON text of this (the stored `derived` column): byte for byte what
    /// `serde_json::to_string` writes, without serde's machinery, which took 2.5k instructions
    /// per ingested span.
    ///
    /// ```
    /// let mut priced = axion_server::cost::Priced::default();
    /// priced.model_id = Some("gpt-4o".into());
    /// priced.usage.insert("input".into(), 12.0);
    /// assert_eq!(priced.to_json(), serde_json::to_string(&priced).unwrap());
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"modelId\":");
        match &self.model_id {
            Some(id) => axion_model::write_json_string(&mut out, id),
            None => out.extend_from_slice(b"null"),
        }
        for (key, map) in [
            ("prices", &self.prices),
            ("usage", &self.usage),
            ("cost", &self.cost),
        ] {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":{");
            for (index, (name, number)) in map.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                axion_model::write_json_string(&mut out, name);
                out.push(b':');
                // Writing a number to a `Vec` cannot fail.
                let _ = serde_json::to_writer(&mut out, number);
            }
            out.push(b'}');
        }
        out.push(b'}');
        // Only JSON text and UTF-8 keys were written.
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Pricing {
    /// Langfuse's default table (167 models).
    pub fn langfuse_defaults() -> Self {
        Self::from_json(DEFAULT_PRICES).unwrap_or_else(|_| Self {
            models: Vec::new(),
            matched: Default::default(),
        })
    }

    /// A table in Langfuse's JSON format. Models whose pattern does not compile are skipped.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let raw: Vec<RawModel> = serde_json::from_str(text)?;
        let models = raw
            .into_iter()
            .filter_map(|model| {
                let pattern = Regex::new(&model.match_pattern).ok()?;
                let mut tiers = model.pricing_tiers;
                for tier in &mut tiers {
                    for condition in &mut tier.conditions {
                        condition.usage_regex =
                            condition.usage_detail_pattern.as_deref().and_then(|p| {
                                RegexBuilder::new(p)
                                    .case_insensitive(!condition.case_sensitive)
                                    .build()
                                    .ok()
                            });
                    }
                }
                tiers.sort_by_key(|tier| (tier.is_default, tier.priority));
                Some(Model {
                    id: model.id,
                    pattern,
                    tiers,
                })
            })
            .collect();
        Ok(Self {
            models,
            matched: Default::default(),
        })
    }

    fn find_model(&self, name: &str) -> Option<&Model> {
        let cached = self
            .matched
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied();
        let index = match cached {
            Some(index) => index,
            None => {
                let index = self
                    .models
                    .iter()
                    .position(|model| model.pattern.is_match(name));
                let mut matched = self.matched.write().unwrap_or_else(|e| e.into_inner());
                if matched.len() >= MATCH_CACHE_SIZE {
                    matched.clear();
                }
                matched.insert(name.to_owned(), index);
                index
            }
        };
        index.map(|index| &self.models[index])
    }

    /// Number of models in the table.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Usage totals, tier prices and cost for an observation's merged `model`,
    /// `usageDetails`, `costDetails` and `modelParameters`/`metadata` (for tier conditions).
    pub fn price(&self, observation: &(impl Priceable + ?Sized)) -> Priced {
        let mut usage = numbers(observation.object("usageDetails"));
        if !usage.is_empty() && !usage.contains_key("total") {
            let total = usage.values().sum();
            usage.insert("total".into(), total);
        }
        let provided = numbers(observation.object("costDetails"));
        let model = observation.model().and_then(|name| self.find_model(name));
        let tier = model.and_then(|model| {
            if usage.is_empty() {
                return None;
            }
            model
                .tiers
                .iter()
                .find(|tier| !tier.is_default && tier.matches(&usage, observation))
                .or_else(|| model.tiers.iter().find(|tier| tier.is_default))
        });
        let mut priced = Priced {
            model_id: model.map(|model| model.id.clone()),
            prices: tier
                .map(|tier| {
                    tier.prices
                        .iter()
                        .filter(|(key, _)| matches!(key.as_str(), "input" | "output" | "total"))
                        .map(|(key, price)| (key.clone(), *price))
                        .collect()
                })
                .unwrap_or_default(),
            usage,
            cost: BTreeMap::new(),
        };
        if !provided.is_empty() {
            let mut cost = provided;
            if !cost.contains_key("total") {
                let total = cost.values().sum();
                cost.insert("total".into(), total);
            }
            priced.cost = cost;
        } else if let Some(tier) = tier {
            let mut cost = BTreeMap::new();
            for (key, units) in &priced.usage {
                if key == "total" {
                    continue;
                }
                if let Some(price) = tier.prices.get(key) {
                    cost.insert(key.clone(), round(price * units));
                }
            }
            let total = match (tier.prices.get("total"), priced.usage.get("total")) {
                (Some(price), Some(units)) => round(price * units),
                _ => round(cost.values().sum()),
            };
            if !cost.is_empty() || tier.prices.contains_key("total") {
                cost.insert("total".into(), total);
            }
            priced.cost = cost;
        }
        priced
    }
}

/// What pricing reads of an observation: `model`, `usageDetails`, `costDetails`, and for tier
/// conditions entries of `modelParameters` and `metadata`. A stored body (a JSON object) is
/// one; so is a span the server maps straight to a row.
pub trait Priceable {
    /// `model`.
    fn model(&self) -> Option<&str>;

    /// The object field `name` (`usageDetails`, `costDetails`, `modelParameters`, `metadata`).
    fn object(&self, name: &str) -> Option<&JsonMap>;

    /// `key` of the object field `name`.
    fn entry(&self, name: &str, key: &str) -> Option<&Value> {
        self.object(name).and_then(|object| object.get(key))
    }
}

impl Priceable for JsonMap {
    fn model(&self) -> Option<&str> {
        self.get("model").and_then(Value::as_str)
    }

    fn object(&self, name: &str) -> Option<&JsonMap> {
        self.get(name).and_then(Value::as_object)
    }
}

/// Twelve decimal places: enough for per-token prices, and no binary-float tails in JSON.
fn round(value: f64) -> f64 {
    (value * 1e12).round() / 1e12
}

impl Tier {
    fn matches(
        &self,
        usage: &BTreeMap<String, f64>,
        observation: &(impl Priceable + ?Sized),
    ) -> bool {
        !self.conditions.is_empty() && self.conditions.iter().all(|c| c.holds(usage, observation))
    }
}

impl Condition {
    fn holds(
        &self,
        usage: &BTreeMap<String, f64>,
        observation: &(impl Priceable + ?Sized),
    ) -> bool {
        if let Some(regex) = &self.usage_regex {
            let sum: f64 = usage
                .iter()
                .filter(|(key, _)| regex.is_match(key))
                .map(|(_, units)| units)
                .sum();
            let threshold = self.value.unwrap_or(0.0);
            return match self.operator.as_str() {
                "gt" => sum > threshold,
                "gte" => sum >= threshold,
                "lt" => sum < threshold,
                "lte" => sum <= threshold,
                "eq" => sum == threshold,
                "neq" => sum != threshold,
                _ => false,
            };
        }
        let field = match self.source.as_deref() {
            Some("model_parameters") => "modelParameters",
            Some("metadata") => "metadata",
            _ => return false,
        };
        let Some(key) = &self.key else { return false };
        let Some(actual) = observation.entry(field, key) else {
            return false;
        };
        self.operator == "in" && self.values.iter().any(|wanted| same_scalar(wanted, actual))
    }
}

fn same_scalar(wanted: &Value, actual: &Value) -> bool {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    wanted == actual || text(wanted) == text(actual)
}

/// A JSON object of numbers (or numeric strings) as a map; everything else is dropped.
pub fn numeric_map(value: Option<&Value>) -> BTreeMap<String, f64> {
    numbers(value.and_then(Value::as_object))
}

/// [`numeric_map`] of an object.
fn numbers(map: Option<&JsonMap>) -> BTreeMap<String, f64> {
    let Some(map) = map else {
        return BTreeMap::new();
    };
    map.iter()
        .filter_map(|(key, value)| {
            let number = match value {
                Value::Number(number) => number.as_f64()?,
                Value::String(text) => text.trim().parse().ok()?,
                _ => return None,
            };
            Some((key.clone(), number))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn observation(value: Value) -> JsonMap {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn priced_json_is_what_serde_writes() {
        let mut cases = vec![Priced::default()];
        let mut full = Priced {
            model_id: Some("model \"q\" é\n".into()),
            ..Default::default()
        };
        for (index, key) in ["input", "output", "total", "odd \"key\"\t", "ü"]
            .iter()
            .enumerate()
        {
            let number = [0.0, 1.5e-7, 12.0, f64::NAN, 1e300][index];
            full.prices.insert((*key).into(), number);
            full.usage.insert((*key).into(), number * 3.0);
            full.cost.insert((*key).into(), -number);
        }
        cases.push(full.clone());
        full.usage.clear();
        full.model_id = None;
        cases.push(full);
        for priced in cases {
            assert_eq!(priced.to_json(), serde_json::to_string(&priced).unwrap());
        }
    }

    #[test]
    fn every_default_pattern_compiles() {
        let raw: Vec<Value> = serde_json::from_str(DEFAULT_PRICES).unwrap();
        assert_eq!(Pricing::langfuse_defaults().len(), raw.len());
    }

    #[test]
    fn computes_cost_from_the_matching_model() {
        let pricing = Pricing::langfuse_defaults();
        let priced = pricing.price(&observation(json!({
            "model": "gpt-4o", "usageDetails": {"input": 1000, "output": 100}
        })));
        assert_eq!(priced.usage["total"], 1100.0);
        assert_eq!(priced.cost["input"], 0.0025);
        assert_eq!(priced.cost["output"], 0.001);
        assert_eq!(priced.cost["total"], 0.0035);
        assert_eq!(priced.prices["input"], 2.5e-6);
        assert!(priced.model_id.is_some());
        let prefixed = pricing.price(&observation(json!({
            "model": "OpenAI/GPT-4o", "usageDetails": {"input": 1000}
        })));
        assert_eq!(prefixed.cost["total"], 0.0025);
    }

    #[test]
    fn tier_conditions_pick_the_fast_prices() {
        let pricing = Pricing::langfuse_defaults();
        let priced = pricing.price(&observation(json!({
            "model": "gpt-4o", "usageDetails": {"input": 1000},
            "modelParameters": {"service_tier": "priority"}
        })));
        assert_eq!(priced.cost["input"], 0.00425);
    }

    #[test]
    fn provided_cost_wins_and_unknown_models_cost_nothing() {
        let pricing = Pricing::langfuse_defaults();
        let priced = pricing.price(&observation(json!({
            "model": "gpt-4o", "usageDetails": {"input": 1000},
            "costDetails": {"input": 1.0, "output": 2.0}
        })));
        assert_eq!(priced.cost["total"], 3.0);
        let unknown = pricing.price(&observation(json!({
            "model": "my-own-model", "usageDetails": {"input": 1000}
        })));
        assert!(unknown.cost.is_empty());
        assert_eq!(unknown.model_id, None);
    }
}

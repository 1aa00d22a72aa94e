//! Tests for rule spec parsing (file shape) and validation (every error, with its path).

use super::*;

fn spend(json: &str) -> SpendRuleSpec {
    serde_json::from_str(json).unwrap()
}

fn paths(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn contract_example_parses_with_defaults() {
    let rule = spend(
        r#"{"id":"per-user-daily","budget_usd":5.0,"window":"1d","dimensions":[
            {"key":"metadata.user_id","mode":"split"},
            {"key":"provider","mode":"filter","values":["openai","anthropic"]}]}"#,
    );
    assert_eq!(rule.window_kind, WindowKind::Fixed);
    assert_eq!(rule.timezone, "UTC");
    assert_eq!(rule.action, Action::Block);
    assert_eq!(rule.reserve, Reserve::WorstCase);
    let valid = rule.validate().unwrap();
    assert_eq!(valid.budget_nanos(), 5_000_000_000);
    assert_eq!(valid.dimensions().len(), 2);
    assert_eq!(valid.spec(), &rule);
}

#[test]
fn unknown_fields_and_values_are_refused_by_serde() {
    assert!(serde_json::from_str::<SpendRuleSpec>(r#"{"id":"a","budget_usd":1,"window":"1d","colour":1}"#).is_err());
    assert!(
        serde_json::from_str::<SpendRuleSpec>(r#"{"id":"a","budget_usd":1,"window":"1d","action":"warn"}"#).is_err()
    );
    assert!(
        serde_json::from_str::<SpendRuleSpec>(r#"{"id":"a","budget_usd":1,"window":"1d","reserve":"all"}"#).is_err()
    );
}

#[test]
fn collects_every_error_with_its_path() {
    let rule = spend(
        r#"{"id":"bad id!","budget_usd":-1,"window":"1x","timezone":"Nowhere/Special","dimensions":[
            {"key":"provider","mode":"filter"},
            {"key":"metadata.user_id","mode":"split","values":["u1"]},
            {"key":"colour","mode":"split"},
            {"key":"provider","mode":"split"},
            {"key":"metadata.","mode":"split"}]}"#,
    );
    let errors = rule.validate().unwrap_err();
    assert_eq!(
        paths(&errors),
        [
            "id",
            "budget_usd",
            "window",
            "timezone",
            "dimensions[0].values",
            "dimensions[1].values",
            "dimensions[2].key",
            "dimensions[3].key",
            "dimensions[4].key"
        ]
    );
    assert!(errors[3].message.contains("unknown time zone \"Nowhere/Special\""));
    assert!(errors[7].message.contains("listed twice"));
    assert_eq!(
        errors[0].clone().prefixed("spend_limits[3]").to_string(),
        "spend_limits[3].id: may contain only ASCII letters, digits, '_', '-', '.' and ':'"
    );
}

#[test]
fn budget_must_be_positive_finite_and_representable() {
    for (budget, message) in [
        (0.0, "positive"),
        (f64::NAN, "positive"),
        (f64::INFINITY, "positive"),
        (1e10, "at most"),
        (1e-12, "rounds to 0"),
    ] {
        let mut rule = spend(r#"{"id":"a","budget_usd":1,"window":"1d"}"#);
        rule.budget_usd = budget;
        let errors = rule.validate().unwrap_err();
        assert_eq!(paths(&errors), ["budget_usd"]);
        assert!(errors[0].message.contains(message), "{budget}: {}", errors[0].message);
    }
}

#[test]
fn rolling_months_are_refused() {
    let rule = spend(r#"{"id":"a","budget_usd":1,"window":"1mo","window_kind":"rolling"}"#);
    let errors = rule.validate().unwrap_err();
    assert_eq!(paths(&errors), ["window"]);
    assert!(errors[0].message.contains("30d"));
}

#[test]
fn rate_rules_validate() {
    let rule: RateRuleSpec = serde_json::from_str(
        r#"{"id":"per-key-rpm","limit":600,"per":"requests","window":"1m",
            "dimensions":[{"key":"metadata.api_key_name","mode":"split"}]}"#,
    )
    .unwrap();
    let valid = rule.validate().unwrap();
    assert_eq!(valid.limit(), 600);
    let bad: RateRuleSpec = serde_json::from_str(r#"{"id":"","limit":0,"per":"requests","window":"1mo"}"#).unwrap();
    assert_eq!(paths(&bad.validate().unwrap_err()), ["id", "limit", "window"]);
    let tokens: RateRuleSpec =
        serde_json::from_str(r#"{"id":"t","limit":1000,"per":"tokens","window":"1mo"}"#).unwrap();
    assert!(tokens.validate().is_ok());
}

#[test]
fn routes_validate() {
    let route = RouteSpec {
        name: "cheap-first".into(),
        candidates: vec!["anthropic/claude-sonnet-4-5".into(), "openrouter/openai/gpt-4o".into()],
    }
    .validate()
    .unwrap();
    assert_eq!(route.candidates()[1].provider, "openrouter");
    assert_eq!(route.candidates()[1].model, "openai/gpt-4o");
    let bad = RouteSpec { name: String::new(), candidates: vec!["gpt-4o".into(), "/x".into()] };
    assert_eq!(paths(&bad.validate().unwrap_err()), ["name", "candidates[0]", "candidates[1]"]);
    let empty = RouteSpec { name: "r".into(), candidates: vec![] };
    assert_eq!(paths(&empty.validate().unwrap_err()), ["candidates"]);
}

#[test]
fn lists_prefix_paths_and_refuse_duplicate_ids() {
    let specs =
        vec![spend(r#"{"id":"a","budget_usd":1,"window":"1d"}"#), spend(r#"{"id":"a","budget_usd":1,"window":"1q"}"#)];
    let errors = validate_spend_rules(&specs).unwrap_err();
    assert_eq!(paths(&errors), ["[1].id", "[1].window"]);
    assert_eq!(validate_spend_rules(&specs[..1]).unwrap().len(), 1);
    let routes = vec![RouteSpec { name: "r".into(), candidates: vec!["a/b".into()] }; 2];
    assert_eq!(paths(&validate_routes(&routes).unwrap_err()), ["[1].name"]);
    assert!(validate_rate_rules(&[]).unwrap().is_empty());
}

#[test]
fn s17_model_filters_hold_canonical_names_and_the_spec_keeps_them_as_written() {
    let rule = spend(
        r#"{"id":"m","budget_usd":1.0,"window":"1d","dimensions":[
            {"key":"model","mode":"filter","values":["GPT-4o-mini","gpt-4o-mini-2024-07-18","claude-sonnet-4.5"]},
            {"key":"provider","mode":"filter","values":["OpenAI"]}]}"#,
    );
    let valid = rule.validate().unwrap();
    let values = |index: usize| match &valid.dimensions()[index].mode {
        DimensionMode::Filter(values) => values.clone(),
        DimensionMode::Split => Vec::new(),
    };
    assert_eq!(values(0), ["gpt-4o-mini", "claude-sonnet-4-5"], "canonical, duplicates merged");
    assert_eq!(values(1), ["OpenAI"], "other dimensions are compared as written");
    assert_eq!(valid.spec(), &rule, "the admin API shows the rule as it was written");
    assert!(valid.applies_to(&RequestDims::new("OpenAI", &crate::canonical_model("GPT-4O-MINI"))));
    let rate: RateRuleSpec = serde_json::from_str(
        r#"{"id":"r","limit":5,"per":"requests","window":"1m",
            "dimensions":[{"key":"model","mode":"filter","values":["Mistral-Large-Latest"]}]}"#,
    )
    .unwrap();
    let rate = rate.validate().unwrap();
    assert!(rate.dimensions.applies_to(&RequestDims::new("mistral", &crate::canonical_model("mistral-large-2411"))));
}

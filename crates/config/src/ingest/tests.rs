//! `[ingest]` loading: defaults, every provider section, and each problem reported with its key path.

use crate::Config;

fn env() -> Vec<(String, String)> {
    vec![
        ("OPENAI_ADMIN_KEY".into(), "sk-admin-1".into()),
        ("GCP_SA_JSON".into(), r#"{"client_email":"a@b.iam.gserviceaccount.com","private_key":"k"}"#.into()),
    ]
}

fn paths(text: &str) -> Vec<String> {
    match Config::from_toml(text, &env()) {
        Ok(_) => Vec::new(),
        Err(error) => error.issues.into_iter().map(|i| i.path).collect(),
    }
}

#[test]
fn defaults_configure_no_provider() {
    let config = Config::from_toml("", &[]).unwrap();
    assert!(!config.ingest.any());
    assert_eq!(config.ingest.interval.as_secs(), 3_600);
    assert_eq!(config.ingest.lookback.as_secs(), 48 * 3_600);
    assert_eq!(config.ingest.raw_retention.as_secs(), 90 * 86_400);
    assert!((config.ingest.drift_threshold - 0.01).abs() < f64::EPSILON);
}

#[test]
fn every_section_loads_and_secrets_are_redacted() {
    let text = r#"
        [ingest]
        interval = "15m"
        [ingest.openai]
        admin_key = "${OPENAI_ADMIN_KEY}"
        project_ids = ["proj_1"]
        [ingest.anthropic]
        admin_key = "sk-ant-admin01-x"
        [ingest.google]
        service_account_json = "${GCP_SA_JSON}"
        project = "billing-proj"
        table = "billing.gcp_billing_export_v1_0000"
    "#;
    let config = Config::from_toml(text, &env()).unwrap();
    let openai = config.ingest.openai.as_ref().unwrap();
    assert_eq!(openai.admin_key.expose(), "sk-admin-1");
    assert_eq!(openai.project_ids, ["proj_1"]);
    assert_eq!(openai.base_url.as_str(), "https://api.openai.com/v1");
    assert_eq!(config.ingest.google.as_ref().unwrap().table, "billing.gcp_billing_export_v1_0000");
    let shown = serde_json::to_string(&config.redacted()).unwrap();
    assert!(!shown.contains("sk-admin-1") && !shown.contains("sk-ant-admin01-x") && !shown.contains("client_email"));
}

#[test]
fn problems_name_their_key_paths() {
    let text = r#"
        [ingest]
        interval = "10s"
        lookback = "90d"
        drift_threshold = -1.0
        [ingest.openai]
        base_url = "ftp://x"
        project_ids = [""]
        [ingest.anthropic]
        admin_key = ""
        [ingest.google]
        service_account_json = "not json"
        project = "p"
        table = "x; DROP TABLE y"
    "#;
    let found = paths(text);
    for path in [
        "ingest.interval",
        "ingest.lookback",
        "ingest.drift_threshold",
        "ingest.openai.admin_key",
        "ingest.openai.base_url",
        "ingest.openai.project_ids[0]",
        "ingest.anthropic.admin_key",
        "ingest.google.service_account_json",
        "ingest.google.table",
    ] {
        assert!(found.iter().any(|p| p == path), "{path} not in {found:?}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    assert_eq!(paths("[ingest.openai]\nadmin_key = \"k\"\nbogus = 1\n"), ["ingest.openai.bogus"]);
}

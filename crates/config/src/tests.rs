//! Tests of loading and validation.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
}

#[test]
fn empty_file_gives_the_contract_defaults() {
    let config = Config::from_toml("", &[]).unwrap();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:8081");
    assert_eq!(config.database.url.expose(), "sqlite://tollgate.db");
    assert_eq!(config.server.max_request_body, 25 * 1024 * 1024);
    assert_eq!(config.server.default_provider, "openai");
    assert_eq!(config.gateway.metadata_max_entries, 20);
    for (name, ..) in BUILTIN_PROVIDERS {
        assert!(config.providers.contains_key(*name), "{name}");
    }
    assert_eq!(config.providers["openai"].base_url.as_ref().unwrap().as_str(), "https://api.openai.com/v1");
}

#[test]
fn unknown_key_names_its_path() {
    let err = Config::from_toml("[server]\nlisten = \"0.0.0.0:1\"\nlisen = 3\n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("server"), "{text}");
    assert!(text.contains("lisen"), "{text}");
}

#[test]
fn bad_values_are_all_reported_with_paths() {
    let toml = r#"
[server]
listen = "nowhere"
max_request_body = "25 parsecs"
[gateway]
max_attempts = 9
backoff = "random"
[database]
flush_interval = "soon"
"#;
    let err = Config::from_toml(toml, &[]).unwrap_err();
    let paths: Vec<&str> = err.issues.iter().map(|i| i.path.as_str()).collect();
    for expected in [
        "server.listen",
        "server.max_request_body",
        "gateway.max_attempts",
        "gateway.backoff",
        "database.flush_interval",
    ] {
        assert!(paths.contains(&expected), "{expected} missing from {paths:?}");
    }
}

#[test]
fn interpolation_reads_the_environment_and_names_unset_variables() {
    let toml = "[gateway]\nauth_token = \"${GW}\"\n[providers.openai]\napi_key = \"${NOPE}\"\n";
    let err = Config::from_toml(toml, &env(&[("GW", "tok")])).unwrap_err();
    assert_eq!(err.issues.len(), 1);
    assert_eq!(err.issues[0].path, "providers.openai.api_key");
    assert!(err.issues[0].message.contains("NOPE"));

    let config = Config::from_toml(toml, &env(&[("GW", "tok"), ("NOPE", "sk-1")])).unwrap();
    assert_eq!(config.gateway.auth_token.unwrap().expose(), "tok");
    assert_eq!(config.providers["openai"].api_key.as_ref().unwrap().expose(), "sk-1");
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1000\"\n[admin]\npublic_metrics = true\n").unwrap();
    let source = Source {
        file: Some(path),
        env: Some(env(&[
            ("TOLLGATE_SERVER__LISTEN", "127.0.0.1:2000"),
            ("TOLLGATE_ADMIN__PUBLIC_METRICS", "false"),
            ("TOLLGATE_GATEWAY__METADATA_MAX_ENTRIES", "7"),
            ("TOLLGATE_DATABASE__URL", "postgres://u:p@h/db"),
            // Set by Kubernetes for a Service named "tollgate": not ours, ignored.
            ("TOLLGATE_SERVICE_HOST", "10.0.0.1"),
            ("TOLLGATE_PORT", "tcp://10.0.0.1:8080"),
        ])),
    };
    let config = Config::load(&source).unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:2000");
    assert!(!config.admin.public_metrics);
    assert_eq!(config.gateway.metadata_max_entries, 7);
    assert_eq!(config.database.url.expose(), "postgres://u:p@h/db");
}

#[test]
fn admin_beyond_loopback_needs_a_token() {
    let err = Config::from_toml("[admin]\nlisten = \"0.0.0.0:8081\"\n", &[]).unwrap_err();
    assert_eq!(err.issues[0].path, "admin.token");
    assert!(Config::from_toml("[admin]\nlisten = \"0.0.0.0:8081\"\ntoken = \"t\"\n", &[]).is_ok());
}

#[test]
fn custom_providers_need_a_kind_and_a_base_url() {
    let err = Config::from_toml("[providers.local]\nbase_url = \"http://x\"\n", &[]).unwrap_err();
    assert_eq!(err.issues[0].path, "providers.local.kind");
    let err = Config::from_toml("[providers.local]\nkind = \"openai-compatible\"\n", &[]).unwrap_err();
    assert_eq!(err.issues[0].path, "providers.local.base_url");
    let config = Config::from_toml(
        "[providers.local]\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:11434/v1\"\nhosted = true\n",
        &[],
    )
    .unwrap();
    assert!(config.providers["local"].hosted);
    assert_eq!(config.providers["local"].family, ProviderFamily::OpenAi);
}

#[test]
fn routes_name_bad_candidates() {
    let err =
        Config::from_toml("[[routes]]\nname = \"r\"\ncandidates = [\"openai/gpt-4o\", \"nope/x\"]\n", &[]).unwrap_err();
    assert_eq!(err.issues[0].path, "routes[0].candidates[1]");
}

#[test]
fn secrets_are_redacted_in_debug_and_serialize() {
    let s = Secret::new("sk-very-secret");
    assert_eq!(format!("{s:?}"), "[redacted]");
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
    assert!(s.matches(b"sk-very-secret"));
    assert!(!s.matches(b"sk-very-secreT"));
    assert!(!s.matches(b"sk-very-secret2"));
    assert!(!s.matches(b""));
}

#[test]
fn units_parse() {
    assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
    assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
    assert_eq!(parse_duration("1d").unwrap().as_secs(), 86_400);
    assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
    assert!(parse_duration("1x").is_err());
    assert!(parse_duration("s").is_err());
    assert_eq!(parse_byte_size("25MiB").unwrap(), 25 << 20);
    assert_eq!(parse_byte_size("1000").unwrap(), 1000);
    assert!(parse_byte_size("3 potatoes").is_err());
}

#[test]
fn redacted_hides_every_secret() {
    let toml = r#"
[admin]
token = "admin-secret"
[gateway]
auth_token = "gw-secret"
[database]
url = "postgres://user:db-secret@localhost/tollgate"
[providers.openai]
api_key = "sk-secret"
"#;
    let config = Config::from_toml(toml, &[]).unwrap();
    let text = toml::to_string(&config.redacted()).unwrap();
    for secret in ["admin-secret", "gw-secret", "db-secret", "sk-secret"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("[redacted]"));
    assert!(format!("{config:?}").find("sk-secret").is_none());
}

#[test]
fn unset_variables_and_unknown_keys_are_reported_together() {
    let err = Config::from_toml("[server]\nlisen = 1\n[gateway]\nauth_token = \"${UNSET_ONE}\"\n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("UNSET_ONE"), "{text}");
    assert!(text.contains("lisen"), "{text}");
}

#[test]
fn the_example_config_is_valid_and_documents_every_section() {
    let text = include_str!("../../../config/tollgate.example.toml");
    let config = Config::from_toml(text, &[]).unwrap();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    for section in [
        "[server]",
        "[admin]",
        "[database]",
        "[logging]",
        "[gateway]",
        "[pricing]",
        "[stats]",
        "spend_limits",
        "rate_limits",
        "routes",
    ] {
        assert!(text.contains(section), "{section} is not documented");
    }
}

#[test]
fn spend_scan_max_rows_defaults_and_refuses_zero() {
    let config = Config::from_toml("", &[]).unwrap();
    assert_eq!(config.database.spend_scan_max_rows, 100_000);
    let config = Config::from_toml("[database]\nspend_scan_max_rows = 10\n", &[]).unwrap();
    assert_eq!(config.database.spend_scan_max_rows, 10);
    let text = Config::from_toml("[database]\nspend_scan_max_rows = 0\n", &[]).unwrap_err().to_string();
    assert!(text.contains("database.spend_scan_max_rows"), "{text}");
}

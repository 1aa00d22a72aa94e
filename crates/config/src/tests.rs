//! Tests of loading and validation.

use std::time::Duration;

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
        let loopback = ["ollama", "vllm"].contains(name);
        assert_eq!(config.providers.contains_key(*name), !loopback, "{name}");
    }
    assert_eq!(config.server.body_timeout, Duration::from_mins(1));
    assert_eq!(config.server.max_connections, 10_000);
    assert!((config.gateway.max_custom_cost_usd - 100.0).abs() < f64::EPSILON);
    assert_eq!(config.gateway.max_custom_cost_nanos, 100_000_000_000);
    assert_eq!(config.gateway.custom_cost_from, vec![CredentialKind::GatewayToken]);
    assert!(config.gateway.custom_cost_allowed(CredentialKind::GatewayToken));
    assert!(!config.gateway.custom_cost_allowed(CredentialKind::VirtualKey));
    assert_eq!(config.gateway.max_model_chars, 256);
    assert_eq!(config.pricing.unpriced, UnpricedPolicy::Block);
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

fn paths(err: &ConfigError) -> Vec<&str> {
    err.issues.iter().map(|i| i.path.as_str()).collect()
}

fn issue<'a>(err: &'a ConfigError, path: &str) -> &'a ConfigIssue {
    err.issues.iter().find(|i| i.path == path).unwrap_or_else(|| panic!("no issue at {path}: {err}"))
}

#[test]
fn hardening_keys_are_read_and_checked_with_their_paths() {
    let toml = r#"
[server]
body_timeout = "15s"
max_connections = 3
[gateway]
max_custom_cost_usd = 2.5
custom_cost_from = ["jwt", "virtual_key", "jwt"]
max_model_chars = 4096
[pricing]
unpriced = "allow"
"#;
    let config = Config::from_toml(toml, &[]).unwrap();
    assert_eq!(config.server.body_timeout, Duration::from_secs(15));
    assert_eq!(config.server.max_connections, 3);
    assert_eq!(config.gateway.max_custom_cost_nanos, 2_500_000_000);
    assert_eq!(config.gateway.custom_cost_from, vec![CredentialKind::Jwt, CredentialKind::VirtualKey]);
    assert!(!config.gateway.custom_cost_allowed(CredentialKind::GatewayToken));
    assert_eq!(config.gateway.max_model_chars, 4096);
    assert_eq!(config.pricing.unpriced, UnpricedPolicy::Allow);

    let nobody = Config::from_toml("[gateway]\ncustom_cost_from = []\n", &[]).unwrap();
    assert!(nobody.gateway.custom_cost_from.is_empty());

    let bad = r#"
[server]
body_timeout = "0s"
max_connections = 0
[gateway]
max_custom_cost_usd = 0.0
custom_cost_from = ["gateway_token", "root"]
max_model_chars = 0
[pricing]
unpriced = "maybe"
"#;
    let err = Config::from_toml(bad, &[]).unwrap_err();
    for expected in [
        "server.body_timeout",
        "server.max_connections",
        "gateway.max_custom_cost_usd",
        "gateway.custom_cost_from[1]",
        "gateway.max_model_chars",
        "pricing.unpriced",
    ] {
        assert!(paths(&err).contains(&expected), "{expected} missing from {err}");
    }
    assert!(issue(&err, "gateway.custom_cost_from[1]").message.contains("\"root\""));
    for (value, why) in [("-1.0", "negative"), ("nan", "not a number"), ("inf", "infinite"), ("1e10", "too large")] {
        let err = Config::from_toml(&format!("[gateway]\nmax_custom_cost_usd = {value}\n"), &[]).unwrap_err();
        assert_eq!(paths(&err), ["gateway.max_custom_cost_usd"], "{why}");
    }
    let err = Config::from_toml("[gateway]\nmax_model_chars = 4097\n", &[]).unwrap_err();
    assert_eq!(paths(&err), ["gateway.max_model_chars"]);
}

#[test]
fn custom_cost_from_can_be_set_from_the_environment_as_a_comma_separated_list() {
    let load = |value: &str| {
        Config::load(&Source { file: None, env: Some(env(&[("TOLLGATE_GATEWAY__CUSTOM_COST_FROM", value)])) })
    };
    let config = load("gateway_token, jwt").unwrap();
    assert_eq!(config.gateway.custom_cost_from, vec![CredentialKind::GatewayToken, CredentialKind::Jwt]);
    assert!(load("").unwrap().gateway.custom_cost_from.is_empty());
    let err = load("gateway_token,admin").unwrap_err();
    assert_eq!(paths(&err), ["gateway.custom_cost_from[1]"]);
}

#[test]
fn s10_loopback_builtins_exist_only_when_configured() {
    let config = Config::from_toml("", &[]).unwrap();
    assert!(!config.providers.contains_key("ollama"));
    assert!(!config.providers.contains_key("vllm"));
    assert!(config.providers.contains_key("openai"));

    // Configured with no keys of their own: the built-in defaults apply.
    let config =
        Config::from_toml("[providers.vllm]\n[providers.ollama]\nbase_url = \"http://gpu-box:11434/v1\"\n", &[])
            .unwrap();
    let vllm = &config.providers["vllm"];
    assert_eq!(vllm.base_url.as_ref().unwrap().as_str(), "http://127.0.0.1:8000/v1");
    assert!(vllm.hosted);
    assert_eq!(vllm.family, ProviderFamily::OpenAi);
    assert_eq!(config.providers["ollama"].base_url.as_ref().unwrap().as_str(), "http://gpu-box:11434/v1");

    // Naming an unconfigured one says how to get it.
    let err = Config::from_toml(
        "[server]\ndefault_provider = \"vllm\"\n[[routes]]\nname = \"r\"\ncandidates = [\"ollama/llama3\"]\n",
        &[],
    )
    .unwrap_err();
    assert!(issue(&err, "server.default_provider").message.contains("[providers.vllm]"), "{err}");
    assert!(issue(&err, "routes[0].candidates[0]").message.contains("[providers.ollama]"), "{err}");
}

#[test]
fn s11_an_empty_secret_is_an_error_naming_the_key_and_the_variable() {
    let toml = r#"
[admin]
token = "${ADMIN_TOKEN}"
[gateway]
auth_token = "${GATEWAY_TOKEN}"
[database]
url = "${DATABASE_URL}"
[providers.openai]
api_key = "${OPENAI_API_KEY}"
"#;
    let all =
        [("ADMIN_TOKEN", "a"), ("GATEWAY_TOKEN", "g"), ("DATABASE_URL", "sqlite://x.db"), ("OPENAI_API_KEY", "k")];
    assert!(Config::from_toml(toml, &env(&all)).is_ok());
    for (i, (variable, _)) in all.iter().enumerate() {
        let mut pairs = all;
        pairs[i].1 = "";
        let err = Config::from_toml(toml, &env(&pairs)).unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        let expected = ["admin.token", "gateway.auth_token", "database.url", "providers.openai.api_key"][i];
        assert_eq!(err.issues[0].path, expected);
        assert!(err.issues[0].message.contains("is empty"), "{err}");
        assert!(err.issues[0].message.contains(variable), "{err}");
    }
    // Written empty in the file, or set empty from the environment: the same.
    let err =
        Config::from_toml("[gateway]\nauth_token = \"\"\n[providers.anthropic]\napi_key = \" \"\n", &[]).unwrap_err();
    assert_eq!(paths(&err), ["gateway.auth_token", "providers.anthropic.api_key"]);
    let err =
        Config::load(&Source { file: None, env: Some(env(&[("TOLLGATE_GATEWAY__AUTH_TOKEN", "")])) }).unwrap_err();
    assert_eq!(paths(&err), ["gateway.auth_token"]);
}

#[test]
fn s11_a_secret_written_with_an_empty_fallback_is_optional() {
    let toml = "[gateway]\nauth_token = \"${GW:-}\"\n[providers.openai]\napi_key = \"${KEY:-}\"\n";
    for pairs in [env(&[]), env(&[("GW", ""), ("KEY", "")])] {
        let config = Config::from_toml(toml, &pairs).unwrap();
        assert!(config.gateway.auth_token.is_none());
        assert!(config.providers["openai"].api_key.is_none());
        assert!(config.redacted().gateway.auth_token.is_none());
    }
    let config = Config::from_toml(toml, &env(&[("GW", "tok"), ("KEY", "sk")])).unwrap();
    assert_eq!(config.gateway.auth_token.unwrap().expose(), "tok");
    assert_eq!(config.providers["openai"].api_key.as_ref().unwrap().expose(), "sk");
    let config = Config::from_toml("[server]\nlisten = \"${LISTEN:-127.0.0.1:9000}\"\n", &[]).unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:9000");
}

#[test]
fn s11_startup_warnings_name_an_open_relay_and_an_open_admin() {
    let open = "[providers.openai]\napi_key = \"sk-1\"\n[providers.anthropic]\napi_key = \"sk-2\"\n";
    let warnings = Config::from_toml(open, &[]).unwrap().startup_warnings();
    let relay = warnings.iter().find(|w| w.starts_with("open relay")).unwrap_or_else(|| panic!("{warnings:?}"));
    assert!(relay.contains("0.0.0.0:8080") && relay.contains("anthropic, openai"), "{relay}");
    assert!(!relay.contains("sk-1"), "{relay}");
    assert!(warnings.iter().any(|w| w.starts_with("admin.token is not set")), "{warnings:?}");

    let relay_warnings = |toml: &str| {
        Config::from_toml(toml, &[])
            .unwrap()
            .startup_warnings()
            .into_iter()
            .filter(|w| w.starts_with("open relay"))
            .count()
    };
    assert_eq!(relay_warnings(&format!("{open}[gateway]\nauth_token = \"t\"\n")), 0, "a token closes it");
    assert_eq!(relay_warnings(&format!("{open}[server]\nlisten = \"127.0.0.1:8080\"\n")), 0, "loopback only");
    assert_eq!(relay_warnings(""), 0, "no stored key to spend");

    let quiet = "[admin]\ntoken = \"a\"\n[gateway]\nauth_token = \"t\"\n[providers.openai]\napi_key = \"sk\"\n";
    assert!(Config::from_toml(quiet, &[]).unwrap().startup_warnings().is_empty());
    let allow = format!(
        "{quiet}[pricing]\nunpriced = \"allow\"\n[[spend_limits]]\nid = \"d\"\nbudget_usd = 1.0\nwindow = \"1d\"\n"
    );
    let warnings = Config::from_toml(&allow, &[]).unwrap().startup_warnings();
    assert!(warnings.len() == 1 && warnings[0].starts_with("pricing.unpriced"), "{warnings:?}");
}

#[test]
fn s21_redacted_hides_url_passwords_and_query_values() {
    let toml = r#"
[database]
url = "postgres://tollgate@db.internal/tollgate?password=pg-query-secret&sslmode=require"
[providers.openai]
base_url = "https://user:basic-secret@proxy.internal/v1"
zdr_base_url = "https://zdr-user:zdr-secret@zdr.internal/v1"
"#;
    let config = Config::from_toml(toml, &[]).unwrap();
    let text = toml::to_string(&config.redacted()).unwrap();
    for secret in ["pg-query-secret", "basic-secret", "zdr-secret"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let redacted = config.redacted();
    assert_eq!(
        redacted.database.url,
        "postgres://tollgate@db.internal/tollgate?password=[redacted]&sslmode=[redacted]"
    );
    assert_eq!(redacted.providers["openai"].base_url.as_deref(), Some("https://user:[redacted]@proxy.internal/v1"));
    let debug = format!("{config:?}");
    assert!(!debug.contains("basic-secret") && !debug.contains("zdr-secret"), "{debug}");
    // The real values are still there for the proxy.
    assert_eq!(config.providers["openai"].base_url.as_ref().unwrap().password(), Some("basic-secret"));

    assert_eq!(redact::url("postgres://u:p%40ss@h:5432/db"), "postgres://u:[redacted]@h:5432/db");
    assert_eq!(redact::url("sqlite://tollgate.db"), "sqlite://tollgate.db");
    assert_eq!(redact::url("not a url?token=x"), "[redacted]");
}

#[test]
fn s21_a_base_url_with_a_query_or_fragment_is_an_error_that_does_not_echo_it() {
    let toml = r#"
[providers.openai]
base_url = "https://h.example/v1?api-key=q-secret"
zdr_base_url = "https://z.example/v1#frag"
[providers.local]
kind = "openai-compatible"
base_url = "https://u:pw-secret@h.example/v1?tenant=t"
"#;
    let err = Config::from_toml(toml, &[]).unwrap_err();
    assert_eq!(
        paths(&err),
        ["providers.local.base_url", "providers.openai.base_url", "providers.openai.zdr_base_url"],
        "{err}"
    );
    assert!(issue(&err, "providers.openai.base_url").message.contains("query"));
    let text = err.to_string();
    assert!(!text.contains("q-secret") && !text.contains("pw-secret"), "{text}");
}

#[test]
fn s22_azure_with_a_stored_key_needs_a_base_url() {
    let err = Config::from_toml("[providers.azure-openai]\napi_key = \"az-key\"\n", &[]).unwrap_err();
    assert_eq!(paths(&err), ["providers.azure-openai.base_url"]);
    assert!(err.issues[0].message.contains("api_key"));
    // Without a stored key the client brings its own and may name its resource in the path.
    assert!(Config::from_toml("[providers.azure-openai]\n", &[]).unwrap().providers["azure-openai"].base_url.is_none());
    let config = Config::from_toml(
        "[providers.azure-openai]\napi_key = \"az-key\"\nbase_url = \"https://r.openai.azure.com/openai/v1\"\n",
        &[],
    )
    .unwrap();
    assert!(config.providers["azure-openai"].api_key.is_some());
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

#[test]
fn stats_window_and_cap_are_checked_at_load() {
    let config = Config::from_toml("", &[]).unwrap();
    assert!(config.stats.window.is_none(), "lifetime is all time");
    assert!(config.stats.cap_usd.abs() < f64::EPSILON);
    let config = Config::from_toml("[stats]\ncap_usd = 2.5\nwindow = \"1d\"\n", &[]).unwrap();
    assert!((config.stats.cap_usd - 2.5).abs() < f64::EPSILON);
    let window = config.stats.window.expect("a 1d window");
    assert_eq!(window.length(), tollgate_limits::parse_window("1d").unwrap());
    assert_eq!(window.time_zone_name(), "UTC");
    let err = Config::from_toml("[stats]\ncap_usd = -1.0\nwindow = \"1 day\"\n", &[]).unwrap_err();
    assert_eq!(paths(&err), ["stats.cap_usd", "stats.window"]);
    assert!(issue(&err, "stats.window").message.contains("\"1 day\""), "{err}");
}

#[test]
fn a_shared_rate_limit_needs_redis() {
    let rule = "[[rate_limits]]\nid = \"rpm\"\nlimit = 10\nper = \"requests\"\nwindow = \"1m\"\nshared = true\n";
    let err = Config::from_toml(rule, &[]).unwrap_err();
    assert_eq!(err.issues.len(), 1, "{err}");
    assert_eq!(err.issues[0].path, "rate_limits[0].shared");
    let config = Config::from_toml(&format!("[redis]\nurl = \"redis://127.0.0.1:6379/0\"\n{rule}"), &[]).unwrap();
    assert!(config.rate_rules[0].shared());
}

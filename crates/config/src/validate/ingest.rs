//! Validates `[ingest]`: durations within bounds, secrets present, URLs, and the BigQuery table name that is
//! written into SQL.

use std::time::Duration;

use super::{Issues, Sources};
use crate::ingest::{
    AnthropicIngest, AnthropicIngestFile, GoogleIngest, GoogleIngestFile, Ingest, IngestFile, OpenAiIngest,
    OpenAiIngestFile,
};

/// Shortest `ingest.interval`: the providers' reports are only fresh to a few minutes anyway.
const MIN_INTERVAL: Duration = Duration::from_mins(1);
/// Longest `ingest.lookback`: 31 days, the most one report page spans at a day's width.
const MAX_LOOKBACK: Duration = Duration::from_hours(744);
/// At most this many project ids or gateway provider names, each at most [`MAX_NAME_CHARS`].
const MAX_LIST: usize = 100;
const MAX_NAME_CHARS: usize = 256;

pub(super) fn ingest(file: &IngestFile, sources: &Sources, issues: &mut Issues) -> Option<Ingest> {
    let interval = bounded(issues, "ingest.interval", &file.interval, MIN_INTERVAL, Duration::from_hours(168));
    let lookback = bounded(issues, "ingest.lookback", &file.lookback, Duration::from_hours(1), MAX_LOOKBACK);
    let raw_retention = bounded(
        issues,
        "ingest.raw_retention",
        &file.raw_retention,
        Duration::from_hours(24),
        Duration::from_hours(87600),
    );
    if !file.drift_threshold.is_finite() || !(0.0..=1_000.0).contains(&file.drift_threshold) {
        issues.push("ingest.drift_threshold", "must be a number from 0 to 1000 (a ratio: 0.01 = 1%)");
    }
    let openai = file.openai.as_ref().map(|f| openai(f, sources, issues));
    let anthropic = file.anthropic.as_ref().map(|f| anthropic(f, sources, issues));
    let google = file.google.as_ref().map(|f| google(f, sources, issues));
    Some(Ingest {
        interval: interval?,
        lookback: lookback?,
        raw_retention: raw_retention?,
        drift_threshold: file.drift_threshold,
        openai: openai.map(|p| p.ok_or(())).transpose().ok()?,
        anthropic: anthropic.map(|p| p.ok_or(())).transpose().ok()?,
        google: google.map(|p| p.ok_or(())).transpose().ok()?,
    })
}

fn bounded(issues: &mut Issues, path: &str, text: &str, min: Duration, max: Duration) -> Option<Duration> {
    let value = issues.duration(path, text)?;
    if value < min || value > max {
        issues.push(path, format!("must be from {}s to {}s", min.as_secs(), max.as_secs()));
        return None;
    }
    Some(value)
}

fn required_secret(
    issues: &mut Issues,
    path: &str,
    value: Option<&String>,
    sources: &Sources,
) -> Option<crate::Secret> {
    if value.is_none() {
        issues.push(path, "is required");
        return None;
    }
    issues.secret(path, value, sources)
}

/// A list of names: bounded in length and count, none empty.
fn names(issues: &mut Issues, path: &str, list: &[String]) -> Option<Vec<String>> {
    if list.len() > MAX_LIST {
        issues.push(path, format!("has more than {MAX_LIST} entries"));
        return None;
    }
    let mut ok = true;
    for (i, name) in list.iter().enumerate() {
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            issues.push(format!("{path}[{i}]"), format!("must be 1 to {MAX_NAME_CHARS} printable characters"));
            ok = false;
        }
    }
    ok.then(|| list.to_vec())
}

fn openai(file: &OpenAiIngestFile, sources: &Sources, issues: &mut Issues) -> Option<OpenAiIngest> {
    let admin_key = required_secret(issues, "ingest.openai.admin_key", file.admin_key.as_ref(), sources);
    let base_url = issues.base_url("ingest.openai.base_url", &file.base_url);
    let project_ids = names(issues, "ingest.openai.project_ids", &file.project_ids);
    let gateway_providers = names(issues, "ingest.openai.gateway_providers", &file.gateway_providers);
    Some(OpenAiIngest {
        admin_key: admin_key?,
        base_url: base_url?,
        project_ids: project_ids?,
        gateway_providers: gateway_providers?,
    })
}

fn anthropic(file: &AnthropicIngestFile, sources: &Sources, issues: &mut Issues) -> Option<AnthropicIngest> {
    let admin_key = required_secret(issues, "ingest.anthropic.admin_key", file.admin_key.as_ref(), sources);
    let base_url = issues.base_url("ingest.anthropic.base_url", &file.base_url);
    let gateway_providers = names(issues, "ingest.anthropic.gateway_providers", &file.gateway_providers);
    Some(AnthropicIngest { admin_key: admin_key?, base_url: base_url?, gateway_providers: gateway_providers? })
}

fn google(file: &GoogleIngestFile, sources: &Sources, issues: &mut Issues) -> Option<GoogleIngest> {
    let path = "ingest.google.service_account_json";
    let key = required_secret(issues, path, file.service_account_json.as_ref(), sources);
    if let Some(key) = &key {
        let parsed: Option<serde_json::Value> = serde_json::from_str(key.expose()).ok();
        let has = |field: &str| parsed.as_ref().and_then(|v| v.get(field)).and_then(|v| v.as_str()).is_some();
        if !(has("client_email") && has("private_key")) {
            issues.push(path, "must be a service account key (JSON with client_email and private_key)");
        }
    }
    if !is_identifier_path(&file.project, 1) {
        issues.push("ingest.google.project", "must be a Google Cloud project id (letters, digits, -, _)");
    }
    if !is_identifier_path(&file.table, 2) {
        issues.push(
            "ingest.google.table",
            "must be dataset.table or project.dataset.table (letters, digits, -, _ in each part)",
        );
    }
    let token_url = issues.base_url("ingest.google.token_url", &file.token_url);
    let bigquery_url = issues.base_url("ingest.google.bigquery_url", &file.bigquery_url);
    let gateway_providers = names(issues, "ingest.google.gateway_providers", &file.gateway_providers);
    let valid = is_identifier_path(&file.project, 1) && is_identifier_path(&file.table, 2);
    let key = key.filter(|_| valid)?;
    Some(GoogleIngest {
        service_account_json: key,
        project: file.project.clone(),
        table: file.table.clone(),
        token_url: token_url?,
        bigquery_url: bigquery_url?,
        gateway_providers: gateway_providers?,
    })
}

/// `min_parts` to 3 dot-separated parts, each 1 to 128 of `[A-Za-z0-9_-]`: safe inside SQL backquotes.
pub(crate) fn is_identifier_path(text: &str, min_parts: usize) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    (min_parts..=3).contains(&parts.len())
        && parts.iter().all(|part| {
            (1..=128).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

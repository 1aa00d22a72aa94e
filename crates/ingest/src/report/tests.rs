//! Report pages read to the exact nano, cursors followed, malformed pages refused.

use super::*;

#[test]
fn openai_costs_are_dollars_read_from_the_number_text() {
    let body = r#"{"object":"page","data":[
        {"object":"bucket","start_time":1730419200,"end_time":1730505600,"results":[
            {"object":"organization.costs.result","amount":{"value":4.35,"currency":"usd"}},
            {"object":"organization.costs.result","amount":{"value":"0.000000001","currency":"usd"}}]},
        {"object":"bucket","start_time":1730505600,"end_time":1730592000,"results":[]}],
        "has_more":true,"next_page":"page_AAA"}"#;
    let page = Report::OpenAiCosts.parse(body).unwrap();
    assert_eq!(page.next.as_deref(), Some("page_AAA"));
    let costs: Vec<(i64, i64)> = page.rows.iter().map(|r| (r.bucket_start.as_second(), r.cost_nanos)).collect();
    assert_eq!(costs, [(1_730_419_200, 4_350_000_001), (1_730_505_600, 0)]);
}

#[test]
fn anthropic_costs_are_cents_strings_and_usage_counts_cache_writes() {
    let body = r#"{"data":[{"starting_at":"2026-11-01T00:00:00Z","ending_at":"2026-11-02T00:00:00Z",
        "results":[{"amount":"123.45","currency":"USD"},{"amount":"0.0000001","currency":"USD"}]}],
        "has_more":false,"next_page":null}"#;
    let page = Report::AnthropicCosts.parse(body).unwrap();
    assert_eq!(page.next, None);
    assert_eq!(page.rows[0].cost_nanos, 1_234_500_001);
    let body = r#"{"data":[{"starting_at":"2026-11-01T05:00:00Z","ending_at":"2026-11-01T06:00:00Z","results":[
        {"uncached_input_tokens":10,"cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":30},
         "cache_read_input_tokens":40,"output_tokens":5,"model":"claude-sonnet-4-5"}]}],"has_more":false,"next_page":null}"#;
    let row = &Report::AnthropicUsage.parse(body).unwrap().rows[0];
    assert_eq!((row.tokens_in, row.tokens_out, row.tokens_cached), (100, 5, 40));
    assert_eq!(row.model, "claude-sonnet-4-5");
}

#[test]
fn malformed_pages_are_refused() {
    for (report, body) in [
        (Report::OpenAiUsage, "not json"),
        (Report::OpenAiUsage, r#"{"data":[],"has_more":true,"next_page":null}"#),
        (
            Report::OpenAiCosts,
            r#"{"data":[{"start_time":0,"results":[{"amount":{"value":1,"currency":"eur"}}]}],"has_more":false}"#,
        ),
        (Report::AnthropicCosts, r#"{"data":[{"starting_at":"x","results":[]}],"has_more":false}"#),
        (
            Report::AnthropicCosts,
            r#"{"data":[{"starting_at":"2026-11-01T00:00:00Z","results":[{"amount":"1e","currency":"USD"}]}],"has_more":false}"#,
        ),
        (
            Report::OpenAiUsage,
            r#"{"data":[{"start_time":0,"results":[{"input_tokens":-1,"output_tokens":0}]}],"has_more":false}"#,
        ),
    ] {
        assert!(report.parse(body).is_err(), "{body}");
    }
}

#[test]
fn bigquery_rows_are_pacific_days_in_exact_dollars() {
    let body = r#"{"kind":"bigquery#queryResponse","jobComplete":true,
        "jobReference":{"projectId":"p","jobId":"job_1","location":"US"},
        "schema":{"fields":[{"name":"day","type":"STRING"},{"name":"cost","type":"STRING"},{"name":"currency","type":"STRING"}]},
        "rows":[{"f":[{"v":"2026-11-02"},{"v":"12.345678901"},{"v":"USD"}]}],"totalRows":"1"}"#;
    let page = Report::BigQueryQuery.parse(body).unwrap();
    assert_eq!(page.rows[0].cost_nanos, 12_345_678_901);
    assert_eq!(page.rows[0].bucket_start.to_string(), "2026-11-02T08:00:00Z");
    let running =
        r#"{"kind":"bigquery#queryResponse","jobComplete":false,"jobReference":{"projectId":"p","jobId":"j"}}"#;
    let page = bigquery_page(running).unwrap();
    assert!(!page.job_complete && page.rows.is_empty());
}

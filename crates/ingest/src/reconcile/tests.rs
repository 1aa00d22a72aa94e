//! Days compared: equal is ok, 2% off is drift, no provider row is missing data, a young day is pending, and
//! Google's days are US Pacific days.

use super::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn side(provider: &str, tz: &str) -> Side {
    Side { provider: provider.into(), gateway_providers: vec![provider.into()], time_zone: TimeZone::get(tz).unwrap() }
}

fn hour(provider: &str, at: &str, cost: u64) -> GatewayHour {
    GatewayHour { provider: provider.into(), hour: ts(at), tokens_in: 100, tokens_out: 10, cost_nanos: cost }
}

fn provider_row(provider: &str, grain: Grain, at: &str, cost: i64) -> StoredUsageRow {
    StoredUsageRow {
        provider: provider.into(),
        row: tollgate_store::ProviderUsageRow {
            grain,
            bucket_start: ts(at),
            model: String::new(),
            tokens_in: 7,
            tokens_out: 3,
            tokens_cached: 0,
            cost_nanos: cost,
        },
    }
}

fn settings(now: &str) -> Settings {
    Settings { now: ts(now), lookback: Duration::from_hours(48), drift_threshold: 0.01 }
}

#[test]
fn equal_is_ok_two_percent_is_drift_missing_and_pending() {
    let side = side("openai", "UTC");
    let days: Vec<Date> =
        ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-06"].iter().map(|d| d.parse().unwrap()).collect();
    let gateway = [
        hour("openai", "2026-11-01T10:00:00Z", 600_000_000),
        hour("openai", "2026-11-01T11:00:00Z", 400_000_000),
        hour("openai", "2026-11-02T10:00:00Z", 1_020_000_000),
        hour("anthropic", "2026-11-02T10:00:00Z", 5),
        hour("openai", "2026-11-03T10:00:00Z", 1),
    ];
    let provider = [
        provider_row("openai", Grain::Day, "2026-11-01T00:00:00Z", 1_000_000_000),
        provider_row("openai", Grain::Hour, "2026-11-01T10:00:00Z", 0),
        provider_row("openai", Grain::Day, "2026-11-02T00:00:00Z", 1_000_000_000),
        provider_row("openai", Grain::Day, "2026-11-06T00:00:00Z", 1),
    ];
    let rows = reconcile(&side, &days, &gateway, &provider, settings("2026-11-07T12:00:00Z"));
    let statuses: Vec<Status> = rows.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Status::Ok, Status::Drift, Status::MissingProviderData, Status::Pending]);
    assert_eq!(rows[0].gateway_cost_nanos, 1_000_000_000);
    assert_eq!(rows[0].diff_nanos, Some(0));
    assert_eq!((rows[0].provider_tokens_in, rows[0].gateway_tokens_in), (7, 200));
    assert_eq!(rows[1].diff_nanos, Some(20_000_000));
    assert!((rows[1].diff_ratio.unwrap() - 0.02).abs() < 1e-12);
    assert_eq!(rows[2].provider_cost_nanos, None);
}

#[test]
fn exactly_at_the_threshold_is_ok_and_zero_billed_with_spend_is_drift() {
    let side = side("anthropic", "UTC");
    let days: Vec<Date> = ["2026-11-01", "2026-11-02"].iter().map(|d| d.parse().unwrap()).collect();
    let gateway =
        [hour("anthropic", "2026-11-01T10:00:00Z", 1_010_000_000), hour("anthropic", "2026-11-02T10:00:00Z", 1)];
    let provider = [
        provider_row("anthropic", Grain::Day, "2026-11-01T00:00:00Z", 1_000_000_000),
        provider_row("anthropic", Grain::Day, "2026-11-02T00:00:00Z", 0),
    ];
    let rows = reconcile(&side, &days, &gateway, &provider, settings("2026-11-09T00:00:00Z"));
    assert_eq!(rows[0].status, Status::Ok);
    assert_eq!(rows[1].status, Status::Drift);
    assert_eq!(rows[1].diff_ratio, None);
}

#[test]
fn google_days_are_pacific_days() {
    let side = side("google", "America/Los_Angeles");
    let tz = side.time_zone.clone();
    let days = days_between(ts("2026-11-02T08:00:00Z"), ts("2026-11-03T08:00:00Z"), &tz, 10);
    assert_eq!(days, ["2026-11-02".parse::<Date>().unwrap()]);
    // 07:30 UTC on the 3rd is still the 2nd in California (UTC−8 in November).
    let gateway = [hour("google", "2026-11-03T07:00:00Z", 5)];
    let provider = [provider_row("google", Grain::Day, "2026-11-02T08:00:00Z", 5)];
    let rows = reconcile(&side, &days, &gateway, &provider, settings("2026-11-09T00:00:00Z"));
    assert_eq!((rows[0].gateway_cost_nanos, rows[0].status), (5, Status::Ok));
}

#[test]
fn days_between_is_bounded_and_exclusive_at_the_end() {
    let utc = TimeZone::UTC;
    assert_eq!(days_between(ts("2026-11-01T00:00:00Z"), ts("2026-11-03T00:00:00Z"), &utc, 100).len(), 2);
    assert_eq!(days_between(ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z"), &utc, 31).len(), 31);
    assert!(days_between(ts("2026-11-03T00:00:00Z"), ts("2026-11-01T00:00:00Z"), &utc, 100).is_empty());
}

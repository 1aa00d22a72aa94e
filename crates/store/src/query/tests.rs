//! Unit tests for `query`: cursors round-trip and refuse garbage, groupings parse, spans split into whole UTC days;
//! and, on both backends, every query, with the daily metadata rollup answering exactly as the hourly one.

use super::*;

#[test]
fn cursor_round_trips_and_is_opaque() {
    let cursor = Cursor { created_at_us: 1_777_000_000_123_456, id: "0196-abc:def".to_owned() };
    let text = cursor.encode();
    assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(Cursor::decode(&text).unwrap(), cursor);
    let negative = Cursor { created_at_us: -5, id: String::new() };
    assert_eq!(Cursor::decode(&negative.encode()).unwrap(), negative);
}

#[test]
fn cursor_refuses_garbage() {
    for text in ["", "zz", "abc", "3a", "31", &"00".repeat(300), "ff3a6964"] {
        let error = Cursor::decode(text).unwrap_err();
        assert!(matches!(error, QueryError::Invalid { parameter: "cursor", .. }), "{text}");
    }
}

#[test]
fn group_by_parses_lists() {
    assert_eq!(
        GroupBy::parse_list("provider, day,metadata.user_id,").unwrap(),
        vec![GroupBy::Provider, GroupBy::Day, GroupBy::Metadata("user_id".into())]
    );
    assert!(GroupBy::parse_list("").unwrap().is_empty());
    for bad in ["nope", "metadata.", "provider,provider"] {
        let error = GroupBy::parse_list(bad).unwrap_err();
        assert!(matches!(error, QueryError::Invalid { parameter: "group_by", .. }), "{bad}");
    }
    assert_eq!(GroupBy::Metadata("team".into()).to_string(), "metadata.team");
}

#[test]
fn spans_split_into_whole_utc_days_and_edge_hours() {
    use super::spend::SpanSplit;
    let us = |text: &str| text.parse::<Timestamp>().unwrap().as_microsecond();
    let split = |from: &str, to: &str| SpanSplit::of(us(from), us(to));
    // Hours starting in [05:13, 04:00 four days later) = [06:00, 04:00): whole days May 2nd to 4th.
    assert_eq!(
        split("2026-05-01T05:13:00Z", "2026-05-05T04:00:00Z"),
        Some(SpanSplit {
            hour_from: us("2026-05-01T06:00:00Z"),
            day_from: us("2026-05-02T00:00:00Z"),
            day_to: us("2026-05-05T00:00:00Z"),
            hour_to: us("2026-05-05T04:00:00Z"),
        })
    );
    // Aligned bounds: days only, no edge hours.
    let aligned = split("2026-05-01T00:00:00Z", "2026-05-03T00:00:00Z").unwrap();
    assert_eq!((aligned.hour_from, aligned.day_from), (us("2026-05-01T00:00:00Z"), us("2026-05-01T00:00:00Z")));
    assert_eq!((aligned.day_to, aligned.hour_to), (us("2026-05-03T00:00:00Z"), us("2026-05-03T00:00:00Z")));
    // An end inside the last hour of a day still counts that hour, so the day is whole.
    let late = split("2026-05-02T00:00:00Z", "2026-05-02T23:00:01Z").unwrap();
    assert_eq!(
        (late.day_from, late.day_to, late.hour_to),
        (us("2026-05-02T00:00:00Z"), us("2026-05-03T00:00:00Z"), late.day_to)
    );
    // A start one microsecond past midnight loses that day's first hour, hence the day.
    assert_eq!(split("2026-05-02T00:00:00.000001Z", "2026-05-03T00:00:00Z"), None);
    // 23 hours across midnight, and less than an hour: no whole day.
    assert_eq!(split("2026-05-02T03:00:00Z", "2026-05-03T02:00:00Z"), None);
    assert_eq!(split("2026-05-02T10:00:00Z", "2026-05-02T10:30:00Z"), None);
}

/// Database-backed tests: every query on a real Postgres (`TOLLGATE_TEST_PG`, default the local trust-auth
/// server; the tests fail when it is unreachable) and on a temporary SQLite file, rows written by `insert_logs`.
mod database {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;
    use std::time::Duration;

    use jiff::{SignedDuration, Timestamp};
    use serde_json::{Map, Value, json};
    use tollgate_limits::SpendRuleSpec;

    use crate::CostSource;
    use crate::SpendRuleChange;
    use crate::model::LogRecord;
    use crate::query::spend::{Source, SpanSplit};
    use crate::query::{Cursor, GroupBy, LogFilter, QueryError, SpendGroupRow};
    use crate::store::{Pool, Store, StoreOptions};

    use tollgate_testkit::PgDb;

    fn options(dir: &Path) -> StoreOptions {
        StoreOptions {
            // Generous: on a loaded 2-core machine, migrating a new database can take a few seconds.
            acquire_timeout: Duration::from_secs(10),
            spill_path: dir.join("spill.jsonl"),
            rollup_metadata_keys: BTreeSet::from(["team".to_owned(), "user_id".to_owned()]),
            ..StoreOptions::default()
        }
    }

    async fn open(url: &str, dir: &Path) -> Store {
        let store = Store::open(url, options(dir)).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Runs `check` on a fresh Postgres store and a fresh SQLite store.
    macro_rules! both {
        ($pg:ident, $sqlite:ident, $check:ident) => {
            #[tokio::test]
            async fn $pg() {
                let db = PgDb::create().await;
                let dir = tempfile::tempdir().unwrap();
                $check(&open(&db.url, dir.path()).await).await;
            }

            #[tokio::test]
            async fn $sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
                $check(&open(&url, dir.path()).await).await;
            }
        };
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// Row `n`: provider alternates, user_id cycles u0..u2, team is the number n % 2, gateway on every 4th.
    fn record(n: u64, created_at: Timestamp) -> LogRecord {
        let mut metadata = Map::new();
        metadata.insert("user_id".into(), Value::String(format!("u{}", n % 3)));
        metadata.insert("team".into(), json!(n % 2));
        metadata.insert("vip".into(), json!(n.is_multiple_of(3)));
        LogRecord {
            id: uuid::Uuid::now_v7().to_string(),
            created_at,
            gateway: n.is_multiple_of(4).then(|| "gw".to_owned()),
            provider: if n.is_multiple_of(2) { "openai" } else { "anthropic" }.to_owned(),
            model: if n.is_multiple_of(2) { "gpt-4o-mini" } else { "claude-sonnet-4-5" }.to_owned(),
            path: "/v1/chat/completions".into(),
            status: if n.is_multiple_of(5) { 500 } else { 200 },
            success: !n.is_multiple_of(5),
            cached: n.is_multiple_of(7),
            stream: n % 2 == 1,
            tokens_in: 100 + n,
            tokens_out: 10 + n,
            tokens_cached: n % 10,
            tokens_cache_write: 0,
            tokens_reasoning: n % 3,
            cost_nanos: 1_000_000 * n + 7,
            cost_source: CostSource::Catalog,
            duration_ms: 50 + n,
            ttfb_ms: n.is_multiple_of(2).then_some(5 + n),
            metadata,
            event_id: Some(format!("ev{n}")),
            step: 0,
            rule_decisions: json!([{"rule": "daily", "decision": "allowed"}]),
            error: n.is_multiple_of(5).then(|| "upstream 500".to_owned()),
            request_body: (n == 3).then(|| "{\"q\":1}".to_owned()),
            response_body: None,
            listed: true,
            cache_key: None,
            saved_nanos: 0,
        }
    }

    /// A filter and the rows it must return.
    type FilterCase = (LogFilter, Box<dyn Fn(&LogRecord) -> bool>);

    const BASE: &str = "2026-05-01T22:00:00Z";

    /// 60 rows, one every 5 minutes from 22:00 on May 1st: five hours over two UTC days.
    async fn seed(store: &Store) -> Vec<LogRecord> {
        let base = ts(BASE);
        let records: Vec<_> = (0..60).map(|n| record(n, base + SignedDuration::from_mins(n as i64 * 5))).collect();
        assert_eq!(store.insert_logs(&records).await.unwrap(), 60);
        records
    }

    async fn stats(store: &Store) {
        let records = seed(store).await;
        let all = store.stats(None, None).await.unwrap();
        assert_eq!(all.requests, 60);
        assert_eq!(all.cost_nanos, records.iter().map(|r| r.cost_nanos).sum::<u64>());
        assert_eq!(all.tokens_in, records.iter().map(|r| r.tokens_in).sum::<u64>());
        assert_eq!(all.tokens_out, records.iter().map(|r| r.tokens_out).sum::<u64>());
        assert_eq!(all.providers, vec!["anthropic".to_owned(), "openai".to_owned()]);
        // Hours starting in [23:00, 01:00): rows 12..36.
        let span = store.stats(Some(ts("2026-05-01T23:00:00Z")), Some(ts("2026-05-02T01:00:00Z"))).await.unwrap();
        assert_eq!(span.requests, 24);
        assert_eq!(span.cost_nanos, records[12..36].iter().map(|r| r.cost_nanos).sum::<u64>());
        let empty = store.stats(Some(ts("2030-01-01T00:00:00Z")), None).await.unwrap();
        assert_eq!(empty, crate::query::StatsTotals::default());
    }
    both!(postgres_stats_sum_the_rollups, sqlite_stats_sum_the_rollups, stats);

    async fn spend(store: &Store) {
        let records = seed(store).await;
        let (from, to) = (ts("2026-05-01T00:00:00Z"), ts("2026-05-03T00:00:00Z"));
        let rows = store.spend(from, to, &[GroupBy::Provider, GroupBy::Day]).await.unwrap();
        let days: Vec<(Option<String>, Option<String>, u64)> =
            rows.iter().map(|r| (r.values[0].clone(), r.values[1].clone(), r.requests)).collect();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            days,
            vec![
                (s("anthropic"), s("2026-05-01"), 12),
                (s("anthropic"), s("2026-05-02"), 18),
                (s("openai"), s("2026-05-01"), 12),
                (s("openai"), s("2026-05-02"), 18),
            ]
        );
        let cost: u64 = rows.iter().map(|r| r.cost_nanos).sum();
        assert_eq!(cost, records.iter().map(|r| r.cost_nanos).sum::<u64>());
        assert_eq!(
            rows[0].tokens_in,
            records.iter().filter(|r| r.provider == "anthropic").take(12).map(|r| r.tokens_in).sum::<u64>()
        );

        let hours = store.spend(from, to, &[GroupBy::Hour]).await.unwrap();
        let labels: Vec<_> = hours.iter().map(|r| r.values[0].clone().unwrap()).collect();
        assert_eq!(
            labels,
            [
                "2026-05-01T22:00:00Z",
                "2026-05-01T23:00:00Z",
                "2026-05-02T00:00:00Z",
                "2026-05-02T01:00:00Z",
                "2026-05-02T02:00:00Z"
            ]
        );
        assert!(hours.iter().all(|r| r.requests == 12));

        let gateways = store.spend(from, to, &[GroupBy::Gateway]).await.unwrap();
        assert_eq!(gateways.len(), 2);
        assert_eq!(gateways[0].values[0], None, "no gateway reads as null");
        assert_eq!(gateways[0].requests, 45);
        assert_eq!(gateways[1].values[0], s("gw"));

        let users = store.spend(from, to, &[GroupBy::Metadata("user_id".into()), GroupBy::Model]).await.unwrap();
        let mut per_user = BTreeMap::new();
        for row in &users {
            *per_user.entry(row.values[0].clone().unwrap()).or_insert(0) += row.cost_nanos;
        }
        for user in ["u0", "u1", "u2"] {
            let expected: u64 = records.iter().filter(|r| r.metadata["user_id"] == user).map(|r| r.cost_nanos).sum();
            assert_eq!(per_user[user], expected, "{user}");
        }
        let teams = store.spend(from, to, &[GroupBy::Metadata("team".into())]).await.unwrap();
        assert_eq!(teams.iter().map(|r| r.values[0].clone().unwrap()).collect::<Vec<_>>(), ["0", "1"]);

        let total = store.spend(from, to, &[]).await.unwrap();
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].requests, 60);
        assert!(store.spend(ts("2030-01-01T00:00:00Z"), ts("2030-02-01T00:00:00Z"), &[]).await.unwrap().is_empty());

        let two = [GroupBy::Metadata("team".into()), GroupBy::Metadata("user_id".into())];
        let error = store.spend(from, to, &two).await.unwrap_err();
        assert!(
            matches!(&error, QueryError::Invalid { parameter: "group_by", message } if message.contains("at most one"))
        );
        let error = store.spend(from, to, &[GroupBy::Metadata("vip".into())]).await.unwrap_err();
        let QueryError::NotRolledUp { key, rolled_up } = &error else { panic!("{error:?}") };
        assert_eq!((key.as_str(), rolled_up.as_slice()), ("vip", &["team".to_owned(), "user_id".to_owned()][..]));
        assert!(error.to_string().contains("metadata.vip"), "{error}");
    }
    both!(postgres_spend_groups_the_rollups, sqlite_spend_groups_the_rollups, spend);

    async fn ids(store: &Store, filter: &LogFilter) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let (page, next) = store.logs(filter, cursor.as_ref(), 7).await.unwrap();
            assert!(page.len() <= 7);
            out.extend(page.into_iter().map(|e| e.id));
            match next {
                // The cursor survives its string form.
                Some(next) => cursor = Some(Cursor::decode(&next.encode()).unwrap()),
                None => break,
            }
        }
        out
    }

    fn expected(records: &[LogRecord], keep: impl Fn(&LogRecord) -> bool) -> Vec<String> {
        let mut rows: Vec<&LogRecord> = records.iter().filter(|r| keep(r)).collect();
        rows.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        rows.into_iter().map(|r| r.id.clone()).collect()
    }

    async fn logs(store: &Store) {
        let mut records = seed(store).await;
        // Two rows at the very same instant: the id breaks the tie, and pages never skip or repeat one.
        let same = ts("2026-05-01T23:30:00Z");
        let twins = vec![record(100, same), record(101, same)];
        store.insert_logs(&twins).await.unwrap();
        records.extend(twins);

        assert_eq!(ids(store, &LogFilter::default()).await, expected(&records, |_| true));
        let cases: Vec<FilterCase> = vec![
            (
                LogFilter { provider: Some("openai".into()), ..LogFilter::default() },
                Box::new(|r| r.provider == "openai"),
            ),
            (
                LogFilter { model: Some("claude-sonnet-4-5".into()), ..LogFilter::default() },
                Box::new(|r| r.model == "claude-sonnet-4-5"),
            ),
            (LogFilter { status: Some(500), ..LogFilter::default() }, Box::new(|r| r.status == 500)),
            (LogFilter { success: Some(false), ..LogFilter::default() }, Box::new(|r| !r.success)),
            (LogFilter { cached: Some(true), ..LogFilter::default() }, Box::new(|r| r.cached)),
            (
                LogFilter {
                    min_cost_nanos: Some(10_000_007),
                    max_cost_nanos: Some(20_000_007),
                    ..LogFilter::default()
                },
                Box::new(|r| (10_000_007..=20_000_007).contains(&r.cost_nanos)),
            ),
            (
                LogFilter {
                    start: Some(ts("2026-05-01T23:00:00Z")),
                    end: Some(ts("2026-05-02T00:00:00Z")),
                    ..LogFilter::default()
                },
                Box::new(|r| r.created_at >= ts("2026-05-01T23:00:00Z") && r.created_at < ts("2026-05-02T00:00:00Z")),
            ),
            (
                LogFilter { metadata: vec![("user_id".into(), "u1".into())], ..LogFilter::default() },
                Box::new(|r| r.metadata["user_id"] == "u1"),
            ),
            // A number, a boolean and two keys at once.
            (
                LogFilter {
                    metadata: vec![("team".into(), "1".into()), ("vip".into(), "true".into())],
                    ..LogFilter::default()
                },
                Box::new(|r| r.metadata["team"] == 1 && r.metadata["vip"] == true),
            ),
            (
                LogFilter {
                    metadata: vec![("vip".into(), "false".into())],
                    provider: Some("openai".into()),
                    ..LogFilter::default()
                },
                Box::new(|r| r.metadata["vip"] == false && r.provider == "openai"),
            ),
            (LogFilter { metadata: vec![("nope".into(), "x".into())], ..LogFilter::default() }, Box::new(|_| false)),
        ];
        for (filter, keep) in cases {
            let want = expected(&records, keep);
            assert_eq!(ids(store, &filter).await, want, "{filter:?}");
        }

        let (page, next) = store.logs(&LogFilter::default(), None, 1000).await.unwrap();
        assert_eq!(page.len(), 62);
        assert!(next.is_none());
        let newest = &page[0];
        let source = records.iter().find(|r| r.id == newest.id).unwrap();
        assert_eq!(newest.created_at, source.created_at);
        assert_eq!(newest.cost_nanos, source.cost_nanos);
        assert!((newest.cost_usd - source.cost_nanos as f64 / 1e9).abs() < 1e-12);
        assert_eq!(newest.metadata, source.metadata);
        assert_eq!(newest.rule_decisions, source.rule_decisions);
        assert_eq!(newest.ttfb_ms, source.ttfb_ms);
        assert_eq!(u32::from(newest.status), u32::from(source.status));
        assert_eq!(newest.request_body, None, "lists carry no bodies");
        let json = serde_json::to_value(newest).unwrap();
        for field in [
            "id",
            "created_at",
            "gateway",
            "provider",
            "model",
            "path",
            "status",
            "success",
            "cached",
            "stream",
            "tokens_in",
            "tokens_out",
            "tokens_cached",
            "tokens_reasoning",
            "cost_usd",
            "cost_source",
            "duration_ms",
            "ttfb_ms",
            "metadata",
            "event_id",
            "step",
            "rule_decisions",
            "error",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert!(json.get("cost_nanos").is_none());
        assert!(json["created_at"].as_str().unwrap().ends_with('Z'));

        let with_body = records.iter().find(|r| r.request_body.is_some()).unwrap();
        let one = store.log(&with_body.id).await.unwrap().unwrap();
        assert_eq!(one.request_body, with_body.request_body);
        assert_eq!(one.event_id, with_body.event_id);
        assert_eq!(one.error, with_body.error);
        assert!(store.log("no-such-id").await.unwrap().is_none());
    }
    both!(postgres_logs_filter_and_page, sqlite_logs_filter_and_page, logs);

    fn rule(id: &str, budget: f64) -> SpendRuleSpec {
        serde_json::from_value(json!({"id": id, "budget_usd": budget, "window": "1d"})).unwrap()
    }

    async fn rules(store: &Store) {
        let start = store.spend_rules_version().await.unwrap();
        assert_eq!(store.api_spend_rules().await.unwrap().specs, vec![]);
        assert_eq!(store.insert_spend_rule(&rule("a", 1.0)).await.unwrap(), SpendRuleChange::Created);
        assert_eq!(store.insert_spend_rule(&rule("a", 2.0)).await.unwrap(), SpendRuleChange::Unchanged);
        assert_eq!(store.insert_spend_rule(&rule("b", 3.0)).await.unwrap(), SpendRuleChange::Created);
        assert_eq!(store.put_spend_rule(&rule("a", 4.0)).await.unwrap(), SpendRuleChange::Replaced);
        assert_eq!(store.put_spend_rule(&rule("c", 5.0)).await.unwrap(), SpendRuleChange::Created);
        assert_eq!(store.delete_spend_rule("b").await.unwrap(), SpendRuleChange::Deleted);
        assert_eq!(store.delete_spend_rule("b").await.unwrap(), SpendRuleChange::Unchanged);
        let read = store.api_spend_rules().await.unwrap();
        assert_eq!(read.specs, vec![rule("a", 4.0), rule("c", 5.0)]);
        assert!(read.version > start);
        let version = store.spend_rules_version().await.unwrap();
        store.delete_spend_rule("nope").await.unwrap();
        assert_eq!(store.spend_rules_version().await.unwrap(), version, "no change, no bump");
        store.delete_spend_rule("a").await.unwrap();
        assert!(store.spend_rules_version().await.unwrap() > version);
    }
    both!(postgres_api_rules_round_trip, sqlite_api_rules_round_trip, rules);

    async fn rebuild(store: &Store) {
        let records = seed(store).await;
        let from = ts("2026-05-01T00:00:00Z");
        let to = ts("2026-05-03T00:00:00Z");
        let before = store.spend(from, to, &[GroupBy::Hour, GroupBy::Provider, GroupBy::Gateway]).await.unwrap();
        let users_before = store.spend(from, to, &[GroupBy::Metadata("user_id".into())]).await.unwrap();
        // Damage the rollups, then rebuild them from the log.
        match store.pool() {
            Pool::Postgres(pool) => {
                sqlx::query("UPDATE spend_rollup_hourly SET cost_nanos = 1, requests = 99")
                    .execute(pool)
                    .await
                    .unwrap();
                sqlx::query("DELETE FROM spend_rollup_metadata_hourly").execute(pool).await.unwrap();
            }
            Pool::Sqlite(pool) => {
                sqlx::query("UPDATE spend_rollup_hourly SET cost_nanos = 1, requests = 99")
                    .execute(pool)
                    .await
                    .unwrap();
                sqlx::query("DELETE FROM spend_rollup_metadata_hourly").execute(pool).await.unwrap();
            }
        }
        assert_ne!(store.spend(from, to, &[GroupBy::Hour, GroupBy::Provider, GroupBy::Gateway]).await.unwrap(), before);
        let report = store.rebuild_rollups().await.unwrap();
        assert_eq!(report.log_rows, records.len() as u64);
        assert!(report.rollup_rows > 0);
        assert_eq!(store.spend(from, to, &[GroupBy::Hour, GroupBy::Provider, GroupBy::Gateway]).await.unwrap(), before);
        assert_eq!(store.spend(from, to, &[GroupBy::Metadata("user_id".into())]).await.unwrap(), users_before);
        // Idempotent.
        store.rebuild_rollups().await.unwrap();
        assert_eq!(store.stats(None, None).await.unwrap().requests, 60);
    }
    both!(postgres_rebuild_restores_the_rollups, sqlite_rebuild_restores_the_rollups, rebuild);

    /// Rows every 37 minutes for four days from 05:13 UTC: hours with and without rows, partial days at both ends.
    async fn seed_days(store: &Store) -> Vec<LogRecord> {
        let base = ts("2026-05-01T05:13:00Z");
        let records: Vec<_> = (0..160).map(|n| record(n, base + SignedDuration::from_mins(n as i64 * 37))).collect();
        for chunk in records.chunks(45) {
            store.insert_logs(chunk).await.unwrap();
        }
        records
    }

    const SPANS: [(&str, &str); 8] = [
        ("2026-04-30T00:00:00Z", "2026-05-06T00:00:00Z"), // whole days only
        ("2026-05-01T05:13:00Z", "2026-05-05T04:00:00Z"), // edge hours at both ends
        ("2026-05-01T07:30:00Z", "2026-05-03T00:00:00Z"), // from mid-hour
        ("2026-05-02T00:00:00Z", "2026-05-03T23:59:59Z"), // to mid-hour: 23:00 counts, the day is whole
        ("2026-05-02T00:00:00Z", "2026-05-03T00:00:00Z"), // exactly one day
        ("2026-05-02T00:00:00.000001Z", "2026-05-04T00:00:00Z"), // one microsecond past midnight
        ("2026-05-02T03:00:00Z", "2026-05-03T02:00:00Z"), // 23 hours across midnight: no whole day
        ("2026-05-02T10:00:00Z", "2026-05-02T10:30:00Z"), // less than an hour
    ];

    fn groupings() -> Vec<Vec<GroupBy>> {
        let user = || GroupBy::Metadata("user_id".into());
        let team = || GroupBy::Metadata("team".into());
        vec![
            vec![user()],
            vec![user(), GroupBy::Day],
            vec![GroupBy::Day, team(), GroupBy::Provider],
            vec![team(), GroupBy::Provider, GroupBy::Model, GroupBy::Gateway],
            vec![GroupBy::Gateway, user(), GroupBy::Day, GroupBy::Model],
        ]
    }

    /// (metadata value, day) → (requests, cost) of the records whose hour starts in `[from, to)`, from the raw
    /// records.
    fn by_value_and_day(
        records: &[LogRecord],
        key: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> BTreeMap<(String, String), (u64, u64)> {
        let hour_us = 3_600_000_000;
        let mut out = BTreeMap::new();
        for r in records {
            let hour = r.created_at.as_microsecond().div_euclid(hour_us) * hour_us;
            if hour < from.as_microsecond() || hour >= to.as_microsecond() {
                continue;
            }
            let value = match &r.metadata[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let day = r.created_at.strftime("%Y-%m-%d").to_string();
            let e: &mut (u64, u64) = out.entry((value, day)).or_default();
            e.0 += 1;
            e.1 += r.cost_nanos;
        }
        out
    }

    /// Rows grouped by `[metadata.<key>, day]`, as (value, day) → (requests, cost).
    fn summed(rows: &[SpendGroupRow]) -> BTreeMap<(String, String), (u64, u64)> {
        let mut out = BTreeMap::new();
        for row in rows {
            let (value, day) = (row.values[0].clone().unwrap(), row.values[1].clone().unwrap());
            let e: &mut (u64, u64) = out.entry((value, day)).or_default();
            e.0 += row.requests;
            e.1 += row.cost_nanos;
        }
        out
    }

    /// Every span and grouping: the daily path answers exactly as the hourly one, and as the raw rows.
    async fn daily_equals_hourly(store: &Store) {
        let records = seed_days(store).await;
        let mut used_days = 0;
        for (from, to) in SPANS {
            let (from, to) = (ts(from), ts(to));
            if SpanSplit::of(from.as_microsecond(), to.as_microsecond()).is_some() {
                used_days += 1;
            }
            for group_by in groupings() {
                let key = group_by.iter().find_map(|g| match g {
                    GroupBy::Metadata(key) => Some(key.clone()),
                    _ => None,
                });
                let daily = store.spend(from, to, &group_by).await.unwrap();
                let hourly = store.spend_from(from, to, &group_by, key.as_deref(), Source::Hourly).await.unwrap();
                assert_eq!(daily, hourly, "{from}..{to} by {group_by:?}");
            }
            let rows = store.spend(from, to, &[GroupBy::Metadata("user_id".into()), GroupBy::Day]).await.unwrap();
            assert_eq!(summed(&rows), by_value_and_day(&records, "user_id", from, to), "{from}..{to}");
            let total = store.spend(from, to, &[GroupBy::Metadata("team".into())]).await.unwrap();
            let expected = by_value_and_day(&records, "team", from, to);
            assert_eq!(total.iter().map(|r| r.requests).sum::<u64>(), expected.values().map(|v| v.0).sum::<u64>());
        }
        assert_eq!(used_days, 6, "the spans holding a whole UTC day take the daily path");
        // A rebuild writes the daily tables as the writer did.
        let (from, to) = (ts(SPANS[1].0), ts(SPANS[1].1));
        let per_provider = store.spend(from, to, &groupings()[4]).await.unwrap();
        let per_value = store.spend(from, to, &groupings()[1]).await.unwrap();
        for sql in
            ["UPDATE spend_rollup_metadata_daily SET requests = 0", "DELETE FROM spend_rollup_metadata_value_daily"]
        {
            match store.pool() {
                Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
                Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
            }
        }
        assert_ne!(store.spend(from, to, &groupings()[4]).await.unwrap(), per_provider);
        assert_ne!(store.spend(from, to, &groupings()[1]).await.unwrap(), per_value);
        store.rebuild_rollups().await.unwrap();
        assert_eq!(store.spend(from, to, &groupings()[4]).await.unwrap(), per_provider);
        assert_eq!(store.spend(from, to, &groupings()[1]).await.unwrap(), per_value);
    }
    both!(
        postgres_daily_metadata_rollup_equals_the_hourly,
        sqlite_daily_metadata_rollup_equals_the_hourly,
        daily_equals_hourly
    );

    /// A database written before migrations 5 to 8: they build the daily rollup from the hourly one and keep the
    /// keys it has rows for, without counting any row twice.
    async fn upgrade(store: &Store) {
        let records = seed_days(store).await;
        let (from, to) = (ts(SPANS[1].0), ts(SPANS[1].1));
        let expected = by_value_and_day(&records, "user_id", from, to);
        let undo = [
            "DROP TABLE spend_rollup_metadata_daily",
            "DROP TABLE spend_rollup_metadata_value_daily",
            "DROP TABLE spend_rollup_metadata_keys",
            "DROP TABLE quarantine",
            "ALTER TABLE request_logs DROP COLUMN listed",
            "ALTER TABLE request_logs DROP COLUMN cache_key",
            "ALTER TABLE request_logs DROP COLUMN saved_nanos",
            // Migration 0011's rollup columns (the daily tables it also widens are dropped above).
            "ALTER TABLE spend_rollup_hourly DROP COLUMN cached_requests",
            "ALTER TABLE spend_rollup_hourly DROP COLUMN saved_nanos",
            "ALTER TABLE spend_rollup_metadata_hourly DROP COLUMN cached_requests",
            "ALTER TABLE spend_rollup_metadata_hourly DROP COLUMN saved_nanos",
            // Migration 0010 (provider ingest) is undone too, so that it applies again on top.
            "DROP TABLE provider_raw_pages",
            "DROP TABLE provider_usage",
            "DROP TABLE ingest_leases",
            "DELETE FROM _sqlx_migrations WHERE version >= 5",
        ];
        for sql in undo {
            match store.pool() {
                Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
                Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
            }
        }
        if let Pool::Postgres(pool) = store.pool() {
            sqlx::query("DROP AGGREGATE sum_int8(BIGINT)").execute(pool).await.unwrap();
        }
        store.migrate().await.unwrap();
        assert_eq!(store.rollup_metadata_keys().await.unwrap(), ["team", "user_id"]);
        let rows = store.spend(from, to, &[GroupBy::Metadata("user_id".into()), GroupBy::Day]).await.unwrap();
        assert_eq!(summed(&rows), expected);
        for group_by in groupings() {
            let key = group_by.iter().find_map(|g| match g {
                GroupBy::Metadata(key) => Some(key.clone()),
                _ => None,
            });
            let hourly = store.spend_from(from, to, &group_by, key.as_deref(), Source::Hourly).await.unwrap();
            assert_eq!(store.spend(from, to, &group_by).await.unwrap(), hourly, "{group_by:?}");
        }
    }
    both!(postgres_upgrade_backfills_the_daily_rollup, sqlite_upgrade_backfills_the_daily_rollup, upgrade);

    /// A group's (requests, cost, cached requests, saved) in nano-dollars.
    type Sums = (u64, u64, u64, u64);

    /// `seed`'s rows with every 7th one a cache hit as the proxy logs it (no cost, `cost_source = cache`, the
    /// saving and the key) and the others not cached.
    fn with_cache_hits() -> Vec<LogRecord> {
        let base = ts(BASE);
        (0..60)
            .map(|n| {
                let row = record(n, base + SignedDuration::from_mins(n as i64 * 5));
                if n.is_multiple_of(7) {
                    LogRecord {
                        cached: true,
                        cost_nanos: 0,
                        cost_source: CostSource::Cache,
                        saved_nanos: 2_000_000 * n + 3,
                        cache_key: Some(format!("{n:064x}")),
                        ..row
                    }
                } else {
                    LogRecord { cached: false, ..row }
                }
            })
            .collect()
    }

    /// The raw records whose hour starts in `[from, to)`, summed per `key`.
    fn sums_by(
        records: &[LogRecord],
        from: &str,
        to: &str,
        key: impl Fn(&LogRecord) -> Option<String>,
    ) -> BTreeMap<Option<String>, Sums> {
        let hour_us = 3_600_000_000;
        let (from, to) = (ts(from).as_microsecond(), ts(to).as_microsecond());
        let mut out = BTreeMap::new();
        for r in records {
            let hour = r.created_at.as_microsecond().div_euclid(hour_us) * hour_us;
            if hour < from || hour >= to {
                continue;
            }
            let e: &mut Sums = out.entry(key(r)).or_default();
            e.0 += 1;
            e.1 += r.cost_nanos;
            e.2 += u64::from(r.cached);
            e.3 += r.saved_nanos;
        }
        out
    }

    /// `/spend` rows grouped by one grouping, as value → sums.
    fn sums_of(rows: &[SpendGroupRow]) -> BTreeMap<Option<String>, Sums> {
        rows.iter()
            .map(|r| {
                (r.values.first().cloned().flatten(), (r.requests, r.cost_nanos, r.cached_requests, r.saved_nanos))
            })
            .collect()
    }

    /// Every path `/spend` takes for `records`: the hourly rollup, the metadata rollups hourly and daily (per
    /// value, and per provider summed back to the value), and the log scan of a key that is not rolled up.
    async fn check_cache_sums(store: &Store, records: &[LogRecord]) {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // Whole days (daily tables) and a span with edge hours on both sides.
        for (from, to) in
            [("2026-05-01T00:00:00Z", "2026-05-03T00:00:00Z"), ("2026-05-01T22:30:00Z", "2026-05-02T02:00:00Z")]
        {
            let (f, t) = (ts(from), ts(to));
            let provider = sums_by(records, from, to, |r| Some(r.provider.clone()));
            assert_eq!(sums_of(&store.spend(f, t, &[GroupBy::Provider]).await.unwrap()), provider, "{from}");
            let total = sums_by(records, from, to, |_| None);
            assert_eq!(sums_of(&store.spend(f, t, &[]).await.unwrap()), total, "{from}");
            let user = sums_by(records, from, to, |r| Some(text(&r.metadata["user_id"])));
            let by_user = [GroupBy::Metadata("user_id".into())];
            assert_eq!(sums_of(&store.spend(f, t, &by_user).await.unwrap()), user, "{from}");
            let hourly = store.spend_from(f, t, &by_user, Some("user_id"), Source::Hourly).await.unwrap();
            assert_eq!(sums_of(&hourly), user, "{from}: hourly metadata rollup");
            // Team with provider reads spend_rollup_metadata_daily; summed back per team.
            let team = sums_by(records, from, to, |r| Some(text(&r.metadata["team"])));
            let rows = store.spend(f, t, &[GroupBy::Metadata("team".into()), GroupBy::Provider]).await.unwrap();
            let mut per_team: BTreeMap<Option<String>, Sums> = BTreeMap::new();
            for r in &rows {
                let e = per_team.entry(r.values[0].clone()).or_default();
                *e = (e.0 + r.requests, e.1 + r.cost_nanos, e.2 + r.cached_requests, e.3 + r.saved_nanos);
            }
            assert_eq!(per_team, team, "{from}: per team and provider");
            // `vip` is not rolled up: the log scan sums the same way.
            let vip = sums_by(records, from, to, |r| Some(text(&r.metadata["vip"])));
            let report = store.spend_report(f, t, &[GroupBy::Metadata("vip".into())], 1_000).await.unwrap();
            assert_eq!(report.source, crate::SpendSource::LogScan);
            assert_eq!(sums_of(&report.rows), vip, "{from}: log scan");
        }
    }

    /// Cache hits count into `cached_requests` and `saved_nanos` per group on every path, cost only what was
    /// paid, and stay so after a rebuild from the log and across a restart.
    async fn cache_savings(url: &str, dir: &Path) {
        let store = open(url, dir).await;
        let records = with_cache_hits();
        assert_eq!(store.insert_logs(&records).await.unwrap(), 60, "cache hits are written (cost_source 'cache')");
        assert_eq!(store.status().quarantined_records, 0);
        let hits = records.iter().filter(|r| r.cached).count();
        assert_eq!(hits, 9);
        check_cache_sums(&store, &records).await;
        // The saving is never cost: the rows without the hits cost the same.
        let (from, to) = (ts("2026-05-01T00:00:00Z"), ts("2026-05-03T00:00:00Z"));
        let total = &store.spend(from, to, &[]).await.unwrap()[0];
        assert_eq!(total.cost_nanos, records.iter().filter(|r| !r.cached).map(|r| r.cost_nanos).sum::<u64>());
        assert_eq!(total.requests, 60);
        assert_eq!((total.cached_requests, total.saved_nanos), (9, records.iter().map(|r| r.saved_nanos).sum()));

        // Rebuilt from the log: the cached columns come back, costs unchanged.
        for sql in [
            "UPDATE spend_rollup_hourly SET cached_requests = 0, saved_nanos = 0",
            "UPDATE spend_rollup_metadata_hourly SET cached_requests = 0, saved_nanos = 0",
            "UPDATE spend_rollup_metadata_daily SET cached_requests = 0, saved_nanos = 0",
            "UPDATE spend_rollup_metadata_value_daily SET cached_requests = 0, saved_nanos = 0",
        ] {
            match store.pool() {
                Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
                Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
            }
        }
        assert_eq!(store.spend(from, to, &[]).await.unwrap()[0].cached_requests, 0, "damaged");
        let report = store.rebuild_rollups().await.unwrap();
        assert_eq!(report.log_rows, 60);
        check_cache_sums(&store, &records).await;

        // A restart reads the same sums.
        store.close().await;
        let store = open(url, dir).await;
        check_cache_sums(&store, &records).await;
    }

    #[tokio::test]
    async fn postgres_cache_hits_count_into_cached_requests_and_saved() {
        let db = PgDb::create().await;
        let dir = tempfile::tempdir().unwrap();
        cache_savings(&db.url, dir.path()).await;
    }

    #[tokio::test]
    async fn sqlite_cache_hits_count_into_cached_requests_and_saved() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
        cache_savings(&url, dir.path()).await;
    }
}

//! The reconciliation: per provider and day, the gateway's cost and tokens beside the provider's, and a status.
//! Pure: the caller reads the rollups and the normalised rows; days are the provider's billing days (UTC for
//! OpenAI and Anthropic, US Pacific for Google).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;
use tollgate_store::{GatewayHour, Grain, StoredUsageRow};

#[cfg(test)]
mod tests;

/// How a day compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Within `drift_threshold`.
    Ok,
    /// `|gateway − provider| / provider` above `drift_threshold` (or the provider billed nothing and the gateway
    /// counted spend).
    Drift,
    /// The day is complete but the provider has reported no cost for it.
    MissingProviderData,
    /// The day ended less than `lookback` ago: reports may still change.
    Pending,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Drift => "drift",
            Status::MissingProviderData => "missing_provider_data",
            Status::Pending => "pending",
        }
    }
}

/// One provider and day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRow {
    pub provider: String,
    /// The billing day (`YYYY-MM-DD` in the provider's time zone).
    pub day: Date,
    pub gateway_cost_nanos: u64,
    /// `None` when the provider has no cost row for the day.
    pub provider_cost_nanos: Option<i64>,
    /// `gateway − provider`, in nano-dollars (`None` without provider data).
    pub diff_nanos: Option<i64>,
    /// `|gateway − provider| / provider`; `None` without provider data or when the provider billed 0.
    pub diff_ratio: Option<f64>,
    pub gateway_tokens_in: u64,
    pub gateway_tokens_out: u64,
    pub provider_tokens_in: u64,
    pub provider_tokens_out: u64,
    pub status: Status,
}

/// Which gateway providers one ingested provider's report is compared with, and its billing day.
#[derive(Debug, Clone)]
pub struct Side {
    pub provider: String,
    pub gateway_providers: Vec<String>,
    pub time_zone: TimeZone,
}

/// The settings of a reconciliation.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub now: Timestamp,
    pub lookback: Duration,
    pub drift_threshold: f64,
}

#[derive(Default)]
struct Sums {
    gateway_cost: u64,
    gateway_in: u64,
    gateway_out: u64,
    provider_cost: Option<i64>,
    provider_in: u64,
    provider_out: u64,
}

/// One row per day of `days` (the provider's calendar days, in order) for `side`.
pub fn reconcile(
    side: &Side,
    days: &[Date],
    gateway: &[GatewayHour],
    provider: &[StoredUsageRow],
    settings: Settings,
) -> Vec<DayRow> {
    let mut sums: BTreeMap<Date, Sums> = days.iter().map(|d| (*d, Sums::default())).collect();
    let day_of = |at: Timestamp| at.to_zoned_datetime(side.time_zone.clone()).date();
    for hour in gateway.iter().filter(|h| side.gateway_providers.contains(&h.provider)) {
        if let Some(sum) = sums.get_mut(&day_of(hour.hour)) {
            sum.gateway_cost = sum.gateway_cost.saturating_add(hour.cost_nanos);
            sum.gateway_in = sum.gateway_in.saturating_add(hour.tokens_in);
            sum.gateway_out = sum.gateway_out.saturating_add(hour.tokens_out);
        }
    }
    for stored in provider.iter().filter(|r| r.provider == side.provider) {
        let Some(sum) = sums.get_mut(&day_of(stored.row.bucket_start)) else { continue };
        match stored.row.grain {
            Grain::Day => {
                sum.provider_cost = Some(sum.provider_cost.unwrap_or(0).saturating_add(stored.row.cost_nanos));
            }
            Grain::Hour => {
                sum.provider_in = sum.provider_in.saturating_add(stored.row.tokens_in);
                sum.provider_out = sum.provider_out.saturating_add(stored.row.tokens_out);
            }
        }
    }
    let settled_before = jiff::SignedDuration::try_from(settings.lookback)
        .ok()
        .and_then(|lookback| settings.now.checked_sub(lookback).ok())
        .unwrap_or(Timestamp::MIN);
    sums.into_iter()
        .map(|(day, sum)| {
            let end = day
                .tomorrow()
                .ok()
                .and_then(|d| d.to_zoned_datetime(side.time_zone.clone()).ok())
                .map(|z| z.timestamp());
            let pending = end.is_none_or(|end| end > settled_before);
            let gateway = i64::try_from(sum.gateway_cost).unwrap_or(i64::MAX);
            let diff = sum.provider_cost.map(|p| gateway.saturating_sub(p));
            let ratio = match (sum.provider_cost, diff) {
                (Some(p), Some(d)) if p != 0 => Some((d as f64 / p as f64).abs()),
                (Some(_), Some(0)) => Some(0.0),
                _ => None,
            };
            let status = if pending {
                Status::Pending
            } else {
                match (sum.provider_cost, ratio) {
                    (None, _) => Status::MissingProviderData,
                    (Some(_), Some(r)) if r <= settings.drift_threshold => Status::Ok,
                    (Some(_), _) => Status::Drift,
                }
            };
            DayRow {
                provider: side.provider.clone(),
                day,
                gateway_cost_nanos: sum.gateway_cost,
                provider_cost_nanos: sum.provider_cost,
                diff_nanos: diff,
                diff_ratio: ratio,
                gateway_tokens_in: sum.gateway_in,
                gateway_tokens_out: sum.gateway_out,
                provider_tokens_in: sum.provider_in,
                provider_tokens_out: sum.provider_out,
                status,
            }
        })
        .collect()
}

/// The calendar days in `tz` that `[from, to)` touches, at most `max`.
pub fn days_between(from: Timestamp, to: Timestamp, tz: &TimeZone, max: usize) -> Vec<Date> {
    let mut days = Vec::new();
    if from >= to {
        return days;
    }
    let last = to.checked_sub(jiff::SignedDuration::from_nanos(1)).unwrap_or(to).to_zoned_datetime(tz.clone()).date();
    let mut day = from.to_zoned_datetime(tz.clone()).date();
    while day <= last && days.len() < max {
        days.push(day);
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    days
}

/// The start of `day` in `tz`, as an instant.
pub fn day_start(day: Date, tz: &TimeZone) -> Option<Timestamp> {
    day.to_zoned_datetime(tz.clone()).ok().map(|z| z.timestamp())
}

//! Query strings: the [`Params`] extractor that reads one into an endpoint's documented parameter struct, and the
//! values they share (times as `RFC 3339` or `YYYY-MM-DD` in UTC, booleans, numbers), each failure naming its
//! parameter.

use axum::extract::{FromRequestParts, Query};
use http::request::Parts;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::AdminError;

/// Which end of a span a bare date stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateEnd {
    /// `2026-05-01` = `2026-05-01T00:00:00Z`.
    Start,
    /// `2026-05-01` = `2026-05-02T00:00:00Z`: an end date is inclusive of its day.
    End,
}

/// An RFC 3339 instant (`2026-05-01T10:00:00Z`, offsets allowed) or a UTC date.
pub fn time(name: &str, value: &str, end: DateEnd) -> Result<Timestamp, AdminError> {
    if let Ok(at) = value.parse::<Timestamp>() {
        return Ok(at);
    }
    let bad = || AdminError::bad(name, format!("{value:?} is neither an RFC 3339 time nor a YYYY-MM-DD date"));
    let date: Date = value.parse().map_err(|_| bad())?;
    let date = match end {
        DateEnd::Start => date,
        DateEnd::End => date.tomorrow().map_err(|_| bad())?,
    };
    date.to_zoned_datetime(TimeZone::UTC).map(|z| z.timestamp()).map_err(|_| bad())
}

/// Reads the pairs of an endpoint that takes a span, in order: `from` (a bare date: its start) and `to` (a bare
/// date: inclusive of its day) into `from` and `to`, every other pair through `other`, which answers the 400
/// for a name the endpoint does not know.
pub fn window_pairs(
    pairs: Vec<(String, String)>,
    from: &mut Option<Timestamp>,
    to: &mut Option<Timestamp>,
    mut other: impl FnMut(&str, String) -> Result<(), AdminError>,
) -> Result<(), AdminError> {
    for (name, value) in pairs {
        match name.as_str() {
            "from" => *from = Some(time(&name, &value, DateEnd::Start)?),
            "to" => *to = Some(time(&name, &value, DateEnd::End)?),
            _ => other(&name, value)?,
        }
    }
    Ok(())
}

/// `true`/`false` (also `1`/`0`).
pub fn boolean(name: &str, value: &str) -> Result<bool, AdminError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(AdminError::bad(name, format!("{value:?} is not a boolean (true or false)"))),
    }
}

/// A non-negative amount of US dollars, as nano-dollars.
pub fn usd(name: &str, value: &str) -> Result<u64, AdminError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .and_then(tollgate_limits::usd_to_nanos)
        .ok_or_else(|| AdminError::bad(name, format!("{value:?} is not a non-negative number of US dollars")))
}

/// An integer in `min..=max`.
pub fn integer<T: TryFrom<u64>>(name: &str, value: &str, min: u64, max: u64) -> Result<T, AdminError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| AdminError::bad(name, format!("{value:?} is not an integer from {min} to {max}")))
}

/// The store, or 503 when the gateway runs without one.
pub fn store(state: &crate::AdminState) -> Result<&tollgate_store::Store, AdminError> {
    state.store.as_ref().ok_or_else(|| AdminError::Unavailable("no database is attached to this gateway".to_owned()))
}

/// A parameter struct read from the query string's name/value pairs, in order, each bad one a 400 naming it.
pub trait FromQueryPairs: Sized {
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, AdminError>;
}

/// Extracts `T` from the query string; the rejection is an [`AdminError`] (a malformed query string is a 400 in
/// the admin error shape), so the handler receives the struct the OpenAPI document describes.
pub struct Params<T>(pub T);

impl<T: FromQueryPairs, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| AdminError::bad("query", e.body_text()))?;
        T::from_pairs(pairs).map(Params)
    }
}

//! BigQuery `jobs.query` / `jobs.getQueryResults` responses over the billing export: one row per US Pacific day
//! (`day`, `cost` in dollars as a NUMERIC string, `currency`), as the query in `crate::google` selects them.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;
use tollgate_store::ProviderUsageRow;

use super::cost_row;
use crate::decimal::to_scaled_i64;

/// Google bills by the US Pacific day.
pub const PACIFIC: &str = "America/Los_Angeles";

/// What a response says besides its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigQueryPage {
    pub rows: Vec<ProviderUsageRow>,
    pub job_complete: bool,
    pub job_id: Option<String>,
    pub location: Option<String>,
    pub page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    job_complete: bool,
    #[serde(default)]
    job_reference: Option<JobReference>,
    #[serde(default)]
    schema: Option<Schema>,
    #[serde(default)]
    rows: Vec<Row>,
    #[serde(default)]
    page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobReference {
    job_id: String,
    #[serde(default)]
    location: Option<String>,
}

#[derive(Deserialize)]
struct Schema {
    fields: Vec<Field>,
}

#[derive(Deserialize)]
struct Field {
    name: String,
}

#[derive(Deserialize)]
struct Row {
    f: Vec<Cell>,
}

#[derive(Deserialize)]
struct Cell {
    v: Option<String>,
}

pub(crate) fn parse(body: &str) -> Result<BigQueryPage, String> {
    let response: Response = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let job = response.job_reference;
    let mut page = BigQueryPage {
        rows: Vec::new(),
        job_complete: response.job_complete,
        job_id: job.as_ref().map(|j| j.job_id.clone()),
        location: job.and_then(|j| j.location),
        page_token: response.page_token.filter(|t| !t.is_empty()),
    };
    if !page.job_complete {
        return Ok(page);
    }
    if page.page_token.as_ref().is_some_and(|t| t.len() > 4_096) {
        return Err("pageToken is too long".into());
    }
    let fields = response.schema.ok_or("a complete job without a schema")?.fields;
    let column = |name: &str| {
        fields.iter().position(|f| f.name == name).ok_or_else(|| format!("no {name} column in the schema"))
    };
    let (day, cost, currency) = (column("day")?, column("cost")?, column("currency")?);
    let pacific = TimeZone::get(PACIFIC).map_err(|e| e.to_string())?;
    for row in response.rows {
        let cell =
            |i: usize| row.f.get(i).and_then(|c| c.v.as_deref()).ok_or_else(|| format!("a row without column {i}"));
        let currency = cell(currency)?;
        if !currency.eq_ignore_ascii_case("usd") {
            return Err(format!("currency {currency:?} is not USD"));
        }
        let date: Date = cell(day)?.parse().map_err(|e| format!("day: {e}"))?;
        let start = date.to_zoned_datetime(pacific.clone()).map_err(|e| e.to_string())?.timestamp();
        let nanos = to_scaled_i64(cell(cost)?, 9).map_err(|e| e.to_string())?;
        page.rows.push(cost_row(start, nanos));
    }
    Ok(page)
}

//! Provider usage ingestion: pulls the providers' own usage and cost reports (OpenAI, Anthropic, Google's
//! BigQuery billing export) every `ingest.interval`, keeps every page verbatim, writes normalised rows per
//! provider and hour or day, and compares them with the gateway's own spend, day by day.

mod client;
mod decimal;
mod error;
mod fetch;
mod reconcile;
mod report;
mod runner;

pub use client::MAX_PAGES;
pub use decimal::{BadAmount, to_scaled_i64};
pub use error::{IngestError, RESULTS};
pub use fetch::RetryPolicy;
pub use reconcile::{DayRow, Settings, Side, Status, day_start, days_between, reconcile};
pub use report::{PACIFIC, Page, ParseError, Report, parse_raw_page};
pub use runner::{Ingest, IngestOptions, LastRun, PROVIDERS};

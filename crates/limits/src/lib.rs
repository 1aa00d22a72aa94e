//! Tollgate's pure spend and rate limit engine: rule specs and validation, windows, buckets, reservations,
//! rate limiting, and the `cf-aig-metadata` header. No I/O and no async: the proxy admits and settles, the store
//! drains and loads.

mod clock;
mod dimension;
mod engine;
mod metadata;
mod money;
mod rate;
mod rebuild;
mod spec;
mod window;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dimension::{
    Dimension, DimensionKey, DimensionMode, MISSING_VALUE, RequestDims, SINGLE_BUCKET_KEY, bucket_key,
};
pub use engine::{
    Admission, Blocked, BucketDelta, BucketTotal, BucketUsage, Decision, LiveBucket, RuleDecision, SpendEngine,
};
pub use metadata::{
    DEFAULT_MAX_ENTRIES, MAX_HEADER_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES, Metadata, MetadataError, MetadataValue,
};
pub use money::{MAX_NANOS, NANOS_PER_USD, clamp_nanos, nanos_to_i64, nanos_to_usd, usd_to_nanos};
pub use rate::{RateLimited, RateLimiter, SharedBucket};
pub use rebuild::{RebuiltRule, Span, SpendRebuild};
pub use spec::{
    Action, DimensionModeSpec, DimensionSpec, FieldError, MAX_ID_BYTES, RatePer, RateRule, RateRuleSpec, Reserve,
    Route, RouteCandidate, RouteSpec, SpendRule, SpendRuleSpec, rule_metadata_keys, validate_rate_rules,
    validate_routes, validate_spend_rules,
};
pub use window::{ROLLING_SLOTS, Window, WindowError, WindowKind, WindowLength, parse_window};

/// The canonical model name of the `model` dimension (the catalog's normalisation, from the accounting crate).
pub use tollgate_accounting::canonical_model;

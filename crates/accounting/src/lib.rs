//! Pure accounting for the gateway: SSE framing, usage extraction per provider format, pricing in nano-dollars.

pub mod injected_usage;
mod json_scan;
pub mod pricing;
pub mod sse;
pub mod tap;
pub mod usage;

pub use injected_usage::{IncludeUsage, InjectedUsageFilter, ensure_include_usage};
pub use pricing::{
    CatalogError, CostSource, CustomCost, CustomCostError, DecimalError, PriceCatalog, Priced, PromptEstimate,
    UnpricedSet, canonical_model, estimate_output_tokens, estimate_prompt, estimate_prompt_tokens,
    prompt_held_by_provider,
};
pub use sse::{SseEvent, SseItem, SseParser};
pub use tap::{Observation, UsageTap};
pub use usage::{ApiFormat, Usage};

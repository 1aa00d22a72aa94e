//! Tests of the catalog, cost formulas (exact fixture costs), name normalisation, overrides and custom costs.

use jiff::civil::{Date, date};
use proptest::prelude::*;

use super::decimal::parse_scaled;
use super::{
    CatalogError, CostSource, CustomCost, CustomCostError, DecimalError, PriceCatalog, Priced, PromptEstimate,
    UnpricedSet, canonical_model, estimate_output_tokens, estimate_prompt, estimate_prompt_tokens,
    prompt_held_by_provider,
};
use crate::tap::UsageTap;
use crate::usage::{ApiFormat, Usage};

const TODAY: Date = date(2026, 11, 25);

/// The default `gateway.max_custom_cost_usd` ($100) in nano-dollars.
const MAX_CUSTOM: u64 = 100_000_000_000;

fn custom(header: &str) -> Result<CustomCost, CustomCostError> {
    CustomCost::parse(header, MAX_CUSTOM)
}

fn catalog() -> PriceCatalog {
    PriceCatalog::bundled().unwrap()
}

fn usage(input: u64, cache_read: u64, output: u64) -> Usage {
    Usage { input, cache_read, output, ..Usage::default() }
}

fn catalog_cost(provider: &str, model: &str, usage: &Usage) -> u64 {
    let priced = catalog().price(provider, model, usage, TODAY);
    assert_eq!(priced.source, CostSource::Catalog, "{provider}/{model} should be priced");
    priced.cost_nanos
}

/// Taps a fixture and prices what it reports under the model it reports.
fn fixture_cost(provider: &str, format: ApiFormat, streaming: bool, bytes: &[u8]) -> u64 {
    let mut tap = UsageTap::new(format, streaming);
    tap.observe(bytes);
    let seen = tap.finish();
    catalog_cost(provider, seen.model.as_deref().unwrap(), &seen.usage.unwrap())
}

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/", $name)).as_slice()
    };
}

#[test]
fn bundled_catalog_loads_and_covers_every_provider() {
    let catalog = catalog();
    assert_eq!(catalog.version(), "2026-11-25");
    let models: usize = catalog.providers.values().map(std::collections::HashMap::len).sum();
    assert!(models >= 40, "only {models} models");
    for provider in ["openai", "anthropic", "google-ai-studio", "groq", "mistral", "deepseek", "xai"] {
        assert!(catalog.providers.contains_key(provider), "{provider} missing");
    }
}

#[test]
fn fixture_costs_match_wire_formats_exactly() {
    // $0.000260
    assert_eq!(fixture_cost("openai", ApiFormat::OpenAiChat, false, fixture!("openai_chat_nonstream.json")), 260_000);
    // $0.0017644
    assert_eq!(
        fixture_cost("openai", ApiFormat::OpenAiResponses, false, fixture!("openai_responses_nonstream.json")),
        1_764_400
    );
    // $0.008148
    assert_eq!(
        fixture_cost("anthropic", ApiFormat::AnthropicMessages, false, fixture!("anthropic_nonstream.json")),
        8_148_000
    );
    // $0.00034102
    assert_eq!(
        fixture_cost("google-ai-studio", ApiFormat::GeminiGenerate, false, fixture!("gemini_nonstream.json")),
        341_020
    );
    // input 25 × $1 + output 4 × $5 per 1M
    assert_eq!(fixture_cost("anthropic", ApiFormat::AnthropicMessages, true, fixture!("anthropic_stream.sse")), 45_000);
    // input 8 × $0.30 + output 31 × $2.50 per 1M
    assert_eq!(
        fixture_cost("google-ai-studio", ApiFormat::GeminiGenerate, true, fixture!("gemini_stream.sse")),
        79_900
    );
    assert_eq!(fixture_cost("openai", ApiFormat::OpenAiChat, true, fixture!("openai_chat_stream_usage.sse")), 3_600);
    assert_eq!(
        fixture_cost("openai", ApiFormat::OpenAiResponses, true, fixture!("openai_responses_stream.sse")),
        1_300
    );
    assert_eq!(
        fixture_cost("openai", ApiFormat::OpenAiCompletions, false, fixture!("openai_completions_nonstream.json")),
        15_500
    );
    assert_eq!(fixture_cost("openai", ApiFormat::OpenAiEmbeddings, false, fixture!("openai_embeddings.json")), 160);
    // 10 × 1 + 1000 × 1.25 + 2000 × 2 + 500 × 0.10 + 20 × 5
    assert_eq!(
        fixture_cost("anthropic", ApiFormat::AnthropicMessages, false, fixture!("anthropic_cache_1h.json")),
        5_410_000
    );
    // miss 76 × 0.28 + hit 1024 × 0.028 + 50 × 0.42
    assert_eq!(fixture_cost("deepseek", ApiFormat::OpenAiChat, true, fixture!("deepseek_stream_hit_miss.sse")), 70_952);
    // 40 × 0.59 + 10 × 0.79
    assert_eq!(fixture_cost("groq", ApiFormat::OpenAiChat, true, fixture!("groq_stream_double_usage.sse")), 31_500);
    // 24 × 3 + 6 × 3 (no cache price: input rate) + 320 × 15
    assert_eq!(fixture_cost("xai", ApiFormat::OpenAiChat, true, fixture!("xai_stream_second_to_last.sse")), 4_890_000);
    // 7 × 0.06 + 3 × 0.18
    assert_eq!(fixture_cost("mistral", ApiFormat::OpenAiChat, true, fixture!("mistral_stream_last_chunk.sse")), 960);
    // OpenRouter names map onto the base model: 100 × 3 + 5 × 15
    assert_eq!(
        fixture_cost("openrouter", ApiFormat::OpenAiChat, true, fixture!("openrouter_stream_comments.sse")),
        375_000
    );
    // Azure deployment already mapped to a dated model name by the caller: 20 × 2.5 + 2 × 10
    assert_eq!(
        fixture_cost("azure-openai", ApiFormat::OpenAiChat, true, fixture!("azure_stream_filter_chunk.sse")),
        70_000
    );
}

#[test]
fn fractional_nano_dollars_round_up() {
    // deepseek-v4-flash cache reads cost $0.0028/M = 2.8 nano-dollars per token.
    assert_eq!(catalog_cost("deepseek", "deepseek-v4-flash", &usage(0, 1, 0)), 3);
    assert_eq!(catalog_cost("deepseek", "deepseek-v4-flash", &usage(0, 10, 0)), 28);
    assert_eq!(catalog_cost("openai", "gpt-4o-mini", &usage(1, 0, 0)), 150);
    assert_eq!(catalog_cost("openai", "gpt-4o-mini", &usage(0, 0, 0)), 0);
}

#[test]
fn long_context_tier_boundary_is_strictly_greater() {
    let at_threshold = usage(200_000, 0, 1_000);
    assert_eq!(catalog_cost("anthropic", "claude-sonnet-4-5", &at_threshold), 615_000_000);
    let over = usage(200_001, 0, 1_000);
    // every token at the tier price, output included: 200001 × 6 + 1000 × 22.50
    assert_eq!(catalog_cost("anthropic", "claude-sonnet-4-5", &over), 1_222_506_000);
}

#[test]
fn long_context_prompt_counts_cache_reads_and_writes() {
    let cached = Usage {
        input: 1_000,
        cache_read: 190_000,
        cache_write_5m: 9_000,
        cache_write_1h: 1,
        output: 100,
        ..Usage::default()
    };
    // 1000 × 6 + 190000 × 0.60 + 9000 × 7.50 + 1 × 12 + 100 × 22.50 (µ$)
    assert_eq!(catalog_cost("anthropic", "claude-sonnet-4-5", &cached), 189_762_000);
    let gemini_over = usage(200_001, 0, 10);
    assert_eq!(catalog_cost("google-ai-studio", "gemini-2.5-pro", &gemini_over), 500_152_500);
    let gpt_over = usage(272_001, 0, 0);
    assert_eq!(catalog_cost("openai", "gpt-5.4", &gpt_over), 1_360_005_000);
}

#[test]
fn effective_from_selects_the_price_of_the_day() {
    let catalog = catalog();
    let request = usage(76, 1024, 50);
    let cost_on = |day: Date| catalog.price("deepseek", "deepseek-chat", &request, day).cost_nanos;
    assert_eq!(cost_on(date(2025, 1, 1)), 147_200);
    assert_eq!(cost_on(date(2025, 9, 4)), 147_200);
    assert_eq!(cost_on(date(2025, 9, 5)), 198_240);
    assert_eq!(cost_on(date(2025, 9, 28)), 198_240);
    assert_eq!(cost_on(date(2025, 9, 29)), 70_952);
    assert_eq!(cost_on(TODAY), 70_952);
}

#[test]
fn date_before_every_entry_uses_the_earliest() {
    let catalog = PriceCatalog::from_toml(
        "[[model]]\nprovider = \"p\"\nmodel = \"m\"\neffective_from = \"2026-01-01\"\ninput = \"1\"\noutput = \"2\"\n",
    )
    .unwrap();
    assert_eq!(catalog.price("p", "m", &usage(1_000_000, 0, 0), date(2020, 1, 1)).cost_nanos, 1_000_000_000);
}

#[test]
fn service_tiers_use_their_prices() {
    let priority = Usage { service_tier: Some("priority".into()), ..usage(1_000, 0, 100) };
    assert_eq!(catalog_cost("openai", "gpt-4o", &priority), 5_950_000);
    let default = Usage { service_tier: Some("default".into()), ..usage(1_000, 0, 100) };
    assert_eq!(catalog_cost("openai", "gpt-4o", &default), 3_500_000);
    let flex = Usage { service_tier: Some("flex".into()), ..usage(1_000, 0, 100) };
    assert_eq!(catalog_cost("openai", "o3", &flex), 1_400_000);
    // gpt-5-nano has no priority prices (the LiteLLM value is a data bug): standard applies.
    let nano = Usage { service_tier: Some("priority".into()), ..usage(1_000_000, 0, 0) };
    assert_eq!(catalog_cost("openai", "gpt-5-nano", &nano), 50_000_000);
}

#[test]
fn known_data_bugs_are_not_copied() {
    let write_1h = Usage { cache_write_1h: 1_000_000, ..Usage::default() };
    assert_eq!(catalog_cost("anthropic", "claude-3-haiku-20240307", &write_1h), 500_000_000);
}

#[test]
fn model_names_are_normalised() {
    let catalog = catalog();
    let known = |provider: &str, model: &str| catalog.knows(provider, model, TODAY);
    assert!(known("openai", "gpt-4.1-mini-2025-04-14"));
    assert!(known("openai", "GPT-4o"));
    assert!(known("openrouter", "openai/gpt-4o"));
    assert!(known("openrouter", "anthropic/claude-sonnet-4.5"));
    assert!(known("openrouter", "google/gemini-2.5-flash"));
    assert!(known("openrouter", "x-ai/grok-4"));
    assert!(known("google-ai-studio", "models/gemini-2.5-flash"));
    assert!(known("google-ai-studio", "gemini-2.5-flash-001"));
    assert!(known("anthropic", "claude-sonnet-4-5-20250929"));
    assert!(known("anthropic", "claude-haiku-4-5-20251001"));
    assert!(known("anthropic", "claude-haiku-4-5@20251001"));
    assert!(known("azure-openai", "gpt-4o-2024-11-20"));
    assert!(known("mistral", "mistral-large-2411"));
    assert!(known("mistral", "mistral-small"));
    assert!(known("groq", "openai/gpt-oss-120b"));
    assert!(known("xai", "grok-4.3"));
    assert!(!known("openai", "gpt-9"));
    assert!(!known("nobody", "gpt-4o"));
    // Exact names win: gpt-4.1 must not be found as gpt-4.1-mini or the reverse.
    let one = usage(1_000_000, 0, 0);
    assert_eq!(catalog_cost("openai", "gpt-4.1", &one), 2_000_000_000);
    assert_eq!(catalog_cost("openai", "gpt-4.1-mini", &one), 400_000_000);
}

#[test]
fn unknown_model_is_unpriced() {
    assert_eq!(catalog().price("openai", "gpt-9", &usage(10, 0, 10), TODAY), Priced::UNPRICED);
    assert_eq!(CostSource::Unpriced.as_str(), "unpriced");
    assert_eq!(CostSource::Catalog.as_str(), "catalog");
}

#[test]
fn estimated_usage_is_marked_estimated() {
    let priced = catalog().price_estimate("openai", "gpt-4o-mini", &usage(1, 0, 0), TODAY);
    assert_eq!(priced.source, CostSource::Estimated);
    assert_eq!(priced.cost_nanos, 150);
}

#[test]
fn unpriced_pairs_are_reported_once() {
    let mut reported = UnpricedSet::default();
    assert!(reported.first_report("openai", "gpt-9"));
    assert!(!reported.first_report("openai", "gpt-9"));
    assert!(reported.first_report("openai", "gpt-10"));
    for index in 0..UnpricedSet::MAX_PAIRS {
        reported.first_report("p", &index.to_string());
    }
    assert!(!reported.first_report("p", "new"));
}

#[test]
fn overrides_replace_a_model_and_add_new_ones() {
    let overrides = r#"
version = "local-1"

[[model]]
provider = "openai"
model = "gpt-4o"
input = 1
output = 2.5

[[model]]
provider = "acme"
model = "rocket-1"
input = "0.000001"
output = "3"
"#;
    let catalog = catalog().with_overrides(overrides).unwrap();
    assert_eq!(catalog.version(), "2026-11-25+local-1");
    let million = usage(1_000_000, 0, 1_000_000);
    assert_eq!(catalog.price("openai", "gpt-4o", &million, TODAY).cost_nanos, 3_500_000_000);
    assert_eq!(catalog.price("acme", "rocket-1", &usage(1, 0, 0), TODAY).cost_nanos, 1);
    assert_eq!(catalog.price("openai", "gpt-4o-mini", &usage(1, 0, 0), TODAY).cost_nanos, 150);
}

#[test]
fn catalog_errors_name_the_entry_and_field() {
    let bad_price = "[[model]]\nprovider = \"a\"\nmodel = \"ok\"\ninput = \"1\"\noutput = \"1\"\n\n[[model]]\nprovider = \"a\"\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\ncache_read = \"x1\"\n";
    let error = PriceCatalog::from_toml(bad_price).unwrap_err();
    assert!(matches!(&error, CatalogError::Field { index: 1, field, .. } if field == "cache_read"), "{error}");
    assert_eq!(error.to_string(), "price catalog: model[1] (m).cache_read: not a decimal number: \"x1\"");

    let unknown_key = "[[model]]\nprovider = \"a\"\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\ncahce_read = \"1\"\n";
    let error = PriceCatalog::from_toml(unknown_key).unwrap_err();
    assert!(matches!(&error, CatalogError::Entry { index: 0, reason, .. } if reason.contains("cahce_read")), "{error}");

    let missing = "[[model]]\nprovider = \"a\"\nmodel = \"m\"\ninput = \"1\"\n";
    assert!(matches!(PriceCatalog::from_toml(missing), Err(CatalogError::Entry { index: 0, .. })));

    let tier = "[[model]]\nprovider = \"a\"\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\n[model.long_context]\ninput = \"2\"\noutput = \"-2\"\n";
    let error = PriceCatalog::from_toml(tier).unwrap_err();
    assert!(matches!(&error, CatalogError::Field { field, .. } if field == "long_context.threshold_tokens"), "{error}");

    let negative = "[[model]]\nprovider = \"a\"\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\n[model.priority]\ninput = \"2\"\noutput = \"-2\"\n";
    let error = PriceCatalog::from_toml(negative).unwrap_err();
    assert!(matches!(&error, CatalogError::Field { field, .. } if field == "priority.output"), "{error}");

    let duplicate = "[[model]]\nprovider = \"a\"\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\n[[model]]\nprovider = \"a\"\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\n";
    assert!(matches!(PriceCatalog::from_toml(duplicate), Err(CatalogError::Duplicate { index: 1, .. })));

    let bad_date =
        "[[model]]\nprovider = \"a\"\nmodel = \"m\"\neffective_from = \"yesterday\"\ninput = \"1\"\noutput = \"1\"\n";
    let error = PriceCatalog::from_toml(bad_date).unwrap_err();
    assert!(matches!(&error, CatalogError::Field { field, .. } if field == "effective_from"), "{error}");

    assert!(matches!(PriceCatalog::from_toml("version = ["), Err(CatalogError::Toml(_))));
}

#[test]
fn float_prices_are_read_as_written() {
    let text = "[[model]]\nprovider = \"a\"\nmodel = \"m\"\ninput = 0.1\noutput = 0.075\ncache_read = 1e-7\n";
    let catalog = PriceCatalog::from_toml(text).unwrap();
    let million = Usage { input: 1_000_000, cache_read: 1_000_000, output: 1_000_000, ..Usage::default() };
    // 0.1 + 0.075 + 0.0000001 USD, exactly
    assert_eq!(catalog.price("a", "m", &million, TODAY).cost_nanos, 175_000_100);
}

#[test]
fn worst_case_uses_max_tokens_or_the_model_cap() {
    let catalog = catalog();
    assert_eq!(catalog.worst_case_cost("openai", "gpt-4.1-mini", 1_000, Some(500), TODAY), Some(1_200_000));
    assert_eq!(catalog.worst_case_cost("openai", "gpt-4.1-mini", 1_000, None, TODAY), Some(52_828_800));
    // the dearest tier that could apply: priority
    assert_eq!(catalog.worst_case_cost("openai", "gpt-4o", 1_000, Some(500), TODAY), Some(12_750_000));
    // long context when the prompt estimate is over the threshold
    assert_eq!(catalog.worst_case_cost("anthropic", "claude-sonnet-4-5", 200_001, Some(0), TODAY), Some(1_200_006_000));
    assert_eq!(catalog.worst_case_cost("openai", "gpt-9", 1_000, Some(500), TODAY), None);
    assert_eq!(catalog.max_output_tokens("openai", "gpt-4.1-mini-2025-04-14", TODAY), Some(32_768));
    assert_eq!(catalog.worst_case_cost("openai", "text-embedding-3-small", 1_000_000, None, TODAY), Some(20_000_000));
}

#[test]
fn custom_cost_per_token_and_total() {
    let per_token = custom(r#"{"per_token_in":0.000003,"per_token_out":1.5e-5}"#).unwrap();
    assert_eq!(
        per_token,
        CustomCost::PerToken { input_atto: 3_000_000_000_000, output_atto: 15_000_000_000_000, max_nanos: MAX_CUSTOM }
    );
    let request = Usage { cache_read: 100, ..usage(1_000, 0, 10) };
    // (1000 + 100) × 3 µ$ + 10 × 15 µ$ = 3450 µ$
    assert_eq!(per_token.price(&request), Priced { cost_nanos: 3_450_000, source: CostSource::Custom });
    let total = custom(r#" { "total_cost" : 0.0123 } "#).unwrap();
    assert_eq!(total, CustomCost::Total { nanos: 12_300_000 });
    assert_eq!(total.price(&request).cost_nanos, 12_300_000);
    // any number of decimals: sub-nano totals round up
    assert_eq!(custom(r#"{"total_cost":0.0000000001}"#).unwrap(), CustomCost::Total { nanos: 1 });
    assert_eq!(custom(r#"{"total_cost":"0.5"}"#).unwrap(), CustomCost::Total { nanos: 500_000_000 });
    let tiny = custom(r#"{"per_token_in":0.0000000000000000001,"per_token_out":0}"#).unwrap();
    assert_eq!(tiny.price(&usage(1, 0, 0)).cost_nanos, 1);
}

#[test]
fn custom_cost_errors_name_the_field() {
    assert!(matches!(custom("nope"), Err(CustomCostError::NotAnObject(_))));
    assert!(matches!(custom("[1]"), Err(CustomCostError::NotAnObject(_))));
    assert_eq!(
        custom(r#"{"per_token_inn":1,"per_token_out":1}"#),
        Err(CustomCostError::UnknownField("per_token_inn".into()))
    );
    let error = custom(r#"{"total_cost":-1}"#).unwrap_err();
    assert!(matches!(error, CustomCostError::Amount { field: "total_cost", source: DecimalError::Negative(_) }));
    assert!(error.to_string().contains("`total_cost`"));
    assert!(matches!(
        custom(r#"{"per_token_in":true,"per_token_out":1}"#),
        Err(CustomCostError::Amount { field: "per_token_in", .. })
    ));
    assert!(matches!(
        custom(r#"{"per_token_in":"abc","per_token_out":1}"#),
        Err(CustomCostError::Amount { field: "per_token_in", .. })
    ));
    assert_eq!(custom(r#"{"per_token_in":1}"#), Err(CustomCostError::MissingField("per_token_out")));
    assert_eq!(custom("{}"), Err(CustomCostError::Ambiguous));
    assert_eq!(custom(r#"{"total_cost":1,"per_token_in":1,"per_token_out":1}"#), Err(CustomCostError::Ambiguous));
}

#[test]
fn decimal_parsing_is_exact() {
    assert_eq!(parse_scaled("0.40", 9), Ok(400_000_000));
    assert_eq!(parse_scaled("0.0028", 9), Ok(2_800_000));
    assert_eq!(parse_scaled("12", 9), Ok(12_000_000_000));
    assert_eq!(parse_scaled("1.5e-5", 18), Ok(15_000_000_000_000));
    assert_eq!(parse_scaled("1E+2", 0), Ok(100));
    assert_eq!(parse_scaled("0.0000000001", 9), Ok(1), "rounds up");
    assert_eq!(parse_scaled("-0", 9), Ok(0));
    assert_eq!(parse_scaled("1e-999999", 9), Ok(1));
    assert_eq!(parse_scaled("0e999999", 9), Ok(0));
    assert!(matches!(parse_scaled("1e999", 9), Err(DecimalError::Overflow(_))));
    assert!(matches!(parse_scaled("-0.1", 9), Err(DecimalError::Negative(_))));
    for bad in ["", ".5", "5.", "1.2.3", "0x10", "1e", "abc", "+1", "1 2"] {
        assert!(matches!(parse_scaled(bad, 9), Err(DecimalError::Syntax(_))), "{bad:?}");
    }
}

#[test]
fn prompt_estimate_counts_text_not_structure_or_media() {
    let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"abcdefgh"},{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"text","text":"1234"}]}]}"#;
    assert_eq!(estimate_prompt_tokens(body), 3);
    assert_eq!(estimate_prompt_tokens(b"not json at all!"), 4);
    assert_eq!(estimate_prompt_tokens(b""), 0);
    assert_eq!(estimate_output_tokens(0), 0);
    assert_eq!(estimate_output_tokens(9), 3);
}

proptest! {
    #[test]
    fn decimal_text_round_trips(whole in 0u64..1_000_000, fraction in 0u64..1_000_000_000) {
        let text = format!("{whole}.{fraction:09}");
        let expected = u128::from(whole) * 1_000_000_000 + u128::from(fraction);
        prop_assert_eq!(parse_scaled(&text, 9), Ok(expected));
    }

    #[test]
    fn cost_is_monotonic_in_every_bucket(input in 0u64..1_000_000, output in 0u64..1_000_000, extra in 1u64..1000) {
        let catalog = PriceCatalog::bundled().unwrap();
        let base = catalog.price("anthropic", "claude-haiku-4-5", &usage(input, 0, output), TODAY).cost_nanos;
        let more = catalog.price("anthropic", "claude-haiku-4-5", &usage(input + extra, 0, output), TODAY).cost_nanos;
        prop_assert!(more > base);
    }
}

#[test]
fn s23_huge_exponents_are_errors_never_tiny_prices() {
    assert!(matches!(parse_scaled("1e9223372036854775807", 18), Err(DecimalError::Overflow(_))));
    assert!(matches!(parse_scaled("1e99999999999999999999999", 9), Err(DecimalError::Overflow(_))));
    assert!(matches!(parse_scaled("123.456e9223372036854775807", 0), Err(DecimalError::Overflow(_))));
    assert_eq!(parse_scaled("1e-9223372036854775808", 18), Ok(1), "far below one unit rounds up");
    assert_eq!(parse_scaled("1e-99999999999999999999999", 18), Ok(1));
    assert_eq!(parse_scaled("0e9223372036854775807", 18), Ok(0));
    assert!(matches!(parse_scaled("1e+", 9), Err(DecimalError::Syntax(_))));
    assert!(matches!(parse_scaled("1e--1", 9), Err(DecimalError::Syntax(_))));
    let error = custom(r#"{"per_token_in":"1e9223372036854775807","per_token_out":0}"#).unwrap_err();
    assert!(matches!(error, CustomCostError::AboveMaximum { field: "per_token_in", .. }), "{error}");
}

#[test]
fn s23_costs_and_token_sums_saturate() {
    let huge = Usage {
        input: u64::MAX,
        cache_read: u64::MAX,
        cache_write_5m: u64::MAX,
        cache_write_1h: u64::MAX,
        output: u64::MAX,
        ..Usage::default()
    };
    assert_eq!(huge.prompt_total(), u64::MAX);
    assert_eq!(huge.total_tokens(), u64::MAX);
    assert_eq!(catalog_cost("openai", "o1-pro", &huge), u64::MAX);
    assert_eq!(catalog().worst_case_cost("openai", "o1-pro", u64::MAX, Some(u64::MAX), TODAY), Some(u64::MAX));
    let held = PromptEstimate { tokens: u64::MAX, held_by_provider: true };
    assert_eq!(catalog().worst_case_cost_for("openai", "o1-pro", &held, None, TODAY), Some(u64::MAX));
    let per_token = custom(r#"{"per_token_in":100,"per_token_out":100}"#).unwrap();
    assert_eq!(per_token.price(&huge).cost_nanos, MAX_CUSTOM);
}

#[test]
fn s2_custom_cost_above_the_maximum_is_refused_naming_the_field() {
    let error = custom(r#"{"total_cost":10000000000}"#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cf-aig-custom-cost: total_cost 10000000000 is above the maximum of 100 USD per request \
         (gateway.max_custom_cost_usd)"
    );
    assert!(matches!(custom(r#"{"total_cost":100.000000001}"#), Err(CustomCostError::AboveMaximum { .. })));
    assert_eq!(custom(r#"{"total_cost":100}"#), Ok(CustomCost::Total { nanos: MAX_CUSTOM }));
    let error = custom(r#"{"per_token_in":0.000003,"per_token_out":"150"}"#).unwrap_err();
    assert!(matches!(&error, CustomCostError::AboveMaximum { field: "per_token_out", amount, .. } if amount == "150"));
    // The maximum is the caller's: a cheaper one refuses more, and is printed as written in USD.
    let error = CustomCost::parse(r#"{"total_cost":0.75}"#, 500_000_000).unwrap_err();
    assert!(error.to_string().contains("total_cost 0.75 is above the maximum of 0.5 USD per request"), "{error}");
    // Negative, non-numeric and non-finite amounts are refused with their field.
    for (header, field) in [
        (r#"{"total_cost":-0.01}"#, "total_cost"),
        (r#"{"total_cost":"NaN"}"#, "total_cost"),
        (r#"{"total_cost":"inf"}"#, "total_cost"),
        (r#"{"total_cost":null}"#, "total_cost"),
        (r#"{"per_token_in":"-1","per_token_out":0}"#, "per_token_in"),
        (r#"{"per_token_in":0,"per_token_out":[1]}"#, "per_token_out"),
    ] {
        assert!(
            matches!(custom(header), Err(CustomCostError::Amount { field: f, .. }) if f == field),
            "{header}: {:?}",
            custom(header)
        );
    }
}

#[test]
fn s1_per_token_custom_cost_is_clamped_at_the_maximum() {
    let dear = custom(r#"{"per_token_in":1,"per_token_out":1}"#).unwrap();
    // 1 USD per token × 1,000 tokens would be $1,000: clamped at $100.
    assert_eq!(dear.price(&usage(500, 0, 500)).cost_nanos, MAX_CUSTOM);
    assert_eq!(dear.price(&usage(3, 0, 4)).cost_nanos, 7_000_000_000);
}

#[test]
fn s16_custom_cost_worst_case_is_known_without_max_tokens() {
    let text = PromptEstimate { tokens: 1_000, held_by_provider: false };
    let held = PromptEstimate { held_by_provider: true, ..text };
    let total = custom(r#"{"total_cost":0.004}"#).unwrap();
    assert_eq!(total.worst_case_nanos(&text, None), 4_000_000);
    assert_eq!(total.worst_case_nanos(&held, Some(10)), 4_000_000);
    let per_token = custom(r#"{"per_token_in":0.000001,"per_token_out":0.000002}"#).unwrap();
    // 1000 × 1 µ$ + 500 × 2 µ$
    assert_eq!(per_token.worst_case_nanos(&text, Some(500)), 2_000_000);
    assert_eq!(per_token.worst_case_nanos(&text, None), MAX_CUSTOM, "no output bound: the maximum");
    assert_eq!(per_token.worst_case_nanos(&held, Some(500)), MAX_CUSTOM, "prompt not in the body: the maximum");
    let dear = custom(r#"{"per_token_in":50,"per_token_out":50}"#).unwrap();
    assert_eq!(dear.worst_case_nanos(&text, Some(10)), MAX_CUSTOM, "clamped like the price");
}

#[test]
fn s5_missing_billed_models_are_priced_at_list_prices() {
    // 100k in + 100k out: below every long-context threshold.
    let hundred_k = usage(100_000, 0, 100_000);
    let cases: [(&str, &str, u64); 10] = [
        ("openai", "o1-pro", 750),
        ("openai", "o1-pro-2025-03-19", 750),
        ("openai", "o1", 75),
        ("openai", "o1-2024-12-17", 75),
        ("openai", "gpt-4-turbo", 40),
        ("openai", "gpt-4-turbo-2024-04-09", 40),
        ("anthropic", "claude-sonnet-4", 18),
        ("anthropic", "claude-sonnet-4-20250514", 18),
        ("anthropic", "claude-opus-4-20250514", 90),
        ("anthropic", "claude-3-7-sonnet-20250219", 18),
    ];
    for (provider, model, usd) in cases {
        // (input + output price) per 1M × 0.1M
        assert_eq!(catalog_cost(provider, model, &hundred_k), usd * 100_000_000, "{provider}/{model}");
    }
    // $0.10 + $0.40 per 1M
    assert_eq!(catalog_cost("google-ai-studio", "gemini-2.0-flash-001", &hundred_k), 50_000_000);
    assert_eq!(catalog_cost("anthropic", "claude-opus-4-1-20250805", &hundred_k), 9_000_000_000);
    // Sonnet 4 above 200k prompt tokens: $6 / $22.50 for every token.
    assert_eq!(catalog_cost("anthropic", "claude-sonnet-4-20250514", &usage(1_000_000, 0, 1_000_000)), 28_500_000_000);
    // Cache prices of the new Claude entries (100k read + 100k 5-minute write).
    let cached = Usage { cache_read: 100_000, cache_write_5m: 100_000, ..Usage::default() };
    assert_eq!(catalog_cost("anthropic", "claude-sonnet-4", &cached), 405_000_000);
    assert_eq!(catalog_cost("anthropic", "claude-opus-4", &cached), 2_025_000_000);
    assert_eq!(catalog_cost("anthropic", "claude-3-7-sonnet", &cached), 405_000_000);
    // Still unknown: a model nobody sells, and fine-tunes (billed above their base model, so never priced as it).
    assert!(!catalog().knows("openai", "o1-ultra", TODAY));
    assert!(!catalog().knows("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc123", TODAY));
}

#[test]
fn every_bundled_entry_has_a_context_window_and_an_output_cap() {
    let catalog = catalog();
    for (provider, models) in &catalog.providers {
        for (model, entries) in models {
            for entry in entries {
                let window = entry.context_window.unwrap_or(0);
                assert!(window > 0, "{provider}/{model} has no context_window");
                let cap = entry.max_output_tokens.unwrap_or(u64::MAX);
                assert!(cap <= window, "{provider}/{model}: max_output_tokens above the context window");
            }
        }
    }
    assert_eq!(catalog.context_window("openai", "gpt-4o-2024-08-06", TODAY), Some(128_000));
    assert_eq!(catalog.context_window("nobody", "x", TODAY), None);
}

#[test]
fn s15_held_prompts_are_detected_in_the_body() {
    let held = [
        r#"{"model":"o3","previous_response_id":"resp_1","input":"and then?"}"#,
        r#"{"model":"o3","conversation":"conv_1","input":"hi"}"#,
        r#"{"model":"o3","conversation":{"id":"conv_1"},"input":"hi"}"#,
        r#"{"cachedContent":"cachedContents/abc","contents":[{"parts":[{"text":"hi"}]}]}"#,
        r#"{"contents":[{"parts":[{"fileData":{"mimeType":"application/pdf","fileUri":"gs://x"}}]}]}"#,
        r#"{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"AAAA"}}]}]}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA","format":"wav"}}]}]}"#,
        r#"{"input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}"#,
        r#"{"input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/y.png"}]}]}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://x/a.pdf"}}]}]}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"previous_\u0072esponse_id":"resp_1"}"#,
    ];
    for body in held {
        assert!(prompt_held_by_provider(body.as_bytes()), "{body}");
    }
    let text_only = [
        r#"{"model":"o3","input":"hello","previous_response_id":null}"#,
        r#"{"messages":[{"role":"user","content":"please read file_id and image_url"}]}"#,
        // A provider-held member below the top level is client data, not the request's.
        r#"{"metadata":{"previous_response_id":"x"},"input":"hi"}"#,
        r#"{"input":[{"role":"user","content":"hi","conversation":"c"}]}"#,
        // Tool schemas and formats describe shapes, not inputs.
        r#"{"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"file":{"type":"string"},"image_url":{"type":"string"}}}}}],"messages":[]}"#,
        r#"{"text":{"format":{"type":"json_schema","schema":{"properties":{"file_id":{"type":"string"}}}}},"input":"x"}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"image"}]}]}"#,
        "not json {\"file_id\":\"x\"}",
    ];
    for body in text_only {
        assert!(!prompt_held_by_provider(body.as_bytes()), "{body}");
    }
}

#[test]
fn s15_worst_case_reserves_the_context_window_when_the_prompt_is_held() {
    let catalog = catalog();
    let body = br#"{"model":"gpt-4o","previous_response_id":"resp_1","input":"abcd","max_output_tokens":100}"#;
    let prompt = estimate_prompt(body);
    // The text: "resp_1" and "abcd", 10 bytes.
    assert_eq!(prompt, PromptEstimate { tokens: 3, held_by_provider: true });
    // 128,000 input tokens at the dearest gpt-4o tier (priority: $4.25 / $17 per 1M) + 100 output.
    assert_eq!(catalog.worst_case_cost_for("openai", "gpt-4o", &prompt, Some(100), TODAY), Some(545_700_000));
    let text = PromptEstimate { held_by_provider: false, ..prompt };
    assert_eq!(catalog.worst_case_cost_for("openai", "gpt-4o", &text, Some(100), TODAY), Some(1_712_750));
    // Crossing a long-context threshold by reserving the window prices the whole request at the higher tier.
    let sonnet = catalog.worst_case_cost_for("anthropic", "claude-sonnet-4-5", &prompt, Some(0), TODAY).unwrap();
    assert_eq!(sonnet, 6_000_000_000, "1M tokens at $6 per 1M");
    // A user entry without a context window reserves the text estimate.
    let user =
        PriceCatalog::from_toml("[[model]]\nprovider = \"a\"\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\n").unwrap();
    assert_eq!(user.worst_case_cost_for("a", "m", &prompt, Some(0), TODAY), Some(3_000), "3 tokens at $1 per 1M");
    // max_tokens above the model's cap is reserved at the cap.
    assert_eq!(
        catalog.worst_case_cost("openai", "gpt-4.1-mini", 0, Some(u64::MAX), TODAY),
        catalog.worst_case_cost("openai", "gpt-4.1-mini", 0, None, TODAY)
    );
}

#[test]
fn s17_canonical_model_names() {
    let cases = [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4o-mini", "gpt-4o-mini"),
        ("  gpt-4o-mini-2024-07-18 ", "gpt-4o-mini"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("models/gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("mistral-large-latest", "mistral-large"),
        ("mistral-large-2411", "mistral-large"),
        ("gpt-4.1", "gpt-4.1"),
        ("o1-pro", "o1-pro"),
        ("", ""),
    ];
    for (name, canonical) in cases {
        assert_eq!(canonical_model(name), canonical, "{name:?}");
        assert_eq!(canonical_model(&canonical_model(name)), canonical, "idempotent for {name:?}");
    }
    // The canonical name is always found where the name itself is (the catalog's own last step).
    let catalog = catalog();
    for (provider, name) in [
        ("openai", "GPT-4o-mini-2024-07-18"),
        ("google-ai-studio", "models/gemini-2.5-flash-001"),
        ("anthropic", "claude-sonnet-4.5"),
        ("mistral", "mistral-large-2411"),
        ("groq", "llama-3.3-70b-versatile"),
    ] {
        assert!(catalog.knows(provider, name, TODAY), "{provider}/{name}");
        assert!(catalog.knows(provider, &canonical_model(name), TODAY), "{provider}/{}", canonical_model(name));
    }
}

#[test]
fn s9_billing_prefers_the_request_model_unless_the_response_names_a_variant() {
    let catalog = catalog();
    let pick = |request: &'static str, response: Option<&'static str>| {
        catalog.billing_model("google-ai-studio", request, response, TODAY)
    };
    assert_eq!(pick("gemini-2.5-pro", None), "gemini-2.5-pro");
    assert_eq!(pick("gemini-2.5-pro", Some("")), "gemini-2.5-pro");
    assert_eq!(pick("gemini-2.5-pro", Some("gemini-2.5-pro-001")), "gemini-2.5-pro-001");
    // A cheaper or unknown model named by the response never moves the price.
    assert_eq!(pick("gemini-2.5-pro", Some("gemini-2.5-flash-lite")), "gemini-2.5-pro");
    assert_eq!(pick("gemini-2.5-pro", Some("free")), "gemini-2.5-pro");
    // An alias the catalog cannot price is priced as the model that answered.
    assert_eq!(pick("my-default", Some("gemini-2.5-flash")), "gemini-2.5-flash");
    assert_eq!(pick("my-default", Some("also-unknown")), "my-default");
    let openai = catalog.billing_model("openai", "gpt-4o", Some("gpt-4o-2024-08-06"), TODAY);
    assert_eq!(openai, "gpt-4o-2024-08-06");
    assert_eq!(catalog.billing_model("openai", "gpt-4o", Some("gpt-4o-mini-2024-07-18"), TODAY), "gpt-4o");
}

#[test]
fn s14_a_24_mib_number_array_body_is_estimated_in_one_pass() {
    let mut body = Vec::with_capacity(24 * 1024 * 1024 + 64);
    body.extend_from_slice(br#"{"model":"x","messages":[{"role":"user","content":"abcdefgh"}],"a":[0"#);
    while body.len() < 24 * 1024 * 1024 {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    assert_eq!(estimate_prompt(&body), PromptEstimate { tokens: 2, held_by_provider: false });
    // Cut short, it is not JSON: measured whole.
    assert_eq!(estimate_prompt_tokens(&body[..body.len() - 1]), ((body.len() - 1) as u64).div_ceil(4));
}

#[test]
fn s14_streaming_estimate_matches_the_old_rules() {
    // Escaped strings count their decoded bytes; `data:` URLs and non-prompt keys (at any depth, with their
    // whole subtree) do not count; numbers and booleans do not count.
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"a\"b\\c\u00e9"},
        {"role":"tool","tool_call_id":"call_123456","content":[{"type":"text","text":"xyz"}]}],
        "data":{"nested":"not counted"},"n":1,"stream":true,"stop":["\n\n"],
        "image":"data:image/png;base64,AAAAAAAA"}"#;
    // "a\"b\\c\u00e9" → 7 bytes (é is two), "xyz" → 3, "\n\n" → 2: 12 bytes → 3 tokens
    assert_eq!(estimate_prompt_tokens(body.as_bytes()), 3);
    // Nesting beyond the JSON decoder's limit is "not JSON", as with a full parse.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(estimate_prompt_tokens(deep.as_bytes()), 100);
}

proptest! {
    /// Costs of any token counts, near `u64::MAX` included, never wrap or panic: adding tokens to any bucket
    /// never lowers the cost, and worst cases and custom costs stay monotone and bounded.
    #[test]
    fn s23_pricing_saturates_and_stays_monotone(
        base in prop_oneof![any::<u64>(), (0u64..1024).prop_map(|d| u64::MAX - d), 0u64..10_000_000],
        extra in any::<u64>(),
        field in 0usize..5,
        held: bool,
    ) {
        let catalog = PriceCatalog::bundled().unwrap();
        let before = Usage {
            input: base,
            cache_read: base / 2,
            cache_write_5m: base / 3,
            cache_write_1h: base / 5,
            output: base / 7,
            ..Usage::default()
        };
        let mut after = before.clone();
        let slot = match field {
            0 => &mut after.input,
            1 => &mut after.cache_read,
            2 => &mut after.cache_write_5m,
            3 => &mut after.cache_write_1h,
            _ => &mut after.output,
        };
        *slot = slot.saturating_add(extra);
        for (provider, model) in [("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-5.4"), ("openai", "o1-pro")] {
            let cost = |usage: &Usage| catalog.price(provider, model, usage, TODAY).cost_nanos;
            prop_assert!(cost(&after) >= cost(&before), "{}/{}", provider, model);
            let worst = |tokens: u64| {
                let prompt = PromptEstimate { tokens, held_by_provider: held };
                catalog.worst_case_cost_for(provider, model, &prompt, Some(base), TODAY).unwrap()
            };
            prop_assert!(worst(base.saturating_add(extra)) >= worst(base));
        }
        let per_token = custom(r#"{"per_token_in":"0.000001","per_token_out":"0.00001"}"#).unwrap();
        let (low, high) = (per_token.price(&before).cost_nanos, per_token.price(&after).cost_nanos);
        prop_assert!(low <= high && high <= MAX_CUSTOM);
    }
}

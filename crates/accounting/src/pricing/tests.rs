//! Tests of the catalog, cost formulas (exact fixture costs), name normalisation, overrides and custom costs.

use jiff::civil::{Date, date};
use proptest::prelude::*;

use super::decimal::parse_scaled;
use super::{
    CatalogError, CostSource, CustomCost, CustomCostError, DecimalError, PriceCatalog, Priced, UnpricedSet,
    estimate_output_tokens, estimate_prompt_tokens,
};
use crate::tap::UsageTap;
use crate::usage::{ApiFormat, Usage};

const TODAY: Date = date(2026, 11, 25);

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
    let per_token = CustomCost::parse(r#"{"per_token_in":0.000003,"per_token_out":1.5e-5}"#).unwrap();
    assert_eq!(per_token, CustomCost::PerToken { input_atto: 3_000_000_000_000, output_atto: 15_000_000_000_000 });
    let request = Usage { cache_read: 100, ..usage(1_000, 0, 10) };
    // (1000 + 100) × 3 µ$ + 10 × 15 µ$ = 3450 µ$
    assert_eq!(per_token.price(&request), Priced { cost_nanos: 3_450_000, source: CostSource::Custom });
    let total = CustomCost::parse(r#" { "total_cost" : 0.0123 } "#).unwrap();
    assert_eq!(total, CustomCost::Total { nanos: 12_300_000 });
    assert_eq!(total.price(&request).cost_nanos, 12_300_000);
    // any number of decimals: sub-nano totals round up
    assert_eq!(CustomCost::parse(r#"{"total_cost":0.0000000001}"#).unwrap(), CustomCost::Total { nanos: 1 });
    assert_eq!(CustomCost::parse(r#"{"total_cost":"0.5"}"#).unwrap(), CustomCost::Total { nanos: 500_000_000 });
    let tiny = CustomCost::parse(r#"{"per_token_in":0.0000000000000000001,"per_token_out":0}"#).unwrap();
    assert_eq!(tiny.price(&usage(1, 0, 0)).cost_nanos, 1);
}

#[test]
fn custom_cost_errors_name_the_field() {
    assert!(matches!(CustomCost::parse("nope"), Err(CustomCostError::NotAnObject(_))));
    assert!(matches!(CustomCost::parse("[1]"), Err(CustomCostError::NotAnObject(_))));
    assert_eq!(
        CustomCost::parse(r#"{"per_token_inn":1,"per_token_out":1}"#),
        Err(CustomCostError::UnknownField("per_token_inn".into()))
    );
    let error = CustomCost::parse(r#"{"total_cost":-1}"#).unwrap_err();
    assert!(matches!(error, CustomCostError::Amount { field: "total_cost", source: DecimalError::Negative(_) }));
    assert!(error.to_string().contains("`total_cost`"));
    assert!(matches!(
        CustomCost::parse(r#"{"per_token_in":true,"per_token_out":1}"#),
        Err(CustomCostError::Amount { field: "per_token_in", .. })
    ));
    assert!(matches!(
        CustomCost::parse(r#"{"per_token_in":"abc","per_token_out":1}"#),
        Err(CustomCostError::Amount { field: "per_token_in", .. })
    ));
    assert_eq!(CustomCost::parse(r#"{"per_token_in":1}"#), Err(CustomCostError::MissingField("per_token_out")));
    assert_eq!(CustomCost::parse("{}"), Err(CustomCostError::Ambiguous));
    assert_eq!(
        CustomCost::parse(r#"{"total_cost":1,"per_token_in":1,"per_token_out":1}"#),
        Err(CustomCostError::Ambiguous)
    );
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

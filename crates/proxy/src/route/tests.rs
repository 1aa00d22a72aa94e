//! Tests of path classification and of the billing table.

use super::*;

fn post(path: &str) -> Result<Shape, GatewayError> {
    classify(&Method::POST, path)
}

fn passthrough(gateway: &str, provider: &str, rest: &str) -> Shape {
    Shape::Passthrough { gateway: gateway.into(), provider: provider.into(), rest: rest.into(), post: true }
}

#[test]
fn classify_every_shape() {
    assert_eq!(post("/v1/chat/completions").unwrap(), Shape::DropIn { suffix: "chat/completions" });
    assert_eq!(classify(&Method::GET, "/v1/models").unwrap(), Shape::DropIn { suffix: "models" });
    assert_eq!(post("/v1/messages").unwrap(), Shape::Messages { rest: "v1/messages".into(), post: true });
    assert_eq!(
        post("/v1/messages/count_tokens").unwrap(),
        Shape::Messages { rest: "v1/messages/count_tokens".into(), post: true }
    );
    assert_eq!(post("/compat/chat/completions").unwrap(), Shape::Compat { gateway: "default".into() });
    assert_eq!(post("/openai/chat/completions").unwrap(), passthrough("default", "openai", "chat/completions"));
    assert_eq!(post("/v1/acc/gw/anthropic/v1/messages").unwrap(), passthrough("gw", "anthropic", "v1/messages"));
    assert_eq!(post("/v1/acc/gw/compat/chat/completions").unwrap(), Shape::Compat { gateway: "gw".into() });
    assert_eq!(
        classify(&Method::GET, "/openai/chat/completions").unwrap(),
        Shape::Passthrough {
            gateway: "default".into(),
            provider: "openai".into(),
            rest: "chat/completions".into(),
            post: false
        }
    );
    for bad in ["/", "/openai", "/v1/acc/gw", "/v1/acc/gw/openai", "/compat/models", "/v1/acc//openai/x", "/compat"] {
        assert!(matches!(post(bad), Err(GatewayError::UnknownRoute(_))), "{bad}");
    }
}

#[test]
fn s6_classification_sees_the_decoded_normalised_path() {
    assert_eq!(post("/openai/chat/completion%73").unwrap(), passthrough("default", "openai", "chat/completions"));
    assert_eq!(post("/anthropic/v1/messag%65s").unwrap(), passthrough("default", "anthropic", "v1/messages"));
    assert_eq!(
        post("/google-ai-studio/v1beta/models/gemini-2.5-pro%3AgenerateContent").unwrap(),
        passthrough("default", "google-ai-studio", "v1beta/models/gemini-2.5-pro:generateContent")
    );
    assert_eq!(post("/v1/messages/").unwrap(), Shape::Messages { rest: "v1/messages".into(), post: true });
    assert_eq!(post("/v1//chat/completions/").unwrap(), Shape::DropIn { suffix: "chat/completions" });
    assert_eq!(post("/v1/chat/completion%73").unwrap(), Shape::DropIn { suffix: "chat/completions" });
    assert_eq!(
        post("/v1/acc/gw/%61nthropic/v1/chat/completions").unwrap(),
        passthrough("gw", "anthropic", "v1/chat/completions")
    );
}

#[test]
fn s6_dot_segments_encoded_separators_and_bad_bytes_are_invalid_paths() {
    for bad in [
        "/v1/messages/../messages",
        "/local/../../x",
        "/openai/%2e%2e/files",
        "/openai/chat%2Fcompletions",
        "/openai/chat%5Ccompletions",
        "/openai/chat/completions%00",
        "/openai/chat/completions%zz",
        "/v1/acc/gw/openai/./chat/completions",
    ] {
        let error = post(bad).unwrap_err();
        assert_eq!(error.code(), "invalid_path", "{bad}");
        assert_eq!(error.status(), http::StatusCode::BAD_REQUEST, "{bad}");
        assert!(error.to_string().contains(&format!("{bad:?}")), "the message names the path: {error}");
    }
}

#[test]
fn client_chosen_segments_are_bounded() {
    let long = "g".repeat(MAX_SEGMENT_CHARS + 1);
    let fits = "g".repeat(MAX_SEGMENT_CHARS);
    for (path, names) in [
        (format!("/v1/acc/{long}/openai/chat/completions"), "gateway"),
        ("/v1/acc/my%20gw/openai/chat/completions".to_string(), "gateway"),
        ("/v1/acc/gw.x/openai/chat/completions".to_string(), "gateway"),
        (format!("/v1/{long}/gw/openai/chat/completions"), "account"),
        ("/v1/a~c/gw/openai/chat/completions".to_string(), "account"),
        (format!("/{long}/chat/completions"), "provider"),
        (format!("/v1/acc/gw/{long}/chat/completions"), "provider"),
    ] {
        let error = post(&path).unwrap_err();
        assert_eq!(error.code(), "invalid_path", "{path}");
        assert!(error.to_string().contains(names), "{path}: {error}");
    }
    assert_eq!(
        post(&format!("/v1/{fits}/{fits}/openai/chat/completions")).unwrap(),
        passthrough(&fits, "openai", "chat/completions")
    );
    assert_eq!(post(&format!("/{fits}/x")).unwrap(), passthrough("default", &fits, "x"));
    let too_long = format!("/openai/{}", "a".repeat(path::MAX_PATH_BYTES));
    let error = post(&too_long).unwrap_err();
    assert_eq!(error.code(), "invalid_path");
    let message = error.to_string();
    assert!(message.contains("2048") && message.len() < 400, "the message is bounded too: {message}");
}

fn api(family: ProviderFamily, rest: &str) -> Api {
    Endpoint::of(family, true, rest).api
}

#[test]
fn the_openai_family_table() {
    use ProviderFamily::{Azure, OpenAi};
    for family in [OpenAi, Azure] {
        for (rest, expected) in [
            ("chat/completions", Api::OpenAiChat),
            ("v1/chat/completions", Api::OpenAiChat),
            ("openai/v1/chat/completions", Api::OpenAiChat),
            ("completions", Api::OpenAiCompletions),
            ("v1/completions", Api::OpenAiCompletions),
            ("embeddings", Api::OpenAiEmbeddings),
            ("responses", Api::OpenAiResponses),
            ("openai/deployments/gpt-4o/chat/completions", Api::OpenAiChat),
            ("openai/deployments/emb/embeddings", Api::OpenAiEmbeddings),
            ("images/generations", Api::Unmetered),
            ("images/edits", Api::Unmetered),
            ("audio/speech", Api::Unmetered),
            ("audio/transcriptions", Api::Unmetered),
            ("batches", Api::Unmetered),
            ("batches/batch_1/cancel", Api::Other),
            ("fine_tuning/jobs", Api::Unmetered),
            ("threads/t1/runs", Api::Unmetered),
            ("realtime/sessions", Api::Unmetered),
            ("openai/deployments/dalle/images/generations", Api::Unmetered),
            ("files", Api::Other),
            ("moderations", Api::Other),
            ("responses/resp_1/cancel", Api::Other),
            ("chat/completions/chatcmpl_1", Api::Other),
        ] {
            assert_eq!(api(family, rest), expected, "{family:?} {rest}");
        }
    }
    // A GET is never a generation: it lists or reads stored objects.
    assert_eq!(Endpoint::of(OpenAi, false, "chat/completions").api, Api::Other);
    assert_eq!(Endpoint::of(OpenAi, false, "batches").api, Api::Other);
    assert_eq!(Endpoint::of(OpenAi, false, "v1/models").api, Api::OpenAiModels);
    // Azure's deployment names the model when the body does not.
    assert_eq!(
        Endpoint::of(Azure, true, "openai/deployments/my-gpt-4o/chat/completions").path_model.as_deref(),
        Some("my-gpt-4o")
    );
    assert!(!Endpoint::of(OpenAi, true, "chat/completions").openai_compatible);
}

#[test]
fn the_anthropic_table() {
    use ProviderFamily::Anthropic;
    for (rest, expected) in [
        ("v1/messages", Api::AnthropicMessages),
        ("messages", Api::AnthropicMessages),
        ("v1/messages/count_tokens", Api::Other),
        ("v1/messages/batches", Api::Unmetered),
        ("v1/messages/batches/b1/cancel", Api::Other),
        ("v1/complete", Api::Unmetered),
        ("v1/chat/completions", Api::OpenAiChat),
        ("v1/models", Api::Other),
        ("v1/files", Api::Other),
    ] {
        assert_eq!(api(Anthropic, rest), expected, "{rest}");
    }
    assert!(Endpoint::of(Anthropic, true, "v1/chat/completions").openai_compatible);
    assert!(!Endpoint::of(Anthropic, true, "v1/messages").openai_compatible);
    assert_eq!(Endpoint::of(Anthropic, false, "v1/messages").api, Api::Other);
}

#[test]
fn the_google_table() {
    use ProviderFamily::Google;
    for (rest, expected) in [
        ("v1beta/models/gemini-2.5-flash:generateContent", Api::GeminiGenerate),
        ("v1/models/gemini-2.5-flash:generateContent", Api::GeminiGenerate),
        ("v1alpha/models/gemini-2.5-flash:streamGenerateContent", Api::GeminiStream),
        ("v1beta/tunedModels/my-tune:generateContent", Api::GeminiGenerate),
        ("v1beta/models/gemini-2.5-flash:countTokens", Api::Other),
        ("v1beta/models/text-embedding-004:embedContent", Api::Unmetered),
        ("v1beta/models/text-embedding-004:batchEmbedContents", Api::Unmetered),
        ("v1beta/models/gemini-2.5-flash:batchGenerateContent", Api::Unmetered),
        ("v1beta/models/imagen-4:predict", Api::Unmetered),
        ("v1beta/cachedContents", Api::Unmetered),
        ("v1beta/batches/b1:cancel", Api::Other),
        ("v1beta/openai/chat/completions", Api::OpenAiChat),
        ("v1beta/openai/embeddings", Api::OpenAiEmbeddings),
        ("v1beta/openai/images/generations", Api::Unmetered),
        ("v1beta/files", Api::Other),
        ("v1beta/models", Api::Other),
    ] {
        assert_eq!(api(Google, rest), expected, "{rest}");
    }
    let generate = Endpoint::of(Google, true, "v1beta/models/gemini-2.5-pro:generateContent");
    assert_eq!(generate.path_model.as_deref(), Some("gemini-2.5-pro"));
    assert!(!generate.openai_compatible);
    assert!(Endpoint::of(Google, true, "v1beta/openai/chat/completions").openai_compatible);
    assert!(Endpoint::of(Google, true, "v1beta/openai/embeddings").openai_compatible);
    assert_eq!(Endpoint::of(Google, false, "v1beta/models/gemini-2.5-pro:generateContent").api, Api::Other);
}

#[test]
fn body_peek_reads_model_and_stream_only() {
    let body = br#"{"messages":[{"content":"model"}],"model":"openai/gpt-4o","stream":true,"x":{"model":1}}"#;
    let peek = BodyPeek::parse(body).unwrap().unwrap();
    assert_eq!(peek.model_str().as_deref(), Some("openai/gpt-4o"));
    assert_eq!(peek.stream, Some(true));
    assert!(BodyPeek::parse(b"  ").unwrap().is_none());
    assert!(BodyPeek::parse(b"{").is_err());
    assert!(BodyPeek::parse(b"[]").is_err());
}

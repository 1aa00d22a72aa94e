//! Tests of path classification.

use super::*;

#[test]
fn classify_every_shape() {
    assert_eq!(classify("/v1/chat/completions").unwrap(), Shape::DropIn { suffix: "chat/completions" });
    assert_eq!(classify("/v1/models").unwrap(), Shape::DropIn { suffix: "models" });
    assert_eq!(classify("/v1/messages").unwrap(), Shape::Messages { rest: "v1/messages".into() });
    assert_eq!(
        classify("/v1/messages/count_tokens").unwrap(),
        Shape::Messages { rest: "v1/messages/count_tokens".into() }
    );
    assert_eq!(classify("/compat/chat/completions").unwrap(), Shape::Compat { gateway: "default".into() });
    assert_eq!(
        classify("/openai/chat/completions").unwrap(),
        Shape::Passthrough { gateway: "default".into(), provider: "openai".into(), rest: "chat/completions".into() }
    );
    assert_eq!(
        classify("/v1/acc/gw/anthropic/v1/messages").unwrap(),
        Shape::Passthrough { gateway: "gw".into(), provider: "anthropic".into(), rest: "v1/messages".into() }
    );
    assert_eq!(classify("/v1/acc/gw/compat/chat/completions").unwrap(), Shape::Compat { gateway: "gw".into() });
    for bad in ["/", "/openai", "/v1/acc/gw", "/v1/acc/gw/openai", "/compat/models", "/v1/acc//openai/x"] {
        assert!(matches!(classify(bad), Err(GatewayError::UnknownRoute(_))), "{bad}");
    }
}

#[test]
fn gemini_paths_name_the_model_and_the_stream() {
    assert_eq!(
        gemini_api("v1beta/models/gemini-2.5-flash:streamGenerateContent", None, false),
        (Api::GeminiStream, Some("gemini-2.5-flash".into()), true)
    );
    assert_eq!(
        gemini_api("v1beta/models/gemini-2.5-pro:generateContent", None, true),
        (Api::GeminiGenerate, Some("gemini-2.5-pro".into()), false)
    );
    assert_eq!(gemini_api("v1beta/models", None, false), (Api::Other, None, false));
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

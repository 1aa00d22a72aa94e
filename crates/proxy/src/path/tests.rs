//! Tests of path normalisation.

use super::*;

/// The normalised path: `/` followed by the normalised segments joined by `/` (as the upstream gets it).
fn normalise(raw: &str) -> Result<String, PathError> {
    Ok(format!("/{}", segments(raw)?.join("/")))
}

#[test]
fn escaped_unreserved_characters_and_colons_are_decoded() {
    for (raw, normal) in [
        ("/openai/chat/completion%73", "/openai/chat/completions"),
        ("/anthropic/v1/messag%65s", "/anthropic/v1/messages"),
        (
            "/google-ai-studio/v1beta/models/gemini-2.5-pro%3AgenerateContent",
            "/google-ai-studio/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        (
            "/google-ai-studio/v1beta/models/gemini%2D2%2E5%2Dpro%3agenerateContent",
            "/google-ai-studio/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        ("/%6F%70%65%6E%61%69/%7E%5F", "/openai/~_"),
    ] {
        assert_eq!(normalise(raw).unwrap(), normal, "{raw}");
    }
}

#[test]
fn other_escapes_stay_encoded_with_upper_case_hex() {
    assert_eq!(normalise("/files/a%20b%2bc%c3%a9").unwrap(), "/files/a%20b%2Bc%C3%A9");
    assert_eq!(normalise("/x/%40%3f%23").unwrap(), "/x/%40%3F%23");
}

#[test]
fn duplicate_and_trailing_slashes_are_dropped() {
    assert_eq!(normalise("/v1/messages/").unwrap(), "/v1/messages");
    assert_eq!(normalise("//openai///chat//completions//").unwrap(), "/openai/chat/completions");
    assert_eq!(normalise("/").unwrap(), "/");
    assert_eq!(normalise("").unwrap(), "/");
}

#[test]
fn dot_segments_are_refused_however_they_are_spelled() {
    for raw in [
        "/v1/messages/../messages",
        "/local/../../x",
        "/openai/./chat/completions",
        "/openai/%2e%2e/x",
        "/openai/.%2E/x",
        "/openai/%2E/x",
        "/openai/x/..",
    ] {
        assert_eq!(normalise(raw), Err(PathError::DotSegment), "{raw}");
    }
    // Dots inside a segment are ordinary characters.
    assert_eq!(normalise("/a/..b/c.d/...").unwrap(), "/a/..b/c.d/...");
}

#[test]
fn encoded_separators_control_bytes_and_bad_escapes_are_refused() {
    for raw in
        ["/openai/chat%2Fcompletions", "/openai/chat%2fcompletions", "/openai/a%5Cb", "/openai/a%5cb", "/openai/a\\b"]
    {
        assert_eq!(normalise(raw), Err(PathError::EncodedSeparator), "{raw}");
    }
    for raw in ["/openai/a%00b", "/openai/a%0Ab", "/openai/a%7f", "/openai/a\u{1}b"] {
        assert_eq!(normalise(raw), Err(PathError::ControlByte), "{raw}");
    }
    for raw in ["/openai/a%", "/openai/a%4", "/openai/a%zz", "/openai/a%4g/b", "/openai/%%41"] {
        assert_eq!(normalise(raw), Err(PathError::BadEscape), "{raw}");
    }
}

#[test]
fn a_path_over_the_bound_is_refused() {
    let long = format!("/openai/{}", "a".repeat(MAX_PATH_BYTES));
    assert_eq!(normalise(&long), Err(PathError::TooLong { bytes: long.len() }));
    let fits = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
    assert_eq!(normalise(&fits).unwrap(), fits);
    assert!(PathError::TooLong { bytes: 5000 }.to_string().contains("2048"));
}

//! The upstream client's failures keep their cause.

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use tollgate_config::Backoff;

use super::{SendError, UpstreamCall, UpstreamClient};
use crate::error::GatewayError;
use crate::headers::Controls;

#[tokio::test]
async fn a_provider_that_refuses_connections_is_unreachable_with_the_connect_error_as_source() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
    let port = port.unwrap_or_else(|e| unreachable!("no free port: {e}"));
    let call = UpstreamCall {
        provider: "openai".into(),
        method: Method::POST,
        uri: format!("http://127.0.0.1:{port}/v1/chat/completions").parse().unwrap_or_default(),
        headers: HeaderMap::new(),
        body: Bytes::from_static(b"{}"),
        controls: Controls {
            timeout: Duration::from_secs(5),
            max_attempts: 1,
            retry_delay: Duration::ZERO,
            backoff: Backoff::Constant,
            zdr: false,
            collect_log: true,
            collect_log_payload: true,
            event_id: None,
            metadata: None,
            custom_cost: None,
            cache: crate::headers::CacheControls::default(),
        },
    };
    let Err(SendError::Failed { error, reached_provider }) = UpstreamClient::new().send(call).await else {
        unreachable!("a closed port must fail the send");
    };
    assert!(!reached_provider, "no connection was made, so nothing is billable");
    assert!(matches!(error, GatewayError::UpstreamUnreachable { .. }), "{error}");
    let source = error.source().map(ToString::to_string).unwrap_or_default();
    assert!(source.to_lowercase().contains("connect"), "the cause is kept as source(): {source:?}");
    assert!(error.to_string().contains("could not reach the provider openai"), "{error}");
}

//! The list every section's problems go into, and the checks of values that many sections share.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use crate::units::parse_duration;
use crate::{ConfigIssue, Secret, redact};

#[derive(Default)]
pub(super) struct Issues(pub(super) Vec<ConfigIssue>);

impl Issues {
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue { path: path.into(), message: message.into() });
    }

    pub(super) fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.push(path, message)).ok()
    }

    pub(super) fn addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        self.check(path, text.parse().map_err(|_| format!("{text:?} is not an address like 0.0.0.0:8080")))
    }

    /// Takes a limits-engine validation result, prefixing its errors with the list's key.
    pub(super) fn rules<T>(&mut self, list: &str, result: Result<Vec<T>, Vec<tollgate_limits::FieldError>>) -> Vec<T> {
        result.unwrap_or_else(|errors| {
            for error in errors {
                let sep = if error.path.starts_with('[') || error.path.is_empty() { "" } else { "." };
                self.push(format!("{list}{sep}{}", error.path), error.message);
            }
            Vec::new()
        })
    }

    pub(super) fn duration(&mut self, path: &str, text: &str) -> Option<Duration> {
        self.check(path, parse_duration(text))
    }

    /// A provider base URL: http(s), and neither a query nor a fragment, since the request path is appended to
    /// it (a query would swallow the path). Messages print the URL redacted: it may carry a password.
    pub(super) fn base_url(&mut self, path: &str, text: &str) -> Option<Url> {
        let shown = redact::url(text);
        let url = self.check(path, Url::parse(text).map_err(|e| format!("{shown:?} is not a URL: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            self.push(path, format!("{shown:?} must be an http or https URL"));
            return None;
        }
        if url.query().is_some() {
            self.push(
                path,
                format!("{shown:?} has a query string: the request path is appended to this URL, so it would land inside the query"),
            );
            return None;
        }
        if url.fragment().is_some() {
            self.push(path, format!("{shown:?} has a #fragment: the request path is appended to this URL"));
            return None;
        }
        Some(url)
    }

    /// A secret: absent is unset; present must not be empty (an empty `${NAME}` is a mistake that would
    /// otherwise turn authentication off or send an empty key).
    pub(super) fn secret(&mut self, path: &str, value: Option<&String>, sources: &Sources) -> Option<Secret> {
        let value = value?;
        if value.trim().is_empty() {
            self.push(path, empty_secret_message(sources.get(path).map(String::as_str)));
            return None;
        }
        Some(Secret::new(value.clone()))
    }
}

/// The environment variable each interpolated key was read from, by dotted key path.
pub(crate) type Sources = BTreeMap<String, String>;

fn empty_secret_message(variable: Option<&str>) -> String {
    match variable {
        Some(name) => format!(
            "is empty: environment variable {name} is set to an empty string. Set it, or write \"${{{name}:-}}\" \
             to leave the key unset when the variable is empty"
        ),
        None => "is empty; remove the key to leave it unset".to_string(),
    }
}

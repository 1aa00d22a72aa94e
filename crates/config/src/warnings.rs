//! Configurations that are valid but dangerous: logged loudly at start, never refused.

use crate::Config;

impl Config {
    /// One line per risky setting the operator should know about at start (the binary logs each as a warning):
    ///
    /// - an open relay: the proxy listens beyond loopback, some provider has a stored `api_key`, and no
    ///   `gateway.auth_token` is set, so anyone who can reach the port spends those keys;
    /// - an admin API without `admin.token` (allowed on loopback only): every local user and process can read
    ///   the logs and change the rules;
    /// - `pricing.unpriced = "allow"` with spend rules: models with no known price cost nothing against them.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let listen = self.server.listen;
        let stored: Vec<&str> =
            self.providers.values().filter(|p| p.api_key.is_some()).map(|p| p.name.as_str()).collect();
        if !listen.ip().is_loopback() && !stored.is_empty() && self.gateway.auth_token.is_none() {
            warnings.push(format!(
                "open relay: the proxy listens on {listen} (beyond loopback) without gateway.auth_token, and {} \
                 {} a stored api_key: anyone who can reach {listen} spends your provider keys. Set \
                 gateway.auth_token, or listen on 127.0.0.1.",
                stored.join(", "),
                if stored.len() == 1 { "has" } else { "have" },
            ));
        }
        if self.admin.token.is_none() {
            warnings.push(format!(
                "admin.token is not set: every local user and process can use the admin API on {} (read the \
                 request logs, change spend limits). Set admin.token.",
                self.admin.listen
            ));
        }
        if self.pricing.unpriced == crate::UnpricedPolicy::Allow && !self.spend_rules.is_empty() {
            warnings.push(
                "pricing.unpriced = \"allow\": requests to models with no known price cost $0 against every spend \
                 limit, so they are never blocked by one."
                    .to_string(),
            );
        }
        warnings
    }
}

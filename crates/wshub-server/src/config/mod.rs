//! Configuration: the one place that turns defaults, a YAML file, the environment and command-line
//! flags into a validated [`Config`].
//!
//! Everything else in the hub receives a finished `Config` and never reads a file or an environment
//! variable itself, so the whole server can be started from a `Config` built in a test.
//!
//! Sources are layered in this order, later wins (contract §15):
//! built-in defaults ([`Config::default`], identical to [`DEFAULT_YAML`]) → the YAML file →
//! `WSHUB_*` environment variables → flags (`--host`, `--port`, `--set key=value`).
//! Maps merge key by key; lists (`topics`, `streams`, …) replace. After layering, [`validate`]
//! checks the cross-field rules. Every failure is one [`ConfigError`] whose message is a single line
//! that starts with the offending key.
//!
//! Layout: `schema` (the sections and their defaults), `rules` (list entries: topic rules,
//! streams, handlers), `units` (durations and sizes), `load`
//! (layering), `sources` (environment variables and `--set` pairs), `validate` (rules between keys).

mod error;
mod load;
mod rules;
mod schema;
mod sources;
mod units;
mod validate;

pub use error::ConfigError;
pub use load::{Loaded, Overrides, check_file, from_yaml_str, load};
pub use rules::{HandlerRoute, StreamRoute, TopicHistory, TopicRule};
pub use schema::{
    AuthConfig, BrokerConfig, BrokerKind, Bucket, CompressionConfig, Config, DashboardConfig, HistoryConfig, JwtConfig,
    MetricsConfig, RateLimitsConfig, ReconnectionConfig, ServerConfig, SystemConfig, TlsConfig, WebSocketConfig,
};
pub use units::{ParseUnitError, Size, format_duration, parse_duration};
pub use validate::validate;

/// The full default configuration as commented YAML, printed by `wshub config default`.
///
/// Loading it gives exactly [`Config::default()`] (a test checks this), and
/// `examples/wshub.yaml` is a byte-identical copy.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");

//! Which handler answers a request type, and who may call it.
//!
//! Routes are one ordered list: the handlers registered in code (in registration order), then
//! the `handlers:` entries of the config (in file order). The first route whose glob matches the
//! request type decides; no match is `unknown_type`.

use super::error::HandlerSetupError;
use super::http_backend::HttpBackend;
use super::{ErasedHandler, Handler};
use crate::auth::Identity;
use crate::config::Config;
use crate::permissions::compile_glob;
use globset::GlobMatcher;
use std::sync::Arc;
use std::time::Duration;

/// A route's timeout when none is given (CONTRACT §7).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a route is called: its timeout and the roles allowed to call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerOptions {
    timeout: Duration,
    roles: Option<Vec<String>>,
}

impl Default for HandlerOptions {
    /// A 5 s timeout; every connection may call it.
    fn default() -> Self {
        HandlerOptions {
            timeout: DEFAULT_TIMEOUT,
            roles: None,
        }
    }
}

impl HandlerOptions {
    /// No answer within `timeout` gives the client `handler_timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Only connections holding one of `roles` may call it; others get `forbidden`.
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }
}

/// A handler registered in code, before its glob is compiled.
pub(crate) struct RegisteredHandler {
    pub(crate) pattern: String,
    pub(crate) options: HandlerOptions,
    pub(crate) handler: Arc<dyn ErasedHandler>,
}

impl RegisteredHandler {
    pub(crate) fn new(pattern: String, handler: impl Handler, options: HandlerOptions) -> Self {
        RegisteredHandler {
            pattern,
            options,
            handler: Arc::new(handler),
        }
    }
}

/// One route: a glob over request types, its options and its handler.
pub struct Route {
    pattern: String,
    matcher: GlobMatcher,
    options: HandlerOptions,
    pub(crate) handler: Arc<dyn ErasedHandler>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("pattern", &self.pattern)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// The route's glob, as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// How long a call may take.
    pub fn timeout(&self) -> Duration {
        self.options.timeout
    }

    /// Whether `identity` may call it: any role when the route lists none, else one of the listed.
    pub fn allows(&self, identity: &Identity) -> bool {
        match &self.options.roles {
            None => true,
            Some(roles) => roles.iter().any(|role| identity.has_role(role)),
        }
    }
}

/// The node's handler routes, in order.
#[derive(Debug, Default)]
pub struct HandlerRoutes {
    routes: Vec<Route>,
}

impl HandlerRoutes {
    /// Compiles the routes registered in code, then those of `config.handlers`, whose backends
    /// share one pooled HTTP client.
    pub(crate) fn new(registered: Vec<RegisteredHandler>, config: &Config) -> Result<HandlerRoutes, HandlerSetupError> {
        let mut routes = Vec::with_capacity(registered.len() + config.handlers.len());
        for (i, r) in registered.into_iter().enumerate() {
            let matcher = compile(&format!("registered handler #{}", i + 1), &r.pattern)?;
            routes.push(Route {
                pattern: r.pattern,
                matcher,
                options: r.options,
                handler: r.handler,
            });
        }
        if !config.handlers.is_empty() {
            let max_answer = config.websocket.max_message_size.as_usize();
            let client = HttpBackend::shared_client()?;
            for (i, entry) in config.handlers.iter().enumerate() {
                let matcher = compile(&format!("handlers[{i}].match"), &entry.r#match)?;
                let backend = HttpBackend::new(client.clone(), &format!("handlers[{i}].url"), &entry.url, max_answer)?;
                routes.push(Route {
                    pattern: entry.r#match.clone(),
                    matcher,
                    options: HandlerOptions {
                        timeout: entry.timeout,
                        roles: entry.roles.clone(),
                    },
                    handler: Arc::new(backend),
                });
            }
        }
        Ok(HandlerRoutes { routes })
    }

    /// The first route whose glob matches the request type.
    pub fn route_for(&self, kind: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matcher.is_match(kind))
    }

    /// Every route, in the order they are tried.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Whether no route is configured (every other type is `unknown_type`).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

fn compile(key: &str, pattern: &str) -> Result<GlobMatcher, HandlerSetupError> {
    compile_glob(pattern).map_err(|source| HandlerSetupError::Pattern {
        key: key.to_owned(),
        pattern: pattern.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HandlerRoute;
    use crate::handlers::{HandlerReply, HandlerRequest, HandlerResult};

    async fn nothing(_: HandlerRequest) -> HandlerResult {
        Ok(HandlerReply::empty())
    }

    fn http(pattern: &str, url: &str) -> HandlerRoute {
        HandlerRoute {
            r#match: pattern.to_owned(),
            url: url.to_owned(),
            timeout: Duration::from_secs(2),
            roles: Some(vec!["admin".to_owned()]),
        }
    }

    #[test]
    fn registered_routes_come_first_and_the_first_match_wins() {
        let config = Config {
            handlers: vec![
                http("token.*", "http://127.0.0.1:9/rpc"),
                http("*", "http://127.0.0.1:9/other"),
            ],
            ..Config::default()
        };
        let registered = vec![RegisteredHandler::new(
            "token.list".to_owned(),
            nothing,
            HandlerOptions::default(),
        )];
        let routes = HandlerRoutes::new(registered, &config).expect("routes");
        let pattern = |kind: &str| routes.route_for(kind).map(Route::pattern);
        assert_eq!(pattern("token.list"), Some("token.list"));
        assert_eq!(pattern("token.create"), Some("token.*"));
        assert_eq!(pattern("anything/else"), Some("*"));
        assert_eq!(
            routes.route_for("token.create").map(Route::timeout),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn roles_limit_who_may_call() {
        let config = Config {
            handlers: vec![http("admin.*", "http://127.0.0.1:9/rpc")],
            ..Config::default()
        };
        let registered = vec![RegisteredHandler::new(
            "open".to_owned(),
            nothing,
            HandlerOptions::default(),
        )];
        let routes = HandlerRoutes::new(registered, &config).expect("routes");
        let admin = Identity::with_roles(Some("a"), vec!["viewer".to_owned(), "admin".to_owned()]);
        let viewer = Identity::with_roles(Some("v"), vec!["viewer".to_owned()]);
        let restricted = routes.route_for("admin.reset").expect("route");
        assert!(restricted.allows(&admin), "any of the caller's roles counts");
        assert!(!restricted.allows(&viewer));
        assert!(!restricted.allows(&Identity::anonymous()));
        let open = routes.route_for("open").expect("route");
        assert!(open.allows(&Identity::anonymous()), "no roles listed: everyone");
    }

    #[test]
    fn bad_globs_and_https_backends_are_refused_at_setup() {
        let registered = vec![RegisteredHandler::new(
            "a[".to_owned(),
            nothing,
            HandlerOptions::default(),
        )];
        let error = HandlerRoutes::new(registered, &Config::default()).expect_err("bad glob");
        assert!(error.to_string().contains("registered handler #1"), "{error}");

        let config = Config {
            handlers: vec![http("x", "https://backend.internal/rpc")],
            ..Config::default()
        };
        let error = HandlerRoutes::new(Vec::new(), &config).expect_err("https");
        assert!(error.to_string().contains("handlers[0].url"), "{error}");
        assert!(error.to_string().contains("TLS"), "{error}");
    }
}

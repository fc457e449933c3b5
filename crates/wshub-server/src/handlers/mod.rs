//! Request/response handlers: client request types answered by application code (CONTRACT §7).
//!
//! On the message path this is the branch of dispatch taken by a request whose type is not one
//! of the hub's own: the first route whose glob matches the type (`route`) decides who may call
//! it; the call then runs as its own task, at most [`MAX_IN_FLIGHT`] per connection
//! (`in_flight`), and its answer becomes the reply. A route's handler is an HTTP backend from the
//! `handlers:` config (`http_backend`) or Rust code registered on
//! [`ServerBuilder::handler`](crate::ServerBuilder::handler) — any type implementing [`Handler`],
//! async closures included. Both run under the same timeout, role, concurrency and shutdown rules.

mod error;
mod http_backend;
pub(crate) mod in_flight;
mod publish;
mod route;

pub use error::{BackendError, HandlerError, HandlerSetupError};
pub use in_flight::MAX_IN_FLIGHT;
pub use publish::PublishError;
pub use route::{HandlerOptions, HandlerRoutes, Route};

pub(crate) use route::RegisteredHandler;

use crate::auth::Identity;
use crate::node::Node;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use wshub_protocol::ConnectionId;

/// What a handler returns: the reply, or why there is none.
pub type HandlerResult = Result<HandlerReply, HandlerError>;

/// Answers the requests of the types routed to it.
///
/// Implement it for a type, or pass an async closure / `async fn` taking a [`HandlerRequest`]:
///
/// ```
/// use wshub_server::handlers::{HandlerReply, HandlerRequest, HandlerResult};
///
/// async fn echo(request: HandlerRequest) -> HandlerResult {
///     HandlerReply::json(&serde_json::json!({ "you_sent": request.payload_raw() }))
/// }
/// # let _ = wshub_server::Server::builder(wshub_server::config::Config::default()).handler("echo", echo);
/// ```
///
/// A call is bounded by its route's timeout (the future is dropped when it runs out, so a
/// handler must tolerate being cancelled at an `.await`), and a panic is answered with
/// `internal`. Calls of one connection run concurrently, so a handler must not assume they
/// finish in the order they were sent.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn call(&self, request: HandlerRequest) -> impl Future<Output = HandlerResult> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(HandlerRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send,
{
    fn call(&self, request: HandlerRequest) -> impl Future<Output = HandlerResult> + Send {
        self(request)
    }
}

/// A call in progress, owned so it can run as its own task.
pub(crate) type BoxedCall = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>;

/// [`Handler`] behind a pointer: its `call` returns an `impl Future`, which a `dyn` cannot name.
pub(crate) trait ErasedHandler: Send + Sync {
    fn call_boxed(self: Arc<Self>, request: HandlerRequest) -> BoxedCall;
}

impl<H: Handler> ErasedHandler for H {
    fn call_boxed(self: Arc<Self>, request: HandlerRequest) -> BoxedCall {
        Box::pin(async move { self.call(request).await })
    }
}

/// One client request routed to a handler, with who sent it; through it a handler can also
/// [`publish`](HandlerRequest::publish) events.
#[derive(Clone)]
pub struct HandlerRequest {
    kind: String,
    payload: Arc<RawValue>,
    connection_id: ConnectionId,
    user: Option<String>,
    roles: Vec<String>,
    client_id: Option<String>,
    node: Arc<Node>,
}

impl std::fmt::Debug for HandlerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No payload: requests are logged, payloads never are.
        f.debug_struct("HandlerRequest")
            .field("kind", &self.kind)
            .field("connection_id", &self.connection_id)
            .field("user", &self.user)
            .field("roles", &self.roles)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl HandlerRequest {
    /// A request as a session makes it.
    pub(crate) fn new(
        node: Arc<Node>,
        kind: impl Into<String>,
        payload: Arc<RawValue>,
        connection_id: ConnectionId,
        identity: &Identity,
        client_id: Option<String>,
    ) -> HandlerRequest {
        HandlerRequest {
            kind: kind.into(),
            payload,
            connection_id,
            user: identity.user.clone(),
            roles: identity.roles.clone(),
            client_id,
            node,
        }
    }

    /// The request type, e.g. `token.create`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The request's `payload` exactly as the client sent it (`{}` when it sent none).
    pub fn payload_raw(&self) -> &RawValue {
        &self.payload
    }

    /// The payload read into `T`.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }

    /// The connection that sent it.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.connection_id
    }

    /// The token's `sub`; `None` for anonymous connections.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The caller's first role (`anonymous` without a token).
    pub fn role(&self) -> Option<&str> {
        self.roles.first().map(String::as_str)
    }

    /// Every role of the caller.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The `client_id` the connection gave, if any.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }
}

/// A handler's answer: the reply's `payload` (a JSON object) and optionally its `type`
/// (default `<request type>.result`). The hub adds `id` and `timestamp`.
#[derive(Debug, Clone)]
pub struct HandlerReply {
    kind: Option<String>,
    payload: Box<RawValue>,
}

impl HandlerReply {
    /// A reply whose payload is `payload` serialised; it must serialise to a JSON object.
    pub fn json<P: Serialize + ?Sized>(payload: &P) -> HandlerResult {
        let raw = serde_json::value::to_raw_value(payload)
            .map_err(|e| HandlerError::InvalidReply(format!("payload does not serialise: {e}")))?;
        HandlerReply::raw(raw)
    }

    /// A reply with an empty payload (`{}`).
    pub fn empty() -> HandlerReply {
        HandlerReply {
            kind: None,
            payload: empty_object(),
        }
    }

    /// A reply whose payload is already JSON; it must be an object.
    pub fn raw(payload: Box<RawValue>) -> HandlerResult {
        if !is_json_object(payload.get()) {
            return Err(HandlerError::InvalidReply("payload is not a JSON object".to_owned()));
        }
        Ok(HandlerReply { kind: None, payload })
    }

    /// Sets the reply's `type`. It follows the rules of event names (the topic character set,
    /// at most 128 bytes, not a protocol type such as `error`); a type that breaks them is
    /// answered with `handler_failed`.
    pub fn with_type(mut self, kind: impl Into<String>) -> HandlerReply {
        self.kind = Some(kind.into());
        self
    }

    /// The `type` set with [`HandlerReply::with_type`], if any.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    /// The reply's payload.
    pub fn payload(&self) -> &RawValue {
        &self.payload
    }
}

/// `{}` as a raw JSON value.
pub(crate) fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("{} is valid JSON")
}

/// Whether a JSON text is an object (its first non-blank character is `{`).
pub(crate) fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_must_be_objects() {
        assert!(HandlerReply::json(&serde_json::json!({"a": 1})).is_ok());
        assert!(matches!(
            HandlerReply::json(&[1, 2]),
            Err(HandlerError::InvalidReply(_))
        ));
        assert!(matches!(HandlerReply::json("text"), Err(HandlerError::InvalidReply(_))));
        assert_eq!(HandlerReply::empty().payload().get(), "{}");
        assert_eq!(HandlerReply::empty().with_type("x.done").kind(), Some("x.done"));
    }

    #[tokio::test]
    async fn a_request_carries_the_identity() {
        let identity = Identity::with_roles(Some("u1"), vec!["viewer".to_owned(), "bot".to_owned()]);
        let payload: Arc<RawValue> = Arc::from(RawValue::from_string(r#"{"n":2}"#.to_owned()).expect("json"));
        let request = HandlerRequest::new(
            publish::tests::node(),
            "calc.double",
            payload,
            ConnectionId::new("c1"),
            &identity,
            Some("me".to_owned()),
        );
        assert_eq!(request.kind(), "calc.double");
        assert_eq!((request.user(), request.role()), (Some("u1"), Some("viewer")));
        assert_eq!(request.roles().len(), 2);
        assert_eq!(request.client_id(), Some("me"));
        let value: serde_json::Value = request.payload().expect("object");
        assert_eq!(value["n"], 2);
        assert!(!format!("{request:?}").contains("\"n\""), "payloads stay out of logs");
    }
}

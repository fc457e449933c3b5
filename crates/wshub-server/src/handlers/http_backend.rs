//! The HTTP backend of a `handlers:` route (CONTRACT §7): POST the request with the caller's
//! identity, turn a 2xx JSON object `{"type"?, "payload"?}` into the reply.
//!
//! Every backend shares one HTTP/1.1 client, so connections to a backend are pooled and reused
//! across calls and connections. This build has no TLS: `https://` backends are refused when the
//! hub starts. Redirects are not followed and proxy variables (`HTTP_PROXY`, …) are ignored: a
//! backend is the application's own service, reached directly.

use super::error::{BackendError, HandlerError, HandlerSetupError};
use super::{Handler, HandlerReply, HandlerRequest, HandlerResult, empty_object, is_json_object};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Duration;

/// How long an idle pooled connection to a backend is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of a failed answer's body is kept for the log.
const LOGGED_BODY_BYTES: usize = 256;

/// One backend endpoint.
#[derive(Debug, Clone)]
pub(crate) struct HttpBackend {
    client: reqwest::Client,
    url: Url,
    /// The largest answer read: the reply holding it could not be larger than this anyway.
    max_answer: usize,
}

/// The body POSTed to the backend.
#[derive(Serialize)]
struct BackendRequest<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    payload: &'a RawValue,
    connection_id: &'a str,
    user: Option<&'a str>,
    role: Option<&'a str>,
    roles: &'a [String],
    client_id: Option<&'a str>,
}

/// What a backend answers; other fields are ignored.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

impl HttpBackend {
    /// The client every backend shares (its connection pool).
    pub(crate) fn shared_client() -> Result<reqwest::Client, HandlerSetupError> {
        reqwest::Client::builder()
            .user_agent(concat!("wshub/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(HandlerSetupError::Client)
    }

    /// A backend at `url` (`key` names it in errors); `https://` is refused: no TLS in this build.
    pub(crate) fn new(
        client: reqwest::Client,
        key: &str,
        url: &str,
        max_answer: usize,
    ) -> Result<HttpBackend, HandlerSetupError> {
        let problem = |problem: &str| HandlerSetupError::Url {
            key: key.to_owned(),
            url: url.to_owned(),
            problem: problem.to_owned(),
        };
        let parsed = Url::parse(url).map_err(|e| problem(&format!("is not a valid URL: {e}")))?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(problem(
                    "uses https://, but this build has no TLS client; reach the backend over http:// \
                     (loopback or a private network) or through a local TLS proxy",
                ));
            }
            _ => return Err(problem("must be an http:// URL")),
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(problem("has no host"));
        }
        Ok(HttpBackend {
            client,
            url: parsed,
            max_answer,
        })
    }

    async fn post(&self, request: &HandlerRequest) -> HandlerResult {
        let body = BackendRequest {
            kind: request.kind(),
            payload: request.payload_raw(),
            connection_id: request.connection_id().as_str(),
            user: request.user(),
            role: request.role(),
            roles: request.roles(),
            client_id: request.client_id(),
        };
        let body = serde_json::to_vec(&body).expect("strings and raw JSON always serialise");
        let mut response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await
            .map_err(|source| self.unreachable(source))?;
        let status = response.status();
        if !status.is_success() {
            let start = self
                .read_body(&mut response, LOGGED_BODY_BYTES)
                .await
                .unwrap_or_default();
            return Err(BackendError::Status {
                url: self.url.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&start).into_owned(),
            }
            .into());
        }
        if response.content_length().is_some_and(|n| n > self.max_answer as u64) {
            return Err(HandlerError::TooLarge { limit: self.max_answer });
        }
        let answer = self.read_body(&mut response, self.max_answer + 1).await?;
        if answer.len() > self.max_answer {
            return Err(HandlerError::TooLarge { limit: self.max_answer });
        }
        self.reply_from(&answer)
    }

    /// Reads the body up to `limit` bytes (a longer body is cut there).
    async fn read_body(&self, response: &mut reqwest::Response, limit: usize) -> Result<Vec<u8>, HandlerError> {
        let mut body = Vec::new();
        while body.len() < limit {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]),
                Ok(None) => break,
                Err(source) => return Err(self.unreachable(source).into()),
            }
        }
        Ok(body)
    }

    fn unreachable(&self, source: reqwest::Error) -> BackendError {
        BackendError::Unreachable {
            url: self.url.to_string(),
            source,
        }
    }

    fn reply_from(&self, answer: &[u8]) -> HandlerResult {
        let not_an_object = |problem: String| BackendError::NotAnObject {
            url: self.url.to_string(),
            problem,
        };
        let text = std::str::from_utf8(answer).map_err(|_| not_an_object("the body is not UTF-8".to_owned()))?;
        if !is_json_object(text) {
            let start: String = text.chars().take(40).collect();
            return Err(not_an_object(format!("the body starts {start:?}")).into());
        }
        let answer: Answer<'_> = serde_json::from_str(text).map_err(|e| not_an_object(e.to_string()))?;
        let payload = match answer.payload {
            None => empty_object(),
            Some(payload) if is_json_object(payload.get()) => payload.to_owned(),
            Some(_) => return Err(not_an_object("`payload` is not an object".to_owned()).into()),
        };
        Ok(HandlerReply {
            kind: answer.kind,
            payload,
        })
    }
}

impl Handler for HttpBackend {
    async fn call(&self, request: HandlerRequest) -> HandlerResult {
        self.post(&request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> HttpBackend {
        let client = HttpBackend::shared_client().expect("client");
        HttpBackend::new(client, "handlers[0].url", "http://127.0.0.1:9/rpc", 1024).expect("backend")
    }

    #[test]
    fn answers_become_replies() {
        let b = backend();
        let reply = b
            .reply_from(br#"{"type":"token.created","payload":{"id":1},"extra":true}"#)
            .expect("reply");
        assert_eq!(
            (reply.kind(), reply.payload().get()),
            (Some("token.created"), r#"{"id":1}"#)
        );
        let reply = b.reply_from(br#" {} "#).expect("empty answer");
        assert_eq!((reply.kind(), reply.payload().get()), (None, "{}"));
        let reply = b.reply_from(br#"{"type":null,"payload":null}"#).expect("nulls");
        assert_eq!((reply.kind(), reply.payload().get()), (None, "{}"));
    }

    #[test]
    fn unusable_answers_fail() {
        let b = backend();
        for bad in [
            &b"[1,2]"[..],
            b"\"ok\"",
            b"",
            b"{not json",
            b"{\"payload\":[1]}",
            b"{\"type\":3}",
            b"\xff",
        ] {
            let error = b.reply_from(bad).expect_err("unusable");
            assert!(
                matches!(error, HandlerError::Backend(BackendError::NotAnObject { .. })),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn urls_are_checked() {
        let client = HttpBackend::shared_client().expect("client");
        for bad in ["ftp://x/rpc", "not a url", "https://x/rpc"] {
            assert!(HttpBackend::new(client.clone(), "k", bad, 10).is_err(), "{bad}");
        }
        assert!(HttpBackend::new(client, "k", "http://backend:9000/rpc", 10).is_ok());
    }
}

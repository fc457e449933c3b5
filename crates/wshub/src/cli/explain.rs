//! Failures in words a person understands: what the client commands print when the hub cannot be
//! reached, refuses a handshake or closes a connection — never a debug dump of an error value.

use serde_json::Value;
use std::io::ErrorKind;
use tokio_tungstenite::tungstenite;
use wshub_client::{ClientError, Close};

/// Said after "connection refused", the usual reason for it.
const IS_IT_RUNNING: &str = "(is `wshub serve` running?)";

/// Why a WebSocket connection to `shown_url` could not be opened.
pub fn ws_failure(shown_url: &str, error: &ClientError) -> String {
    let reason = match error {
        ClientError::Connect { source, .. } => match source.as_ref() {
            tungstenite::Error::Io(io) => io_reason(io),
            tungstenite::Error::Url(tungstenite::error::UrlError::TlsFeatureNotEnabled) => {
                "wss:// is not supported by this wshub build; use ws:// (a TLS proxy in front of the hub \
                 can still serve browsers)"
                    .to_owned()
            }
            tungstenite::Error::Url(problem) => format!("not a usable WebSocket URL: {problem}"),
            other => other.to_string(),
        },
        ClientError::Refused { status, body, .. } => refusal_reason(*status, body.as_deref()),
        ClientError::Timeout(after) => format!("no answer within {}", seconds(*after)),
        other => other.to_string(),
    };
    format!("cannot connect to {shown_url}: {reason}")
}

/// Why an HTTP request to `shown_url` failed before any answer came.
pub fn http_failure(shown_url: &str, error: &reqwest::Error) -> String {
    let reason = if error.is_timeout() {
        "no answer in time".to_owned()
    } else if let Some(io) = io_source(error) {
        io_reason(io)
    } else if error.is_builder() {
        format!("not a usable URL: {error}")
    } else {
        // reqwest's own text repeats the URL; its innermost cause is the informative part.
        innermost(error)
    };
    format!("cannot connect to {shown_url}: {reason}")
}

/// `code: message (HTTP status)` from the hub's `{"error":{"code","message"}}` body, with a hint
/// for the user after the status when given.
pub fn api_error(status: u16, body: &Value, hint: Option<&str>) -> String {
    let status = match hint {
        Some(hint) => format!("HTTP {status}; {hint}"),
        None => format!("HTTP {status}"),
    };
    match (body["error"]["code"].as_str(), body["error"]["message"].as_str()) {
        (Some(code), Some(message)) => format!("{code}: {message} ({status})"),
        (Some(code), None) => format!("{code} ({status})"),
        _ => status,
    }
}

/// `code: message` of an `error` message on `/ws`.
pub fn error_message(message: &Value) -> String {
    let payload = &message["payload"];
    let code = payload["code"].as_str().unwrap_or("error");
    match payload["message"].as_str() {
        Some(text) if !text.is_empty() => format!("{code}: {text}"),
        _ => code.to_owned(),
    }
}

/// A close as people read it: `1001 server shutting down`, `no close frame (1006)`.
pub fn close(close: &Close) -> String {
    match (close.code, close.reason.is_empty()) {
        (None, _) => "the connection dropped without a close frame (1006)".to_owned(),
        (Some(code), true) => format!("close code {code}"),
        (Some(code), false) => format!("close code {code}, {}", close.reason),
    }
}

fn refusal_reason(status: u16, body: Option<&str>) -> String {
    let hub_says = body
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|json| json["error"]["message"].as_str().map(str::to_owned));
    let hint = match status {
        404 => " (is the path right? the hub's default is /ws)",
        _ => "",
    };
    match hub_says {
        Some(message) => format!("the hub refused the WebSocket upgrade with HTTP {status}: {message}{hint}"),
        None => format!("the hub refused the WebSocket upgrade with HTTP {status}{hint}"),
    }
}

fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        ErrorKind::ConnectionRefused => format!("connection refused {IS_IT_RUNNING}"),
        ErrorKind::TimedOut => "the connection timed out".to_owned(),
        ErrorKind::ConnectionReset => "the connection was reset".to_owned(),
        ErrorKind::AddrNotAvailable => "address not available".to_owned(),
        _ => {
            let text = error.to_string();
            // Name resolution failures come as "failed to lookup address information: …".
            if text.contains("lookup address") {
                format!("cannot resolve the host name ({text})")
            } else {
                text
            }
        }
    }
}

fn io_source<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cause = error.source();
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = current.source();
    }
    None
}

fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

fn seconds(duration: std::time::Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refused_connections_suggest_starting_the_hub() {
        let error = ClientError::Connect {
            url: "ws://127.0.0.1:9/ws".into(),
            source: Box::new(tungstenite::Error::Io(std::io::Error::from(
                ErrorKind::ConnectionRefused,
            ))),
        };
        assert_eq!(
            ws_failure("ws://127.0.0.1:9/ws", &error),
            "cannot connect to ws://127.0.0.1:9/ws: connection refused (is `wshub serve` running?)"
        );
    }

    #[test]
    fn handshake_refusals_quote_the_hub() {
        let error = ClientError::Refused {
            url: "ws://h/ws".into(),
            status: 503,
            body: Some(r#"{"error":{"code":"unavailable","message":"max_connections reached"}}"#.into()),
        };
        assert_eq!(
            ws_failure("ws://h/ws", &error),
            "cannot connect to ws://h/ws: the hub refused the WebSocket upgrade with HTTP 503: max_connections reached"
        );
        let not_found = ClientError::Refused {
            url: "ws://h/x".into(),
            status: 404,
            body: None,
        };
        assert!(ws_failure("ws://h/x", &not_found).contains("default is /ws"));
    }

    #[test]
    fn hub_errors_read_as_code_and_message() {
        let message =
            json!({"type":"error","payload":{"code":"forbidden","message":"not allowed to subscribe to: logs"}});
        assert_eq!(error_message(&message), "forbidden: not allowed to subscribe to: logs");
        assert_eq!(
            api_error(
                401,
                &json!({"error":{"code":"unauthorized","message":"bad API key"}}),
                None
            ),
            "unauthorized: bad API key (HTTP 401)"
        );
        assert_eq!(
            api_error(401, &json!({"error":{"code":"unauthorized"}}), Some("pass --api-key")),
            "unauthorized (HTTP 401; pass --api-key)"
        );
        assert_eq!(api_error(502, &Value::Null, None), "HTTP 502");
    }

    #[test]
    fn closes_name_their_code_and_reason() {
        let shutdown = Close {
            code: Some(1001),
            reason: "server shutting down".into(),
        };
        assert_eq!(close(&shutdown), "close code 1001, server shutting down");
        assert!(close(&Close::default()).contains("1006"));
    }
}

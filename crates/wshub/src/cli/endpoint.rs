//! Where the hub is: the URLs the client commands use, built from what a person types
//! (`ws://…/ws`, `http://host:8000`, `host:8000`), and the form of them that is safe to print.

use anyhow::{Result, bail};
use url::Url;

/// Query parameters that carry secrets: printed as `redacted`, never in clear.
const SECRET_PARAMS: [&str; 2] = ["token", "reconnection_token"];

/// The hub's WebSocket endpoint.
#[derive(Debug, Clone)]
pub struct WsEndpoint {
    url: Url,
}

impl WsEndpoint {
    /// Accepts `ws://` and `wss://` URLs, `http(s)://` ones (turned into their WebSocket form) and a
    /// bare `host:port`. A URL without a path gets the hub's default path `/ws`.
    pub fn parse(input: &str) -> Result<WsEndpoint> {
        WsEndpoint::parse_with_default_path(input, "/ws")
    }

    /// [`parse`](Self::parse) for other servers: a URL without a path gets `default_path`.
    pub fn parse_with_default_path(input: &str, default_path: &str) -> Result<WsEndpoint> {
        let mut url = parse_with_default_scheme(input, "ws")?;
        let scheme = match url.scheme() {
            "ws" | "http" => "ws",
            "wss" | "https" => "wss",
            other => bail!("{input:?} is not a WebSocket URL (scheme {other}:, expected ws:// or http://)"),
        };
        set_scheme(&mut url, scheme, input)?;
        if url.path().is_empty() || url.path() == "/" {
            url.set_path(default_path);
        }
        Ok(WsEndpoint { url })
    }

    /// The URL to dial: the endpoint with `client_id` and `reconnection_token` added to its query.
    pub fn dial_url(&self, client_id: Option<&str>, reconnection_token: Option<&str>) -> String {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(id) = client_id {
                query.append_pair("client_id", id);
            }
            if let Some(token) = reconnection_token {
                query.append_pair("reconnection_token", token);
            }
        }
        // `query_pairs_mut` leaves a bare `?` behind when nothing was added.
        if url.query() == Some("") {
            url.set_query(None);
        }
        url.into()
    }

    /// The host, as written in the URL (`[::1]` for IPv6).
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The endpoint as the user may see it in messages.
    pub fn display(&self) -> String {
        redact(&self.url)
    }
}

/// The HTTP base URL (`http://host:port`, plus any path prefix an `http://` URL had) from what
/// the user typed; a WebSocket URL maps to the same host and port.
pub fn http_base(input: &str) -> Result<Url> {
    let mut url = parse_with_default_scheme(input, "http")?;
    let (scheme, keep_path) = match url.scheme() {
        "http" => ("http", true),
        "https" => ("https", true),
        // The WebSocket path (`/ws`) says nothing about where the API lives: the API is at the root.
        "ws" => ("http", false),
        "wss" => ("https", false),
        other => bail!("{input:?} is not an HTTP URL (scheme {other}:, expected http://)"),
    };
    set_scheme(&mut url, scheme, input)?;
    if !keep_path {
        url.set_path("/");
    }
    url.set_query(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `url` with the values of secret query parameters (and any password) replaced by `redacted`.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(key, value)| {
            let value = if SECRET_PARAMS.contains(&key.as_ref()) {
                "redacted".to_owned()
            } else {
                value.into_owned()
            };
            (key.into_owned(), value)
        })
        .collect();
    if !pairs.is_empty() {
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    if shown.password().is_some() {
        let _ = shown.set_password(Some("redacted"));
    }
    shown.into()
}

/// [`redact`] for a URL held as a string; unparsable strings are shown without their query.
pub fn redact_str(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => redact(&parsed),
        Err(_) => url.split('?').next().unwrap_or_default().to_owned(),
    }
}

fn parse_with_default_scheme(input: &str, scheme: &str) -> Result<Url> {
    let input = input.trim();
    let with_scheme = if input.contains("://") {
        input.to_owned()
    } else {
        format!("{scheme}://{input}")
    };
    match Url::parse(&with_scheme) {
        Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        Ok(_) => bail!("{input:?} names no host"),
        Err(error) => bail!("{input:?} is not a URL: {error}"),
    }
}

fn set_scheme(url: &mut Url, scheme: &str, input: &str) -> Result<()> {
    if url.scheme() == scheme {
        return Ok(());
    }
    // `Url` refuses to switch between "special" schemes (http) and others (ws) in place, so
    // rebuild the URL from its text.
    let rest = &url.as_str()[url.scheme().len()..];
    *url = Url::parse(&format!("{scheme}{rest}")).map_err(|e| anyhow::anyhow!("{input:?} is not a URL: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(input: &str) -> String {
        WsEndpoint::parse(input).expect("a valid endpoint").dial_url(None, None)
    }

    #[test]
    fn websocket_urls_accept_what_people_type() {
        assert_eq!(ws("ws://127.0.0.1:8000/ws"), "ws://127.0.0.1:8000/ws");
        assert_eq!(ws("ws://127.0.0.1:8000"), "ws://127.0.0.1:8000/ws");
        assert_eq!(ws("http://127.0.0.1:8000/"), "ws://127.0.0.1:8000/ws");
        assert_eq!(ws("https://hub.example.com/realtime"), "wss://hub.example.com/realtime");
        assert_eq!(ws("localhost:9000"), "ws://localhost:9000/ws");
        assert!(WsEndpoint::parse("ftp://x/y").is_err());
        assert!(WsEndpoint::parse("ws://").is_err());
    }

    #[test]
    fn dial_urls_carry_client_id_and_reconnection_token() {
        let endpoint = WsEndpoint::parse("ws://h:1/ws").expect("valid");
        assert_eq!(
            endpoint.dial_url(Some("my cli"), Some("abc")),
            "ws://h:1/ws?client_id=my+cli&reconnection_token=abc"
        );
        assert_eq!(endpoint.dial_url(None, None), "ws://h:1/ws");
    }

    #[test]
    fn http_bases_map_websocket_urls_to_the_api_root() {
        let base = |s: &str| http_base(s).expect("valid").to_string();
        assert_eq!(base("http://127.0.0.1:8000"), "http://127.0.0.1:8000/");
        assert_eq!(base("ws://127.0.0.1:8000/ws"), "http://127.0.0.1:8000/");
        assert_eq!(base("wss://hub.example.com/ws"), "https://hub.example.com/");
        assert_eq!(base("127.0.0.1:8000"), "http://127.0.0.1:8000/");
        assert_eq!(base("https://example.com/hub"), "https://example.com/hub/");
    }

    #[test]
    fn secrets_never_reach_the_screen() {
        let shown = redact_str("ws://h:1/ws?client_id=a&token=SECRET&reconnection_token=SECRET2");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("client_id=a"), "{shown}");
        assert!(!redact_str("not a url?token=SECRET").contains("SECRET"));
    }
}

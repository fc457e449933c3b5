//! `Sec-WebSocket-Extensions` offers (RFC 6455 §9.1) and the permessage-deflate negotiation
//! (RFC 7692 §5, §7.1).
//!
//! The first acceptable permessage-deflate offer wins. An offer is skipped (and the next one
//! tried) when it is malformed, repeats a parameter, has a parameter we do not know, or
//! requires what the hub cannot do: `server_max_window_bits` below 15 (the compressor,
//! miniz_oxide, always uses a 32 KiB window). The hub always answers with
//! `server_no_context_takeover`, echoes `client_no_context_takeover` and
//! `server_max_window_bits=15` when offered, and never sends `client_max_window_bits` (its
//! inflater takes any window, so the client may use up to 15 bits).

use http::HeaderMap;
use http::header::SEC_WEBSOCKET_EXTENSIONS;

/// The extension's name.
const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// What the server agreed to for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The client resets its compression context for each message, so no inflate window is
    /// kept for the connection between messages.
    pub client_no_context_takeover: bool,
    /// The offer named `server_max_window_bits=15`, which an acceptance must echo.
    pub server_max_window_bits: bool,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value of the 101 answer.
    pub fn response(&self) -> String {
        let mut value = String::from("permessage-deflate; server_no_context_takeover");
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits {
            value.push_str("; server_max_window_bits=15");
        }
        value
    }
}

/// The first acceptable permessage-deflate offer of the request, if any.
pub fn negotiate(headers: &HeaderMap) -> Option<DeflateParams> {
    headers
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(split_outside_quotes_list)
        .filter_map(|offer| parse_offer(offer))
        .filter(|(name, _)| name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        .find_map(|(_, params)| accept(&params))
}

/// One extension parameter: its name and value (unquoted), if it has one.
type Param<'a> = (&'a str, Option<String>);

/// The elements of a comma-separated list; none if a quote is left open.
fn split_outside_quotes_list(value: &str) -> Vec<&str> {
    split_outside_quotes(value, ',').unwrap_or_default()
}

/// Splits on `separator` where it is not inside a quoted-string; `None` if a quote is open.
fn split_outside_quotes(value: &str, separator: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&value[start..]);
    Some(parts)
}

/// `extension-token *( ";" extension-param )`; `None` when anything in it is malformed.
fn parse_offer(offer: &str) -> Option<(&str, Vec<Param<'_>>)> {
    let mut parts = split_outside_quotes(offer, ';')?.into_iter();
    let name = parts.next()?.trim();
    if !is_token(name) {
        return None;
    }
    let params = parts.map(parse_param).collect::<Option<Vec<_>>>()?;
    Some((name, params))
}

/// `token [ "=" ( token | quoted-string ) ]`.
fn parse_param(param: &str) -> Option<Param<'_>> {
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (param.trim(), None),
    };
    if !is_token(name) {
        return None;
    }
    let value = match value {
        None => None,
        Some(v) if is_token(v) => Some(v.to_owned()),
        Some(v) => Some(unquote(v)?),
    };
    Some((name, value))
}

/// The content of a quoted-string (escapes removed); `None` if it is not one.
fn unquote(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// An RFC 7230 token: one or more of `!#$%&'*+-.^_`|~`, digits and letters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A window size parameter's value: 8 to 15, without leading zeros (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) || value.len() > 2 {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// The parameters of an acceptable permessage-deflate offer.
fn accept(params: &[Param<'_>]) -> Option<DeflateParams> {
    let mut seen = [false; 4];
    let mut agreed = DeflateParams {
        client_no_context_takeover: false,
        server_max_window_bits: false,
    };
    for (name, value) in params {
        let name = name.to_ascii_lowercase();
        let index = match name.as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
        match (index, value) {
            // Flags take no value.
            (0 | 1, Some(_)) => return None,
            (0, None) => {}
            (1, None) => agreed.client_no_context_takeover = true,
            // A smaller window for what the server sends is more than miniz_oxide can do.
            (2, Some(v)) if window_bits(v)? == 15 => agreed.server_max_window_bits = true,
            (2, _) => return None,
            // Any client window inflates with ours (15 bits); no value means "you may choose".
            (3, Some(v)) => {
                window_bits(v)?;
            }
            (3, None) => {}
            _ => return None,
        }
    }
    Some(agreed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn offered(values: &[&str]) -> Option<DeflateParams> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        negotiate(&headers)
    }

    const PLAIN: DeflateParams = DeflateParams {
        client_no_context_takeover: false,
        server_max_window_bits: false,
    };

    #[test]
    fn what_browsers_and_libraries_send() {
        assert_eq!(offered(&["permessage-deflate; client_max_window_bits"]), Some(PLAIN));
        assert_eq!(offered(&["permessage-deflate"]), Some(PLAIN));
        assert_eq!(offered(&["Permessage-Deflate; Client_Max_Window_Bits=12"]), Some(PLAIN));
        let python = offered(&["permessage-deflate; client_max_window_bits=12; client_no_context_takeover"]);
        assert_eq!(python.map(|p| p.client_no_context_takeover), Some(true));
        assert_eq!(offered(&[]), None);
        assert_eq!(offered(&["x-webkit-deflate-frame"]), None);
    }

    #[test]
    fn every_parameter_with_and_without_value() {
        let all = offered(&[
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=15; client_max_window_bits=9",
        ])
        .expect("acceptable");
        assert_eq!(
            all,
            DeflateParams {
                client_no_context_takeover: true,
                server_max_window_bits: true,
            }
        );
        assert_eq!(
            all.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15"
        );
        assert_eq!(PLAIN.response(), "permessage-deflate; server_no_context_takeover");
        assert_eq!(
            offered(&["permessage-deflate; client_max_window_bits=\"10\""]),
            Some(PLAIN)
        );
        assert!(offered(&["permessage-deflate; server_max_window_bits=\"15\""]).is_some());
    }

    #[test]
    fn malformed_or_unsupported_offers_are_skipped() {
        for offer in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=08",
            "permessage-deflate; client_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; client_max_window_bits=100",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; mystery",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate; client_max_window_bits=\"1\"0\"",
            "permessage-deflate;",
            "permessage-deflate; ; client_no_context_takeover",
            "permessage-deflate; bad param",
            "permessage deflate",
            "\"permessage-deflate\"",
        ] {
            assert_eq!(offered(&[offer]), None, "{offer}");
        }
    }

    #[test]
    fn the_first_acceptable_offer_wins() {
        let value = "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_no_context_takeover, \
                     permessage-deflate";
        assert_eq!(offered(&[value]).map(|p| p.client_no_context_takeover), Some(true));
        assert_eq!(
            offered(&["foo; bar=\"a,b\"", "permessage-deflate; mystery", "permessage-deflate"]),
            Some(PLAIN)
        );
        assert_eq!(offered(&["permessage-deflate; server_max_window_bits=9"]), None);
    }

    proptest! {
        #[test]
        fn any_header_value_is_handled_without_panicking(value in "[ -~]{0,80}") {
            if let Ok(header) = HeaderValue::from_str(&value) {
                let mut headers = HeaderMap::new();
                headers.insert(SEC_WEBSOCKET_EXTENSIONS, header);
                let _ = negotiate(&headers);
            }
        }

        #[test]
        fn offers_built_from_the_grammar_parse(
            params in proptest::sample::subsequence(
                vec!["server_no_context_takeover", "client_no_context_takeover", "client_max_window_bits=10", "client_max_window_bits"],
                0..=3,
            ),
        ) {
            // Both client_max_window_bits forms at once is a duplicate.
            let duplicate = params.iter().filter(|p| p.starts_with("client_max")).count() > 1;
            let mut offer = String::from("permessage-deflate");
            for p in &params {
                offer.push_str("; ");
                offer.push_str(p);
            }
            let agreed = offered(&[&offer]);
            prop_assert_eq!(agreed.is_some(), !duplicate);
            if let Some(agreed) = agreed {
                prop_assert_eq!(agreed.client_no_context_takeover, params.contains(&"client_no_context_takeover"));
            }
        }
    }
}

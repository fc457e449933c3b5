//! Pure rendering: one message in, one line of text out (with colour codes that the screen strips
//! when it is not a terminal). Kept apart from the writing so it can be tested as text.

use anstyle::{AnsiColor, Style};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Payloads in `--compact` lines are cut to this many characters.
const COMPACT_PAYLOAD_CHARS: usize = 80;

/// The styles of each part of a line.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub time: Style,
    pub topic: Style,
    pub offset: Style,
    pub event: Style,
    pub control: Style,
    pub error: Style,
    pub warning: Style,
    pub detail: Style,
    pub key: Style,
    pub string: Style,
    pub number: Style,
    pub literal: Style,
}

impl Default for Palette {
    fn default() -> Self {
        let fg = |color: AnsiColor| Style::new().fg_color(Some(color.into()));
        Palette {
            time: Style::new().dimmed(),
            topic: fg(AnsiColor::Cyan).bold(),
            offset: Style::new().dimmed(),
            event: fg(AnsiColor::Green).bold(),
            control: fg(AnsiColor::Magenta),
            error: fg(AnsiColor::Red).bold(),
            warning: fg(AnsiColor::Yellow).bold(),
            detail: Style::new().dimmed(),
            key: fg(AnsiColor::Blue),
            string: fg(AnsiColor::Yellow),
            number: fg(AnsiColor::Magenta),
            literal: fg(AnsiColor::Cyan),
        }
    }
}

/// `text` in `style`, reset after.
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// An event in the default format:
/// `14:03:07.421  news #3  headline  {"title": "hi", "n": 1}`.
pub fn human_event(text: &str, event: &Value, palette: &Palette) -> String {
    let mut line = format!(
        "{}  {} {}  {}",
        paint(palette.time, &clock(event["timestamp"].as_i64(), true)),
        paint(palette.topic, event["topic"].as_str().unwrap_or("?")),
        paint(palette.offset, &offset_mark(event)),
        paint(palette.event, event["type"].as_str().unwrap_or("?")),
    );
    if let Some(payload) = raw_payload(text).filter(|p| !is_empty_object(p)) {
        line.push_str("  ");
        line.push_str(&one_line_json(payload, Some(palette)));
    }
    line
}

/// An event as one short line: `14:03:07 news#3 headline {"title":"hi"}`, the payload cut short.
pub fn compact_event(text: &str, event: &Value, palette: &Palette) -> String {
    let mut line = format!(
        "{} {}{} {}",
        paint(palette.time, &clock(event["timestamp"].as_i64(), false)),
        paint(palette.topic, event["topic"].as_str().unwrap_or("?")),
        paint(palette.offset, &offset_mark(event).replace(' ', "")),
        paint(palette.event, event["type"].as_str().unwrap_or("?")),
    );
    if let Some(payload) = raw_payload(text).filter(|p| !is_empty_object(p)) {
        line.push(' ');
        line.push_str(&shorten(&minify(payload), COMPACT_PAYLOAD_CHARS));
    }
    line
}

/// A control message (reply or notice), for `--verbose`: `14:03:07.420  ← subscribed  {…}`;
/// errors read `← error  forbidden: not allowed …`.
pub fn human_control(text: &str, message: &Value, palette: &Palette, compact: bool) -> String {
    let kind = message["type"].as_str().unwrap_or("?");
    let style = if kind == "error" {
        palette.error
    } else {
        palette.control
    };
    let mut line = format!(
        "{}{}{}",
        paint(palette.time, &clock(message["timestamp"].as_i64(), !compact)),
        if compact { " " } else { "  " },
        paint(style, &format!("← {kind}")),
    );
    let separator = if compact { " " } else { "  " };
    if kind == "error" {
        line.push_str(separator);
        line.push_str(&crate::cli::explain::error_message(message));
    } else if let Some(payload) = raw_payload(text).filter(|p| !is_empty_object(p)) {
        line.push_str(separator);
        if compact {
            line.push_str(&shorten(&minify(payload), COMPACT_PAYLOAD_CHARS));
        } else {
            line.push_str(&one_line_json(payload, Some(palette)));
        }
    }
    line
}

/// `text` with the secret of a `reconnection_token` reply replaced by `redacted`: whoever holds
/// it can take over the connection's identity, so it goes to neither the screen nor a log file.
pub fn without_secrets<'a>(text: &'a str, message: &Value) -> std::borrow::Cow<'a, str> {
    match message["payload"]["token"].as_str() {
        Some(token) if message["type"] == "reconnection_token" && !token.is_empty() => {
            // The token's JSON spelling, quotes included, so only that string is replaced.
            let quoted = Value::from(token).to_string();
            std::borrow::Cow::Owned(text.replace(&quoted, "\"redacted\""))
        }
        _ => std::borrow::Cow::Borrowed(text),
    }
}

/// A message as a single JSON line. The hub's frames are single lines already; a payload published
/// with line breaks in it keeps them, and since raw line breaks in JSON text can only be
/// whitespace between tokens, dropping them keeps the object — and its key order — intact.
pub fn json_line(text: &str) -> String {
    if text.contains(['\n', '\r']) {
        text.replace(['\n', '\r'], "")
    } else {
        text.to_owned()
    }
}

/// Pretty JSON over several lines, for a single reply (`wshub send`), key order kept.
pub fn pretty_json(text: &str, palette: &Palette) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let indent = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let tokens = tokens(text);
    for (i, token) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1);
        match token {
            Token::Open(c) => {
                out.push(*c);
                // `{}` and `[]` stay on one line.
                if !matches!(next, Some(Token::Close(_))) {
                    depth += 1;
                    indent(&mut out, depth);
                }
            }
            Token::Close(c) => {
                if !matches!(tokens.get(i.wrapping_sub(1)), Some(Token::Open(_))) {
                    depth = depth.saturating_sub(1);
                    indent(&mut out, depth);
                }
                out.push(*c);
            }
            Token::Colon => out.push_str(": "),
            Token::Comma => {
                out.push(',');
                indent(&mut out, depth);
            }
            other => out.push_str(&other.painted(Some(palette))),
        }
    }
    out
}

/// JSON text re-spaced as one readable line, `{"a": 1, "b": [true, null]}`, coloured when a palette
/// is given. Key order and number spelling stay as sent.
pub fn one_line_json(text: &str, palette: Option<&Palette>) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for token in tokens(text) {
        match token {
            Token::Open(c) | Token::Close(c) => out.push(c),
            Token::Colon => out.push_str(": "),
            Token::Comma => out.push_str(", "),
            other => out.push_str(&other.painted(palette)),
        }
    }
    out
}

/// JSON text without insignificant whitespace.
pub fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for token in tokens(text) {
        match token {
            Token::Open(c) | Token::Close(c) => out.push(c),
            Token::Colon => out.push(':'),
            Token::Comma => out.push(','),
            other => out.push_str(&other.painted(None)),
        }
    }
    out
}

/// `text` cut to `max` characters, ending in `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The local wall-clock time of a hub timestamp (milliseconds since the epoch), `14:03:07.421`;
/// now, when the message has none.
pub fn clock(millis: Option<i64>, with_millis: bool) -> String {
    let at = millis
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or_else(jiff::Timestamp::now);
    let local = at.to_zoned(jiff::tz::TimeZone::system());
    local
        .strftime(if with_millis { "%H:%M:%S%.3f" } else { "%H:%M:%S" })
        .to_string()
}

/// The raw text of a message's `payload`, as sent.
pub fn raw_payload(text: &str) -> Option<&str> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        payload: Option<&'a RawValue>,
    }
    serde_json::from_str::<Envelope<'_>>(text)
        .ok()?
        .payload
        .map(RawValue::get)
}

fn offset_mark(event: &Value) -> String {
    match event["offset"].as_u64() {
        Some(offset) => format!("#{offset}"),
        None => String::new(),
    }
}

fn is_empty_object(text: &str) -> bool {
    matches!(tokens(text).as_slice(), [Token::Open('{'), Token::Close('}')])
}

/// A lexical token of JSON text; strings and scalars borrow their exact spelling.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Open(char),
    Close(char),
    Colon,
    Comma,
    Key(&'a str),
    Str(&'a str),
    Number(&'a str),
    Literal(&'a str),
}

impl Token<'_> {
    fn painted(&self, palette: Option<&Palette>) -> String {
        let (style, text) = match self {
            Token::Key(s) => (palette.map(|p| p.key), *s),
            Token::Str(s) => (palette.map(|p| p.string), *s),
            Token::Number(s) => (palette.map(|p| p.number), *s),
            Token::Literal(s) => (palette.map(|p| p.literal), *s),
            Token::Open(_) | Token::Close(_) | Token::Colon | Token::Comma => return String::new(),
        };
        match style {
            Some(style) => paint(style, text),
            None => text.to_owned(),
        }
    }
}

/// Splits JSON text into tokens. The text is known to be valid JSON (the frame parsed), so the
/// lexer only needs to find token boundaries; every boundary is an ASCII byte, which never occurs
/// inside a multi-byte UTF-8 character, so slicing at them is safe.
fn tokens(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => {
                out.push(Token::Open(char::from(bytes[i])));
                i += 1;
            }
            b'}' | b']' => {
                out.push(Token::Close(char::from(bytes[i])));
                i += 1;
            }
            b':' => {
                out.push(Token::Colon);
                i += 1;
            }
            b',' => {
                out.push(Token::Comma);
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'"' => {
                let mut end = i + 1;
                while end < bytes.len() && bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                let end = end.min(bytes.len() - 1);
                let string = &text[i..=end];
                let is_key = bytes[end + 1..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|b| *b == b':');
                out.push(if is_key { Token::Key(string) } else { Token::Str(string) });
                i = end + 1;
            }
            first => {
                let mut end = i;
                while end < bytes.len() && !b"{}[]:,\" \t\n\r".contains(&bytes[end]) {
                    end += 1;
                }
                let scalar = &text[i..end];
                out.push(if first == b'-' || first.is_ascii_digit() {
                    Token::Number(scalar)
                } else {
                    Token::Literal(scalar)
                });
                i = end;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(text: &str) -> String {
        anstream::adapter::strip_str(text).to_string()
    }

    #[test]
    fn json_is_respaced_on_one_line_keeping_order_and_spelling() {
        let text = r#"{ "z":1.50,"a" : [true,null,"x, y: z"],
            "nested":{"q\"uote":"é"} , "e":{}}"#;
        assert_eq!(
            one_line_json(text, None),
            r#"{"z": 1.50, "a": [true, null, "x, y: z"], "nested": {"q\"uote": "é"}, "e": {}}"#
        );
        assert_eq!(
            minify(text),
            r#"{"z":1.50,"a":[true,null,"x, y: z"],"nested":{"q\"uote":"é"},"e":{}}"#
        );
        let coloured = one_line_json(text, Some(&Palette::default()));
        assert!(coloured.contains('\u{1b}'), "{coloured:?}");
        assert_eq!(plain(&coloured), one_line_json(text, None));
    }

    #[test]
    fn pretty_json_indents_and_keeps_empty_containers_short() {
        let text = r#"{"type":"pong","payload":{},"list":[1,2]}"#;
        assert_eq!(
            plain(&pretty_json(text, &Palette::default())),
            "{\n  \"type\": \"pong\",\n  \"payload\": {},\n  \"list\": [\n    1,\n    2\n  ]\n}"
        );
    }

    #[test]
    fn events_read_as_time_topic_offset_type_payload() {
        let text = r#"{"type":"headline","topic":"news","payload":{"title":"hi","n":1},"id":"evt_1","offset":3,"epoch":"e","timestamp":1732190000123,"sender_id":"server"}"#;
        let event: Value = serde_json::from_str(text).expect("valid");
        let line = plain(&human_event(text, &event, &Palette::default()));
        let (time, rest) = line.split_once("  ").expect("two-space separated");
        assert_eq!(time.len(), "00:00:00.123".len(), "{line}");
        assert!(time.ends_with(".123"), "{line}");
        assert_eq!(rest, r#"news #3  headline  {"title": "hi", "n": 1}"#);

        let compact = plain(&compact_event(text, &event, &Palette::default()));
        assert!(
            compact.ends_with(r#" news#3 headline {"title":"hi","n":1}"#),
            "{compact}"
        );
        assert_eq!(compact.split(' ').next().map(str::len), Some(8), "{compact}");
    }

    #[test]
    fn long_payloads_are_cut_in_compact_lines() {
        let big = json!({"blob": "x".repeat(500)});
        let text = json!({"type":"t","topic":"a","payload":big,"offset":1,"timestamp":0}).to_string();
        let event: Value = serde_json::from_str(&text).expect("valid");
        let line = plain(&compact_event(&text, &event, &Palette::default()));
        assert!(line.ends_with('…'), "{line}");
        assert!(line.chars().count() < 120, "{line}");
    }

    #[test]
    fn control_messages_show_their_type_and_errors_their_code() {
        let text = r#"{"id":"r1","type":"error","payload":{"code":"forbidden","message":"not allowed to subscribe to: logs"},"timestamp":0}"#;
        let message: Value = serde_json::from_str(text).expect("valid");
        let line = plain(&human_control(text, &message, &Palette::default(), false));
        assert!(
            line.ends_with("← error  forbidden: not allowed to subscribe to: logs"),
            "{line}"
        );
    }

    #[test]
    fn reconnection_tokens_are_never_shown() {
        let text = r#"{"id":"r2","type":"reconnection_token","payload":{"token":"s3cr3t.t0ken","expires_in":300},"timestamp":1}"#;
        let message: Value = serde_json::from_str(text).expect("valid");
        let shown = without_secrets(text, &message);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains(r#""token":"redacted""#), "{shown}");
        let event = r#"{"type":"note","topic":"t","payload":{"token":"x"},"offset":1,"sender_id":"s"}"#;
        let value: Value = serde_json::from_str(event).expect("valid");
        assert_eq!(without_secrets(event, &value), event, "events are shown as sent");
    }

    #[test]
    fn json_lines_lose_only_line_breaks() {
        let text = "{\"type\":\"t\",\"payload\":{\n  \"a\": 1\n}}";
        assert_eq!(json_line(text), "{\"type\":\"t\",\"payload\":{  \"a\": 1}}");
        let back: Value = serde_json::from_str(&json_line(text)).expect("still JSON");
        assert_eq!(back["payload"]["a"], 1);
    }

    #[test]
    fn clock_shows_local_time_of_day() {
        let shown = clock(Some(1_732_190_000_123), true);
        assert_eq!(shown.len(), 12, "{shown}");
        assert!(shown.ends_with(".123"), "{shown}");
        assert_eq!(clock(Some(0), false).len(), 8);
    }
}

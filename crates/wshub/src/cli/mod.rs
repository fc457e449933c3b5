//! The client commands — `connect`, `publish`, `send` — which use a running hub as its users do.
//!
//! `endpoint` turns what the user typed into URLs, `dial` opens connections, `explain` words
//! failures, `output` renders what the hub sends; each command lives in its own module.

mod binary;
pub mod connect;
mod dial;
pub(crate) mod endpoint;
pub(crate) mod explain;
mod output;
pub mod publish;
pub mod send;

use serde_json::Value;

/// Exit status when the command ran but did not get what it was asked for: `--count` not
/// reached, a publish that failed, an `error` reply. Errors that stop a command exit with 2.
pub const GOAL_NOT_MET: u8 = 1;

/// A payload the user wrote: a JSON object, kept as text so that its key order and number
/// spelling reach the hub as typed (only insignificant whitespace is removed, which also keeps
/// every event on one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    /// Checks that `text` is a JSON object; the error says what it is instead.
    pub fn parse(text: &str) -> Result<Payload, String> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(_)) => Ok(Payload(output::render::minify(text))),
            Ok(other) => Err(format!("must be a JSON object, got {}", kind_of(&other))),
            Err(error) => Err(format!("is not JSON: {error}")),
        }
    }

    pub fn empty() -> Payload {
        Payload("{}".to_owned())
    }

    /// A JSON object of the string `fields` (escaped) and `"payload"`: this payload as given.
    pub fn message(&self, fields: &[(&str, &str)]) -> String {
        let mut text = String::from("{");
        for (name, value) in fields {
            text.push_str(&Value::from(*name).to_string());
            text.push(':');
            text.push_str(&Value::from(*value).to_string());
            text.push(',');
        }
        text.push_str("\"payload\":");
        text.push_str(&self.0);
        text.push('}');
        text
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_must_be_objects() {
        assert!(Payload::parse(r#"{"a":1}"#).is_ok());
        assert_eq!(
            Payload::parse("[1]"),
            Err("must be a JSON object, got an array".to_owned())
        );
        let not_json = Payload::parse("{oops").expect_err("not JSON");
        assert!(not_json.starts_with("is not JSON: "), "{not_json}");
    }

    #[test]
    fn payloads_keep_their_order_and_spelling() {
        let payload = Payload::parse("{\n  \"z\": 2.50,\n  \"a\": \"x y\"\n}").expect("an object");
        let message = payload.message(&[("type", "publish"), ("topic", "news \"quoted\"")]);
        assert_eq!(
            message,
            r#"{"type":"publish","topic":"news \"quoted\"","payload":{"z":2.50,"a":"x y"}}"#
        );
        let parsed: Value = serde_json::from_str(&message).expect("valid JSON");
        assert_eq!(parsed["payload"]["a"], "x y");
    }
}

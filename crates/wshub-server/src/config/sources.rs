//! Turns `WSHUB_*` environment variables and command-line overrides into key assignments.
//!
//! Each assignment remembers where it came from so a bad value can be blamed on the variable or
//! flag that set it. Values arrive as text; they are typed by the key they set (looked up in the
//! serialised defaults), so `WSHUB_AUTH__JWT__HS256_SECRET=12345` stays a string while
//! `WSHUB_PORT=8000` becomes a number, and list keys accept `a,b` as well as `[a, b]`.

use figment::value::{Dict, Empty, Num, Tag, Value};

use super::error::{ConfigError, did_you_mean};
use super::load::Overrides;

/// The prefix of every configuration variable.
const PREFIX: &str = "WSHUB_";

/// Single-word variables that set one key each (contract §15).
const SHORTCUTS: &[(&str, &[&str])] = &[
    ("HOST", &["server", "host"]),
    ("PORT", &["server", "port"]),
    ("ALLOWED_ORIGINS", &["websocket", "allowed_origins"]),
    ("WRITE_TIMEOUT", &["websocket", "write_timeout"]),
    ("PING_PERIOD", &["websocket", "ping_period"]),
    ("PONG_WAIT", &["websocket", "pong_wait"]),
    // Top-level lists have no section, so `WSHUB_SECTION__KEY` cannot name them.
    ("TOPICS", &["topics"]),
    ("STREAMS", &["streams"]),
    ("HANDLERS", &["handlers"]),
];

/// Shortcuts where container platforms inject `tcp://ip:port` service links (Kubernetes sets
/// `WSHUB_PORT` for a service called `wshub`); such a value is not meant for us.
const SERVICE_LINK_SHORTCUTS: &[&str] = &["HOST", "PORT"];

/// One key set by one environment variable or flag.
#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    /// Where the value came from, e.g. `environment variable WSHUB_PORT`.
    pub(crate) origin: String,
    /// Key path, e.g. `["websocket", "ping_period"]`.
    pub(crate) path: Vec<String>,
    /// The typed value.
    pub(crate) value: Value,
}

impl Assignment {
    /// The assignment as a nested dictionary, ready to merge over other layers.
    pub(crate) fn to_dict(&self) -> Dict {
        let mut value = self.value.clone();
        for key in self.path.iter().skip(1).rev() {
            value = Value::from(Dict::from([(key.clone(), value)]));
        }
        let top = self.path.first().cloned().unwrap_or_default();
        Dict::from([(top, value)])
    }
}

/// Assignments from the environment, shortcuts first so an explicit `WSHUB_SECTION__KEY` for
/// the same key wins. Variables outside the `WSHUB_` prefix, and single-word ones that are not
/// shortcuts (`WSHUB_LOG`, Kubernetes' `WSHUB_SERVICE_HOST`, …), are not configuration.
pub(crate) fn from_env(
    env: &[(String, String)],
    schema: &Dict,
    warnings: &mut Vec<String>,
) -> Result<Vec<Assignment>, ConfigError> {
    let mut shortcuts = Vec::new();
    let mut nested = Vec::new();
    for (name, raw) in env {
        let upper = name.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix(PREFIX) else {
            continue;
        };
        let origin = format!("environment variable {name}");
        if rest.contains("__") {
            let path = env_path(name, rest)?;
            if raw.trim().is_empty() {
                warnings.push(format!("{name} is empty; ignored"));
                continue;
            }
            nested.push(assign(origin, path, raw, schema)?);
            continue;
        }
        let Some((short, path)) = SHORTCUTS.iter().find(|(short, _)| *short == rest) else {
            continue;
        };
        if raw.trim().is_empty() {
            warnings.push(format!("{name} is empty; ignored"));
            continue;
        }
        if SERVICE_LINK_SHORTCUTS.contains(short) && raw.trim().to_ascii_lowercase().starts_with("tcp://") {
            warnings.push(format!(
                "{name}={raw:?} looks like a container service link, not a setting; ignored"
            ));
            continue;
        }
        let path = path.iter().map(|s| (*s).to_owned()).collect();
        shortcuts.push(assign(origin, path, raw, schema)?);
    }
    shortcuts.extend(nested);
    Ok(shortcuts)
}

/// Assignments from `--host`, `--port` and each `--set key=value`, in that order.
pub(crate) fn from_flags(flags: &Overrides, schema: &Dict) -> Result<Vec<Assignment>, ConfigError> {
    let mut out = Vec::new();
    if let Some(host) = &flags.host {
        out.push(Assignment {
            origin: "flag --host".to_owned(),
            path: vec!["server".to_owned(), "host".to_owned()],
            value: Value::from(host.clone()),
        });
    }
    if let Some(port) = flags.port {
        out.push(Assignment {
            origin: "flag --port".to_owned(),
            path: vec!["server".to_owned(), "port".to_owned()],
            value: Value::from(port),
        });
    }
    for (key, raw) in &flags.set {
        let origin = format!("flag --set {key}");
        let path: Vec<String> = key.split('.').map(|s| s.trim().to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                key: key.clone(),
                problem: "not a key path (expected e.g. websocket.ping_period)".to_owned(),
                origin: Some(origin),
            });
        }
        out.push(assign(origin, path, raw, schema)?);
    }
    Ok(out)
}

/// `WEBSOCKET__PING_PERIOD` → `["websocket", "ping_period"]`.
fn env_path(name: &str, rest: &str) -> Result<Vec<String>, ConfigError> {
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    let well_formed = path.iter().all(|seg| {
        !seg.is_empty() && !seg.starts_with('_') && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    if well_formed {
        Ok(path)
    } else {
        Err(ConfigError::Variable {
            name: name.to_owned(),
            problem: "not a key path (expected WSHUB_SECTION__KEY, e.g. WSHUB_WEBSOCKET__PING_PERIOD)".to_owned(),
        })
    }
}

fn assign(origin: String, path: Vec<String>, raw: &str, schema: &Dict) -> Result<Assignment, ConfigError> {
    let Some(default) = lookup(&path, schema) else {
        return Err(ConfigError::UnknownKey {
            key: path.join("."),
            hint: suggest(&path, schema),
            origin: Some(origin),
        });
    };
    Ok(Assignment {
        value: typed(raw, default),
        origin,
        path,
    })
}

/// The default value at `path`, or `None` when the schema has no such key.
fn lookup<'a>(path: &[String], schema: &'a Dict) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut current = schema.get(first)?;
    for key in rest {
        match current {
            Value::Dict(_, dict) => current = dict.get(key)?,
            _ => return None,
        }
    }
    Some(current)
}

/// A known key close to the first unknown segment of `path`, as a full dotted path.
fn suggest(path: &[String], schema: &Dict) -> Option<String> {
    let mut dict = schema;
    for (i, key) in path.iter().enumerate() {
        match dict.get(key) {
            Some(Value::Dict(_, inner)) => dict = inner,
            Some(_) => return None,
            None => {
                let close = did_you_mean(key, dict.keys().map(String::as_str))?;
                let mut fixed = path[..i].to_vec();
                fixed.push(close);
                return Some(fixed.join("."));
            }
        }
    }
    None
}

/// Types `raw` like the default it replaces. Text that does not fit stays a string so that
/// deserialisation reports it against the key ("expected a whole number", …).
fn typed(raw: &str, default: &Value) -> Value {
    let text = raw.trim();
    let string = || Value::from(text.to_owned());
    match default {
        Value::Num(..) => number(text).map_or_else(string, |n| Value::Num(Tag::Default, n)),
        Value::Bool(..) if text.eq_ignore_ascii_case("true") => Value::from(true),
        Value::Bool(..) if text.eq_ignore_ascii_case("false") => Value::from(false),
        Value::Array(..) if text.starts_with('[') => text.parse().unwrap_or_else(|_| string()),
        Value::Array(..) => Value::from(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ),
        Value::Dict(..) if text.starts_with('{') => text.parse().unwrap_or_else(|_| string()),
        // An unset optional key (a secret, a path, a URL) can be cleared again with an empty value.
        Value::Empty(..) if text.is_empty() => Value::Empty(Tag::Default, Empty::None),
        _ => string(),
    }
}

fn number(text: &str) -> Option<Num> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(Num::U64(n));
    }
    if let Ok(n) = text.parse::<i64>() {
        return Some(Num::I64(n));
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::F64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_by_the_key_they_set() {
        let num = Value::from(1u64);
        assert_eq!(typed("8000", &num), Value::from(8000u64));
        assert_eq!(typed("2.5", &num), Value::from(2.5f64));
        assert_eq!(typed("abc", &num), Value::from("abc"));
        assert_eq!(typed("TRUE", &Value::from(false)), Value::from(true));
        assert_eq!(typed("yes", &Value::from(false)), Value::from("yes"));
        let list = Value::from(Vec::<String>::new());
        assert_eq!(typed("a, b,", &list), Value::from(vec!["a", "b"]));
        assert_eq!(typed("[a, b]", &list), Value::from(vec!["a", "b"]));
        assert_eq!(typed("12345", &Value::from("secret")), Value::from("12345"));
        let unset = Value::Empty(Tag::Default, Empty::None);
        assert_eq!(typed("12345", &unset), Value::from("12345"));
        assert_eq!(typed("", &unset), unset);
    }

    #[test]
    fn env_paths_are_lowercased_and_checked() {
        assert_eq!(
            env_path("x", "AUTH__JWT__HS256_SECRET").ok(),
            Some(vec!["auth".to_owned(), "jwt".to_owned(), "hs256_secret".to_owned()])
        );
        assert!(env_path("x", "WEBSOCKET____PATH").is_err());
        assert!(env_path("x", "WEBSOCKET__").is_err());
        assert!(env_path("x", "WEBSOCKET__PATH-X").is_err());
    }
}

//! Layering: built-in defaults → YAML file → environment → flags, merged with `figment`, then
//! deserialised into [`Config`] and validated.
//!
//! Each source is first checked alone over the defaults, so a bad value or unknown key is reported
//! with the file, variable or flag it came from; only then are all layers merged. The process
//! environment is never read here: the binary passes `std::env::vars()`, tests pass a slice.

use std::path::Path;

use figment::Figment;
use figment::error::{Actual, Kind};
use figment::providers::Serialized;
use figment::value::{Dict, Value};
use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use super::error::{ConfigError, did_you_mean};
use super::schema::Config;
use super::sources;
use super::validate::validate;

/// A loaded, validated configuration and the warnings met on the way (ignored variables, risky
/// but legal settings), which the binary logs at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The configuration to run with.
    pub config: Config,
    /// Human-readable warnings, one line each.
    pub warnings: Vec<String>,
}

/// Command-line overrides, the last and strongest layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--host`: sets `server.host`.
    pub host: Option<String>,
    /// `--port`: sets `server.port`.
    pub port: Option<u16>,
    /// Repeatable `--set section.key=value`, already split at the first `=`; values are read
    /// like environment values (`54s`, `8000`, `true`, `a,b` or `[a, b]`).
    pub set: Vec<(String, String)>,
}

/// Loads the configuration: defaults, then `file` (if any), then the `WSHUB_*` variables in
/// `env`, then `flags`; validates the result.
pub fn load(file: Option<&Path>, env: &[(String, String)], flags: &Overrides) -> Result<Loaded, ConfigError> {
    let text = file
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| (path.display().to_string(), text))
                .map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
        })
        .transpose()?;
    load_layers(
        text.as_ref().map(|(name, text)| (name.as_str(), text.as_str())),
        env,
        flags,
    )
}

/// Loads and validates one file with no environment and no flags (`wshub config check FILE`).
pub fn check_file(path: &Path) -> Result<Loaded, ConfigError> {
    load(Some(path), &[], &Overrides::default())
}

/// Loads YAML text over the defaults, with no environment and no flags, and validates it.
/// Handy in tests: `from_yaml_str("websocket: { ping_period: 1s, pong_wait: 2s }")`.
pub fn from_yaml_str(yaml: &str) -> Result<Loaded, ConfigError> {
    load_layers(Some(("<string>", yaml)), &[], &Overrides::default())
}

fn load_layers(file: Option<(&str, &str)>, env: &[(String, String)], flags: &Overrides) -> Result<Loaded, ConfigError> {
    let defaults = defaults_dict();
    let mut warnings = Vec::new();
    let mut layers: Vec<(String, Dict)> = Vec::new();
    if let Some((name, text)) = file {
        layers.push((format!("config file {name}"), parse_yaml(name, text, &defaults)?));
    }
    let assignments = sources::from_env(env, &defaults, &mut warnings)?
        .into_iter()
        .chain(sources::from_flags(flags, &defaults)?);
    layers.extend(assignments.map(|a| {
        let dict = a.to_dict();
        (a.origin, dict)
    }));

    // Alone over the defaults, a layer that fails is the one to blame.
    for (origin, layer) in &layers {
        extract(&defaults, std::iter::once(layer), Some(origin))?;
    }
    let config = extract(&defaults, layers.iter().map(|(_, layer)| layer), None)?;
    warnings.extend(validate(&config)?);
    Ok(Loaded { config, warnings })
}

/// `Config::default()` as a figment dictionary: the base layer, and the schema that types
/// environment values and recognises unknown keys.
fn defaults_dict() -> Dict {
    Value::serialize(Config::default())
        .ok()
        .and_then(Value::into_dict)
        .expect("Config serialises to a map: every field is a plain value, list or struct")
}

/// Merges `layers` over the defaults and deserialises; an error is blamed on `origin`.
fn extract<'a>(
    defaults: &Dict,
    layers: impl Iterator<Item = &'a Dict>,
    origin: Option<&str>,
) -> Result<Config, ConfigError> {
    layers
        .fold(Figment::from(Serialized::defaults(defaults)), |fig, layer| {
            fig.merge(Serialized::defaults(layer))
        })
        .extract()
        .map_err(|e| from_figment(e, origin))
}

/// Parses the file into a dictionary. A section written with no keys (`websocket:`) is YAML
/// null; it is dropped so the section keeps its defaults instead of failing as "not a map".
fn parse_yaml(name: &str, text: &str, defaults: &Dict) -> Result<Dict, ConfigError> {
    let syntax = |line, message: String| ConfigError::Syntax {
        file: name.to_owned(),
        line,
        message,
    };
    let value: Value = serde_saphyr::from_str(text).map_err(|e| {
        let location = e.location().filter(|l| l.line() > 0);
        // The user-facing formatter leaves out the library's API hints ("set
        // DuplicateKeyPolicy…") and the position, which is reported separately below.
        let message = UserMessageFormatter.format_message(e.without_snippet());
        let message = one_line(&message);
        match location {
            Some(l) => syntax(Some(l.line()), format!("{message} (column {})", l.column())),
            None => syntax(None, message),
        }
    })?;
    match value {
        Value::Dict(_, mut dict) => {
            drop_empty_sections(&mut dict, defaults);
            Ok(dict)
        }
        Value::Empty(..) => Ok(Dict::new()),
        _ => Err(syntax(
            None,
            "the top level must be a mapping of sections (server:, websocket:, …)".to_owned(),
        )),
    }
}

fn drop_empty_sections(dict: &mut Dict, defaults: &Dict) {
    dict.retain(|key, value| {
        !(matches!(value, Value::Empty(..)) && matches!(defaults.get(key), Some(Value::Dict(..))))
    });
    for (key, value) in dict.iter_mut() {
        if let (Value::Dict(_, inner), Some(Value::Dict(_, default))) = (value, defaults.get(key)) {
            drop_empty_sections(inner, default);
        }
    }
}

/// Parser messages can span lines (and repeat the position); the error must be one line.
/// Control characters (from the user's file, echoed by the parser) would garble a terminal.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(|l| l.trim().replace(char::is_control, " "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns a figment error into a one-line `ConfigError` naming the key.
fn from_figment(error: figment::Error, origin: Option<&str>) -> ConfigError {
    // figment may chain several errors; the first is enough to fix and re-run.
    let error = error
        .into_iter()
        .next()
        .unwrap_or_else(|| figment::Error::from(Kind::Message("invalid configuration".to_owned())));
    let mut path = error.path.clone();
    let origin = origin.map(str::to_owned);
    let problem = match &error.kind {
        Kind::UnknownField(field, expected) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            let hint = did_you_mean(field, expected.iter().copied()).map(|close| {
                let mut fixed = path.clone();
                fixed.pop();
                fixed.push(close);
                render_path(&fixed)
            });
            return ConfigError::UnknownKey {
                key: render_path(&path),
                hint,
                origin,
            };
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            "missing (this key is required)".to_owned()
        }
        Kind::DuplicateField(field) => {
            path.push((*field).to_owned());
            "given twice".to_owned()
        }
        Kind::Message(message) => message.clone(),
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => format!(
            "invalid value {} (expected {})",
            describe_actual(actual),
            describe_expected(expected)
        ),
        Kind::UnknownVariant(value, expected) => {
            format!("unknown value {value:?} (expected one of: {})", expected.join(", "))
        }
        other => other.to_string(),
    };
    ConfigError::Invalid {
        key: render_path(&path),
        problem: one_line(&problem),
        origin,
    }
}

/// `["topics", "2", "match"]` → `topics[2].match`.
fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    if out.is_empty() { "(top level)".to_owned() } else { out }
}

fn describe_actual(actual: &Actual) -> String {
    match actual {
        Actual::Str(s) => format!("{s:?}"),
        Actual::Char(c) => format!("{:?}", c.to_string()),
        Actual::Bool(b) => b.to_string(),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Unit | Actual::Option => "null".to_owned(),
        Actual::Seq => "a list".to_owned(),
        Actual::Map => "a map".to_owned(),
        other => other.to_string(),
    }
}

fn describe_expected(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".to_owned(),
        "u16" => "a whole number from 0 to 65535".to_owned(),
        "u32" => "a whole number from 0 to 4294967295".to_owned(),
        "u64" | "usize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "a list".to_owned(),
        s if s.starts_with("struct ") => "a map of keys".to_owned(),
        s => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_with_indexes() {
        let path = ["topics", "2", "match"].map(str::to_owned);
        assert_eq!(render_path(&path), "topics[2].match");
        assert_eq!(render_path(&[]), "(top level)");
    }

    #[test]
    fn defaults_serialise_to_a_dictionary_with_every_section() {
        let dict = defaults_dict();
        for section in ["server", "websocket", "topics", "broker", "dashboard"] {
            assert!(dict.contains_key(section), "{section}");
        }
    }

    #[test]
    fn empty_and_comment_only_files_are_the_defaults() {
        for text in ["", "\n", "# nothing here\n", "---\n"] {
            let loaded = from_yaml_str(text).expect(text);
            assert_eq!(loaded.config, Config::default(), "{text:?}");
        }
    }

    #[test]
    fn a_section_with_no_keys_keeps_its_defaults() {
        let loaded = from_yaml_str("websocket:\nserver: ~\n").expect("valid");
        assert_eq!(loaded.config, Config::default());
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let err = from_yaml_str("server:\n  port: 1\n   host: [\n").expect_err("bad yaml");
        let text = err.to_string();
        assert!(text.starts_with("config file <string>: line "), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn a_top_level_list_is_rejected() {
        let err = from_yaml_str("- a\n- b\n").expect_err("not a map");
        assert!(err.to_string().contains("top level must be a mapping"), "{err}");
    }
}

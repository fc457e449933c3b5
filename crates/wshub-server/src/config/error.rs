//! The configuration error: one variant per way a configuration can be wrong, each displayed as a
//! single line that starts with the key (or file, or variable) at fault, because the binary prints
//! it as-is and exits non-zero.

/// Why a configuration could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("config file {path}: cannot read it: {source}")]
    Read {
        /// The file as given.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },

    /// The configuration file is not valid YAML, or not a mapping of sections.
    #[error("config file {file}: {}{message}", line_prefix(*.line))]
    Syntax {
        /// The file as given.
        file: String,
        /// 1-based line of the problem, when the parser knows it.
        line: Option<u64>,
        /// What is wrong, on one line.
        message: String,
    },

    /// A key that the schema does not have (a typo, or a key from another version).
    #[error("{key}: unknown key{}{}", hint_suffix(.hint), origin_suffix(.origin))]
    UnknownKey {
        /// Dotted path of the key, e.g. `websocket.bogus` or `topics[2].bogus`.
        key: String,
        /// The known key it most resembles, if one is close (a likely typo).
        hint: Option<String>,
        /// Where the key came from, e.g. `environment variable WSHUB_WEBSOCKET__BOGUS`.
        origin: Option<String>,
    },

    /// A value that has the wrong type or form, or breaks a rule between keys.
    #[error("{key}: {problem}{}", origin_suffix(.origin))]
    Invalid {
        /// Dotted path of the key, e.g. `websocket.ping_period` or `streams[0].path`.
        key: String,
        /// What is wrong with it.
        problem: String,
        /// Where the value came from, when a single source is to blame.
        origin: Option<String>,
    },

    /// Two keys whose values contradict each other.
    #[error("{key} ({value}) must be {relation} {other} ({other_value})")]
    Conflict {
        /// The key reported (the one usually changed by mistake).
        key: String,
        /// Its value, as written in the config.
        value: String,
        /// How it must relate to the other, e.g. `below` or `at least`.
        relation: &'static str,
        /// The other key.
        other: String,
        /// The other key's value.
        other_value: String,
    },

    /// A `WSHUB_…__…` environment variable whose name cannot be a key path.
    #[error("environment variable {name}: {problem}")]
    Variable {
        /// The variable's name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { key, .. } | Self::Invalid { key, .. } | Self::Conflict { key, .. } => Some(key),
            Self::Read { .. } | Self::Syntax { .. } | Self::Variable { .. } => None,
        }
    }

    /// A rule violation found after layering; no single source is to blame.
    pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            problem: problem.into(),
            origin: None,
        }
    }
}

fn line_prefix(line: Option<u64>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|h| format!(" (did you mean {h}?)"))
        .unwrap_or_default()
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (word.len() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c.to_owned())
}

/// Edit distance where swapping two neighbouring letters counts as one edit, the commonest typo
/// (optimal string alignment over bytes; keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

fn origin_suffix(origin: &Option<String>) -> String {
    origin.as_ref().map(|o| format!(" (from {o})")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion() {
        let keys = ["ping_period", "pong_wait", "path"];
        assert_eq!(did_you_mean("ping_perod", keys).as_deref(), Some("ping_period"));
        assert_eq!(did_you_mean("pong_wiat", keys).as_deref(), Some("pong_wait"));
        assert_eq!(did_you_mean("bogus", keys), None);
        assert_eq!(did_you_mean("prot", ["port", "host"]).as_deref(), Some("port"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("prot", "port"), 1);
    }

    #[test]
    fn messages_are_one_line_and_start_with_the_key() {
        let err = ConfigError::UnknownKey {
            key: "websocket.ping_perod".to_owned(),
            hint: Some("websocket.ping_period".to_owned()),
            origin: Some("config file wshub.yaml".to_owned()),
        };
        assert_eq!(
            err.to_string(),
            "websocket.ping_perod: unknown key (did you mean websocket.ping_period?) (from config file wshub.yaml)"
        );
        assert_eq!(err.key(), Some("websocket.ping_perod"));
    }
}

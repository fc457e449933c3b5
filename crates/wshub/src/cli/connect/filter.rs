//! `--filter` and `--topic`: which events `connect` shows. Both take globs (`user.*`, `room/*`);
//! an event is shown when it matches both lists (an empty list matches everything).

use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};

#[derive(Debug, Default)]
pub struct Filter {
    types: Option<GlobSet>,
    topics: Option<GlobSet>,
}

impl Filter {
    pub fn new(types: &[String], topics: &[String]) -> Result<Filter> {
        Ok(Filter {
            types: glob_set("--filter", types)?,
            topics: glob_set("--topic", topics)?,
        })
    }

    /// Whether an event of `kind` on `topic` is shown.
    pub fn shows(&self, topic: &str, kind: &str) -> bool {
        self.topics.as_ref().is_none_or(|set| set.is_match(topic))
            && self.types.as_ref().is_none_or(|set| set.is_match(kind))
    }
}

fn glob_set(flag: &str, patterns: &[String]) -> Result<Option<GlobSet>> {
    let patterns: Vec<&str> = patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(Glob::new(pattern).with_context(|| format!("{flag} {pattern:?} is not a valid pattern"))?);
    }
    Ok(Some(set.build().with_context(|| format!("{flag}: invalid patterns"))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn no_patterns_show_everything() {
        assert!(Filter::new(&[], &[]).expect("valid").shows("any", "thing"));
    }

    #[test]
    fn types_and_topics_both_narrow() {
        let filter = Filter::new(&strings(&["user.*", "ping"]), &strings(&["room/*", "news"])).expect("valid");
        assert!(filter.shows("room/42", "user.joined"));
        assert!(filter.shows("news", "ping"));
        assert!(!filter.shows("news", "headline"));
        assert!(!filter.shows("metrics", "user.left"));
    }

    #[test]
    fn bad_patterns_name_the_flag() {
        let error = Filter::new(&strings(&["a[b"]), &[]).expect_err("unclosed class");
        assert!(error.to_string().contains("--filter"), "{error}");
    }
}

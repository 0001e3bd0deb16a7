//! [`Knobs`]: the one reader every settings section (selfheal's own and each agent's) parses
//! the environment with.
//!
//! Each knob is read with its default, its bounds and a one-line description. The reader
//! applies the default when a variable is unset or empty, collects every problem instead of
//! stopping at the first, and records each knob it was asked for with its section heading,
//! default and description: that record is what `.env.example` and the README's table are
//! generated from ([`super::render`]), so a knob documented there is a knob the code reads.

use std::fmt::Debug;

/// A settings section: a struct read from the environment by [`Section::read`]. Each agent
/// declares one (`()` for none); selfheal's own sections implement it too.
pub trait Section: Clone + Debug + Send + Sync + Unpin + 'static {
    /// Read the section's knobs, each with its default, bounds and description.
    fn read(k: &mut Knobs<'_>) -> Self;
}

/// A section with every knob at its default.
pub fn defaults<S: Section>() -> S {
    let none = |_: &str| None;
    S::read(&mut Knobs::new(&none))
}

impl Section for () {
    fn read(_: &mut Knobs<'_>) -> Self {}
}

/// One knob as declared: what `.env.example` and the README table show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knob {
    pub key: String,
    /// The default as written in `.env.example` (empty when there is none).
    pub default: String,
    /// One line: what the knob does.
    pub doc: String,
    /// The heading it is listed under.
    pub section: String,
}

/// Reads keys, applies defaults, collects every problem, and records what it was asked for.
pub struct Knobs<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) problems: Vec<String>,
    pub(crate) seen: Vec<Knob>,
    section: String,
}

impl<'a> Knobs<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Knobs {
            lookup,
            problems: Vec::new(),
            seen: Vec::new(),
            section: String::new(),
        }
    }

    /// The heading the following knobs are listed under.
    pub fn section(&mut self, title: impl Into<String>) {
        self.section = title.into();
    }

    /// Record a problem with `key` (its value is echoed unless it may be a secret).
    pub fn problem(&mut self, key: &str, value: &str, what: &str) {
        self.problems.push(format!("{key}={value:?}: {what}"));
    }

    /// Record a problem without echoing the value (URLs may carry passwords).
    pub fn problem_hidden(&mut self, key: &str, what: &str) {
        self.problems.push(format!("{key}: {what}"));
    }

    /// The raw value, trimmed; `None` when unset or empty. Records the knob.
    pub fn raw(&mut self, key: &str, default: &str, doc: &str) -> Option<String> {
        if !self.seen.iter().any(|k| k.key == key) {
            self.seen.push(Knob {
                key: key.to_owned(),
                default: default.to_owned(),
                doc: doc.to_owned(),
                section: self.section.clone(),
            });
        }
        (self.lookup)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Text, `default` when unset.
    pub fn string(&mut self, key: &str, default: &str, doc: &str) -> String {
        self.raw(key, default, doc)
            .unwrap_or_else(|| default.to_owned())
    }

    /// Text with no default.
    pub fn optional(&mut self, key: &str, doc: &str) -> Option<String> {
        self.raw(key, "", doc)
    }

    /// A comma-separated list.
    pub fn list(&mut self, key: &str, default: &str, doc: &str) -> Vec<String> {
        self.string(key, default, doc)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A URL with one of `schemes`; `default` (empty: none) when unset. A bad value is never
    /// echoed: it may carry a password.
    pub fn url(&mut self, key: &str, schemes: &[&str], default: &str, doc: &str) -> Option<String> {
        let Some(v) = self.raw(key, default, doc) else {
            return (!default.is_empty()).then(|| default.to_owned());
        };
        let ok = v
            .split_once("://")
            .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
        if ok {
            Some(v)
        } else {
            let expected = schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ");
            self.problem_hidden(key, &format!("expected a URL starting with {expected}"));
            None
        }
    }

    /// `true`/`false` (also 1/0, yes/no, on/off).
    pub fn bool(&mut self, key: &str, default: bool, doc: &str) -> bool {
        let Some(v) = self.raw(key, if default { "true" } else { "false" }, doc) else {
            return default;
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                self.problem(key, &v, "expected true or false");
                default
            }
        }
    }

    /// A whole number from `min` to `max`.
    pub fn int(&mut self, key: &str, default: u64, min: u64, max: u64, doc: &str) -> u64 {
        let Some(v) = self.raw(key, &default.to_string(), doc) else {
            return default;
        };
        self.parse_int(key, &v, min, max).unwrap_or(default)
    }

    /// A whole number from `min` to `max`, or `None` when unset (no default of its own).
    pub fn int_opt(&mut self, key: &str, min: u64, max: u64, doc: &str) -> Option<u64> {
        let v = self.raw(key, "", doc)?;
        self.parse_int(key, &v, min, max)
    }

    fn parse_int(&mut self, key: &str, v: &str, min: u64, max: u64) -> Option<u64> {
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(_) => {
                self.problem(
                    key,
                    v,
                    &format!("expected a whole number from {min} to {max}"),
                );
                None
            }
            Err(_) => {
                self.problem(key, v, "expected a whole number");
                None
            }
        }
    }

    /// Milliseconds; `0` means off.
    pub fn ms(&mut self, key: &str, default: u64, doc: &str) -> u64 {
        self.int(key, default, 0, 365 * 86_400_000, doc)
    }

    /// A number from `min` to `max`.
    pub fn float(&mut self, key: &str, default: f64, min: f64, max: f64, doc: &str) -> f64 {
        let Some(v) = self.raw(key, &format_float(default), doc) else {
            return default;
        };
        match v.parse::<f64>() {
            Ok(n) if n.is_finite() && (min..=max).contains(&n) => n,
            _ => {
                self.problem(key, &v, &format!("expected a number from {min} to {max}"));
                default
            }
        }
    }

    /// A percentage; `0` means off.
    pub fn percent(&mut self, key: &str, default: f64, doc: &str) -> f64 {
        self.float(key, default, 0.0, 100.0, doc)
    }

    /// A fraction, 0.0–1.0.
    pub fn fraction(&mut self, key: &str, default: f64, doc: &str) -> f64 {
        self.float(key, default, 0.0, 1.0, doc)
    }
}

fn format_float(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

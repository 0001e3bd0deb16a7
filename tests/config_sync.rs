//! `.env.example` and the README's configuration table must list exactly the knobs `Settings`
//! reads, with the same defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

fn env_example() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example"))
        .expect(".env.example is readable");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value line");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn knobs() -> BTreeMap<String, String> {
    selfheal::Settings::knobs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

#[test]
fn env_example_lists_every_knob_with_its_default() {
    let example = env_example();
    let knobs = knobs();
    let missing: Vec<_> = knobs.keys().filter(|k| !example.contains_key(*k)).collect();
    let unknown: Vec<_> = example.keys().filter(|k| !knobs.contains_key(*k)).collect();
    assert!(missing.is_empty(), "missing from .env.example: {missing:?}");
    assert!(
        unknown.is_empty(),
        "in .env.example but not read by Settings: {unknown:?}"
    );
    for (k, default) in &knobs {
        assert_eq!(&example[k], default, "default of {k} differs");
    }
}

#[test]
fn env_example_parses_to_the_defaults() {
    let example = env_example();
    let s = selfheal::Settings::from_lookup(|k| example.get(k).cloned())
        .expect(".env.example is a valid configuration");
    assert_eq!(s.server.port, 8080);
    assert_eq!(s.intervals.monitor_ms, 5000);
}

#[test]
fn readme_configuration_table_names_every_knob() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md is readable");
    let missing: Vec<_> = knobs()
        .into_keys()
        .filter(|k| !readme.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not document: {missing:?}"
    );
}

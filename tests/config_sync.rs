//! `.env.example` and the README's configuration table are generated from the knobs the code
//! declares (selfheal's own and every registered agent's): they must be exactly what the code
//! generates. Run with `SELFHEAL_BLESS=1` to rewrite them after changing a knob.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use selfheal::config::render;

fn path(name: &str) -> String {
    format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn bless() -> bool {
    std::env::var("SELFHEAL_BLESS").is_ok_and(|v| v == "1")
}

#[test]
fn env_example_is_what_the_knobs_generate() {
    let want = render::env_example(&selfheal::Settings::knobs());
    let have = std::fs::read_to_string(path(".env.example")).unwrap_or_default();
    if bless() {
        std::fs::write(path(".env.example"), &want).expect(".env.example is writable");
        return;
    }
    assert!(
        have == want,
        ".env.example differs from the knobs the code declares; run \
         `SELFHEAL_BLESS=1 cargo test --test config_sync` and commit the result"
    );
}

#[test]
fn readme_table_is_what_the_knobs_generate() {
    let table = render::readme_table(&selfheal::Settings::knobs());
    let readme = std::fs::read_to_string(path("README.md")).expect("README.md is readable");
    let want = render::replace_table(&readme, &table)
        .expect("README.md has the knobs:start and knobs:end markers");
    if bless() {
        std::fs::write(path("README.md"), &want).expect("README.md is writable");
        return;
    }
    assert!(
        readme == want,
        "README.md's configuration table differs from the knobs the code declares; run \
         `SELFHEAL_BLESS=1 cargo test --test config_sync` and commit the result"
    );
}

#[test]
fn env_example_parses_to_the_defaults() {
    let text = std::fs::read_to_string(path(".env.example")).expect(".env.example is readable");
    let example: std::collections::BTreeMap<String, String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value line");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let s = selfheal::Settings::from_lookup(|k| example.get(k).cloned())
        .expect(".env.example is a valid configuration");
    assert_eq!(s.server.port, 8080);
    assert_eq!(
        s.agent("Monitor").and_then(|m| m.interval),
        Some(std::time::Duration::from_millis(5000))
    );
}

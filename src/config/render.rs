//! `.env.example` and the README's configuration table, generated from the knobs the code
//! declares ([`super::Settings::knobs_with`]). `tests/config_sync.rs` compares them with the
//! files and rewrites the files when run with `SELFHEAL_BLESS=1`.

use super::Knob;

/// Where the generated table sits in the README.
pub const README_START: &str = "<!-- knobs:start (generated from the code: SELFHEAL_BLESS=1 cargo test --test config_sync) -->";
/// The end of the generated table.
pub const README_END: &str = "<!-- knobs:end -->";

/// The whole of `.env.example`.
pub fn env_example(knobs: &[Knob]) -> String {
    let mut out = String::from(
        "# selfheal configuration: every knob, with its default. Copy to .env (read at start through\n\
         # dotenvy) or set in the environment. An empty value means \"unset\". Where a comment says\n\
         # \"0 = off\", zero switches that rule or timer off.\n\
         # Generated from the code (SELFHEAL_BLESS=1 cargo test --test config_sync): edit the\n\
         # knob's declaration, not this file.\n",
    );
    let mut section = None;
    for k in knobs {
        if section != Some(&k.section) {
            let title = format!("# --- {} ", k.section);
            out.push('\n');
            out.push_str(&title);
            out.push_str(&"-".repeat(93usize.saturating_sub(title.chars().count())));
            out.push('\n');
            section = Some(&k.section);
        }
        out.push_str("# ");
        out.push_str(&k.doc);
        out.push('\n');
        out.push_str(&k.key);
        out.push('=');
        out.push_str(&k.default);
        out.push('\n');
    }
    out
}

/// The README's configuration table (between [`README_START`] and [`README_END`]).
pub fn readme_table(knobs: &[Knob]) -> String {
    let mut out = String::from("| Variable | Default | Meaning |\n|---|---|---|\n");
    for k in knobs {
        let default = if k.default.is_empty() {
            "(unset)".to_owned()
        } else {
            format!("`{}`", k.default)
        };
        out.push_str(&format!(
            "| `{}` | {default} | {} |\n",
            k.key,
            k.doc.replace('|', "\\|")
        ));
    }
    out
}

/// `readme` with its table replaced by `table`; `None` when the markers are missing.
pub fn replace_table(readme: &str, table: &str) -> Option<String> {
    let start = readme.find(README_START)? + README_START.len();
    let end = start + readme[start..].find(README_END)?;
    Some(format!("{}\n{table}{}", &readme[..start], &readme[end..]))
}

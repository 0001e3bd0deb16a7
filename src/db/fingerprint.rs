//! SQL fingerprints: a query's text with its constants taken out, so that every execution of
//! one statement counts as one query whatever its values (as `pg_stat_statements` does).
//!
//! Rules: string literals (also `E'…'` and `$tag$…$tag$`), numbers and `$n` parameters become
//! `?`; a list of two or more of them (`IN (1, 2, 3)`) becomes `...`; a run of equal rows
//! (`VALUES (?, DEFAULT), (?, DEFAULT)`) becomes one row, so a multi-row insert has the
//! fingerprint of the single-row one; comments go; whitespace collapses to one space.
//! Identifiers, keywords and quoted names are kept as written.

use std::hash::Hasher;

/// A normalised statement and its 64-bit id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub id: u64,
    pub text: String,
}

impl Fingerprint {
    /// The fingerprint of `sql`.
    pub fn of(sql: &str) -> Self {
        let text = normalize(sql);
        Fingerprint {
            id: hash(text.as_bytes()),
            text,
        }
    }

    /// The id as 16 hex digits (how routes show it).
    pub fn hex(id: u64) -> String {
        format!("{id:016x}")
    }
}

/// A fast, stable 64-bit hash (FxHash) of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(bytes);
    h.finish()
}

/// `sql` with constants replaced. See the module docs.
pub fn normalize(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let push_space = |out: &mut String| {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                // A string literal; '' is an escaped quote inside it.
                i += 1;
                while i < b.len() {
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                placeholder(&mut out);
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i = (i + 1).min(b.len());
                out.push_str(&sql[start..i]);
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                push_space(&mut out);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i = (i + 2).min(b.len());
                push_space(&mut out);
            }
            b'$' if dollar_tag(&b[i..]).is_some() => {
                // A dollar-quoted string: $tag$ … $tag$ (the tag may be empty).
                let tag_len = dollar_tag(&b[i..]).unwrap_or(2);
                let tag = &b[i..i + tag_len];
                let body = i + tag_len;
                i = b[body..]
                    .windows(tag_len)
                    .position(|w| w == tag)
                    .map_or(b.len(), |p| body + p + tag_len);
                placeholder(&mut out);
            }
            b'E' | b'e' if b.get(i + 1) == Some(&b'\'') && !in_word(&out) => {
                // An escape string: backslash escapes, and '' too.
                i += 2;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
                        b'\'' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
                placeholder(&mut out);
            }
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                placeholder(&mut out);
            }
            c if c.is_ascii_digit() && !in_word(&out) => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_')
                {
                    i += 1;
                }
                placeholder(&mut out);
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                push_space(&mut out);
            }
            b',' => {
                i += 1;
                if out.ends_with(' ') {
                    out.pop();
                }
                out.push(',');
            }
            b')' => {
                i += 1;
                if out.ends_with(' ') {
                    out.pop();
                }
                out.push(')');
                collapse_row_list(&mut out);
            }
            b'(' => {
                i += 1;
                out.push('(');
            }
            _ => {
                // Copy one UTF-8 character.
                let len = utf8_len(c);
                let end = (i + len).min(b.len());
                out.push_str(&sql[i..end]);
                i = end;
            }
        }
    }
    while out.ends_with(' ') || out.ends_with(';') {
        out.pop();
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Whether the output ends inside an identifier (`table1`: the digit belongs to it).
fn in_word(out: &str) -> bool {
    out.as_bytes()
        .last()
        .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
}

/// Emit `?`, or fold it into a list: `?,?` and `...,?` become `...`.
fn placeholder(out: &mut String) {
    let trimmed = out.trim_end_matches(' ');
    for list_head in ["?,", "...,"] {
        if let Some(prefix) = trimmed.strip_suffix(list_head) {
            let keep = prefix.len();
            out.truncate(keep);
            out.push_str("...");
            return;
        }
    }
    out.push('?');
}

/// Length of the `$tag$` that opens a dollar-quoted string at the start of `b`, if any.
fn dollar_tag(b: &[u8]) -> Option<usize> {
    if b.first() != Some(&b'$') {
        return None;
    }
    let end = b[1..]
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))?;
    // `$1` is a parameter, not a tag; a tag does not start with a digit.
    if b.get(1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    (b.get(1 + end) == Some(&b'$')).then_some(end + 2)
}

/// A list of equal parenthesised groups at the end of the output (`VALUES (?, DEFAULT),
/// (?, DEFAULT), …`) becomes one; a single-value group `(?)` counts as equal to `(...)`.
fn collapse_row_list(out: &mut String) {
    loop {
        let Some(last) = last_group(out, out.len()) else {
            return;
        };
        let before = out[..last].trim_end_matches(' ');
        let Some(before) = before.strip_suffix(',') else {
            return;
        };
        let before = before.trim_end_matches(' ');
        let Some(prev) = last_group(out, before.len()) else {
            return;
        };
        let (a, b) = (&out[prev..before.len()], &out[last..]);
        let same = a == b || (is_values(a) && is_values(b));
        if !same {
            return;
        }
        let merged = if a == b {
            a.to_owned()
        } else {
            "(...)".to_owned()
        };
        out.truncate(prev);
        out.push_str(&merged);
    }
}

/// `(?)` or `(...)`: a group of values only.
fn is_values(group: &str) -> bool {
    group == "(?)" || group == "(...)"
}

/// Where the parenthesised group ending at `end` (exclusive; `out[end - 1]` is `)`) starts.
fn last_group(out: &str, end: usize) -> Option<usize> {
    let b = out.as_bytes();
    if end == 0 || b.get(end - 1) != Some(&b')') {
        return None;
    }
    let mut depth = 0usize;
    for i in (0..end).rev() {
        match b[i] {
            b')' => depth += 1,
            b'(' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_and_parameters_become_placeholders() {
        assert_eq!(
            normalize("SELECT * FROM orders WHERE customer_id = 42 AND note = 'it''s'"),
            "SELECT * FROM orders WHERE customer_id = ? AND note = ?"
        );
        assert_eq!(
            normalize(
                "SELECT \"orders\".\"id\" FROM \"orders\" WHERE \"orders\".\"id\" = $1 LIMIT $2"
            ),
            "SELECT \"orders\".\"id\" FROM \"orders\" WHERE \"orders\".\"id\" = ? LIMIT ?"
        );
        // Digits inside identifiers stay.
        assert_eq!(normalize("SELECT col1 FROM t2"), "SELECT col1 FROM t2");
        assert_eq!(normalize("SELECT 1.5e3, 7"), "SELECT ...");
        assert_eq!(normalize("SELECT -7"), "SELECT -?");
    }

    #[test]
    fn lists_of_any_length_share_one_fingerprint() {
        let a = Fingerprint::of("SELECT * FROM t WHERE id IN (1, 2, 3)");
        let b = Fingerprint::of("select * from t where id in (7)");
        let c = Fingerprint::of("SELECT * FROM t WHERE id IN ($1,$2,$3,$4,$5)");
        assert_eq!(a.text, "SELECT * FROM t WHERE id IN (...)");
        assert_eq!(a, c);
        assert_ne!(a.id, b.id, "keywords keep their case");
        assert_eq!(
            normalize("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)"),
            "INSERT INTO t (a, b) VALUES (...)"
        );
    }

    #[test]
    fn multi_row_inserts_of_any_size_share_one_fingerprint() {
        let rows = |n: usize, row: &str| {
            let list: Vec<String> = (1..=n).map(|i| row.replace('N', &i.to_string())).collect();
            format!("INSERT INTO t (a, b) VALUES {}", list.join(", "))
        };
        for n in [2, 3, 4, 5, 17] {
            assert_eq!(
                normalize(&rows(n, "($N)")),
                normalize(&rows(1, "($N)")),
                "{n} single-value rows: the single-row statement's fingerprint"
            );
            assert_eq!(
                normalize(&rows(n, "($N, DEFAULT)")),
                "INSERT INTO t (a, b) VALUES (?, DEFAULT)",
                "{n} rows with DEFAULT"
            );
            assert_eq!(
                normalize(&rows(n, "($N, $N)")),
                normalize(&rows(1, "($N, $N)")),
                "{n} two-value rows"
            );
        }
        // Different shapes stay apart.
        assert_eq!(
            normalize("INSERT INTO t VALUES (1, DEFAULT), (2, 3)"),
            "INSERT INTO t VALUES (?, DEFAULT), (...)"
        );
    }

    #[test]
    fn dollar_quoted_and_escape_strings_are_constants() {
        assert_eq!(
            normalize("SELECT $$secret 42$$, $fn$it's$fn$ FROM t WHERE a = $1"),
            "SELECT ... FROM t WHERE a = ?"
        );
        assert_eq!(
            normalize("SELECT * FROM t WHERE note = E'it\\'s 42' AND b = 7"),
            "SELECT * FROM t WHERE note = ? AND b = ?"
        );
        // An identifier ending in e before a quote is not an escape string.
        assert_eq!(normalize("SELECT name'x'"), "SELECT name?");
    }

    #[test]
    fn any_text_normalises_without_panicking() {
        let alphabet: Vec<char> = "$'\"\\()-/*,eE1 a_\né€𝄞;".chars().collect();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..24);
            let text: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let _ = Fingerprint::of(&text);
        }
    }

    #[test]
    fn whitespace_and_comments_do_not_matter() {
        assert_eq!(
            Fingerprint::of("SELECT  a\n  FROM t -- why\n WHERE b = 1;"),
            Fingerprint::of("SELECT a FROM t /* note */ WHERE b = 2")
        );
    }
}

//! SQL fingerprints: a query's text with its constants taken out, so that every execution of
//! one statement counts as one query whatever its values (as `pg_stat_statements` does).
//!
//! Rules: string literals, numbers and `$n` parameters become `?`; a list of two or more of
//! them (`IN (1, 2, 3)`, `VALUES (?, ?), (?, ?)`) becomes `...`; comments go; whitespace
//! collapses to one space. Identifiers, keywords and quoted names are kept as written.

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

/// `(...),(...)` (or `(?),(?)`) at the end of the output becomes `(...)`.
fn collapse_row_list(out: &mut String) {
    for row in ["(...)", "(?)"] {
        let pair = format!("{row},{row}");
        let pair_spaced = format!("{row}, {row}");
        for p in [&pair, &pair_spaced] {
            if out.ends_with(p.as_str()) {
                let keep = out.len() - p.len();
                out.truncate(keep);
                out.push_str("(...)");
                return;
            }
        }
    }
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
    fn whitespace_and_comments_do_not_matter() {
        assert_eq!(
            Fingerprint::of("SELECT  a\n  FROM t -- why\n WHERE b = 1;"),
            Fingerprint::of("SELECT a FROM t /* note */ WHERE b = 2")
        );
    }
}

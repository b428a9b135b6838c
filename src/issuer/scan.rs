//! Finding keys of a keyset's format in files, by prefix and checksum.

// The core crate is no_std; the issuer is std-only.
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::key::{self, Digest, CHECKSUM_LEN, SECRET_LEN};

/// A key found in a file. Holds the key id, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// File it was found in.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The key's id.
    pub key_id: String,
    /// `active`, `deprecated`, `revoked` or `unknown` (not in this store).
    pub status: String,
    /// The key's principal, when the store knows it.
    pub principal: Option<String>,
}

/// Skips files whose first 8 KiB hold a NUL byte.
fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Key ids (with line numbers) of well-formed `prefix` keys in `text`.
/// Lookalikes with a bad checksum are ignored.
pub fn find_in(text: &[u8], prefix: &str) -> Vec<(usize, crate::key::KeyId)> {
    let needle = format!("{prefix}_");
    let n = needle.len() + SECRET_LEN + CHECKSUM_LEN;
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(pos) = find(&text[at..], needle.as_bytes()).map(|p| p + at) {
        at = pos + 1;
        if pos > 0 && is_word(text[pos - 1]) {
            continue;
        }
        let Some(cand) = text.get(pos..pos + n) else {
            break;
        };
        if text.get(pos + n).is_some_and(|c| is_word(*c)) {
            continue;
        }
        let Ok(s) = std::str::from_utf8(cand) else {
            continue;
        };
        if key::parse(s).is_ok_and(|p| p.prefix() == prefix) {
            let line = 1 + text[..pos].iter().filter(|c| **c == b'\n').count();
            out.push((line, Digest::of(cand).key_id()));
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Files under `paths`, honouring .gitignore (also outside a git repository).
pub fn files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        let mut w = ignore::WalkBuilder::new(p);
        w.require_git(false).hidden(false);
        for e in w.build().flatten() {
            if e.file_type().is_some_and(|t| t.is_file()) {
                out.push(e.into_path());
            }
        }
    }
    out
}

/// Reads a file for scanning; `None` for binary or unreadable files.
pub fn read_text(path: &Path) -> Option<Vec<u8>> {
    let b = std::fs::read(path).ok()?;
    (!is_binary(&b)).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_ignores_lookalikes() {
        let k = crate::key::ApiKey::from_secret_bytes("acme_live", &[3; 24]).unwrap();
        let s = k.expose_secret();
        let mut bad = s.to_string();
        bad.replace_range(20..21, if &s[20..21] == "A" { "B" } else { "A" });
        let text = format!("x = \"{s}\"\nlookalike {bad}\nembedded x{s}\n{s}");
        let found = find_in(text.as_bytes(), "acme_live");
        assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 4]);
        assert!(found.iter().all(|f| f.1 == k.key_id()));
    }
}

//! Finding keys of a keyset's format in files, by prefix and checksum.
//!
//! A leaked key sits where nobody looks: `.env` files (usually git-ignored),
//! logs (huge, sometimes UTF-16, sometimes with NUL bytes), editor swap files.
//! So by default every file is read, ignored or not, binary or not; a file is
//! streamed in overlapping chunks (memory stays bounded whatever its size),
//! searched for the prefix in UTF-8/ASCII, UTF-16LE and UTF-16BE at once, and
//! line numbers are counted as the scan goes (linear in the file's size). A
//! path that cannot be read is reported, never skipped in silence.

use std::io::Read;
use std::path::{Path, PathBuf};

use memchr::memmem;
use serde::Serialize;

use keygate::{Digest, KeyId, CHECKSUM_LEN, SECRET_LEN};

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

/// A path the scan could not read (a directory it could not list, a file it
/// could not open or read to the end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The path.
    pub path: PathBuf,
    /// Why.
    pub error: String,
}

/// What to scan and how.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// Skip what `.gitignore`/`.ignore` files exclude (off by default: an
    /// ignored `.env` is the first place a leaked key sits).
    pub respect_gitignore: bool,
}

/// How a key's characters are stored in the file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    /// One byte per character: ASCII, UTF-8, Latin-1.
    Bytes,
    /// Two bytes per character, low byte first.
    Utf16Le,
    /// Two bytes per character, high byte first.
    Utf16Be,
}

impl Encoding {
    const ALL: [Encoding; 3] = [Self::Bytes, Self::Utf16Le, Self::Utf16Be];

    fn width(self) -> usize {
        if self == Self::Bytes {
            1
        } else {
            2
        }
    }

    fn encode(self, ascii: &[u8]) -> Vec<u8> {
        match self {
            Self::Bytes => ascii.to_vec(),
            Self::Utf16Le => ascii.iter().flat_map(|&c| [c, 0]).collect(),
            Self::Utf16Be => ascii.iter().flat_map(|&c| [0, c]).collect(),
        }
    }

    /// The ASCII character at `at` in this encoding, if it is one.
    fn char_at(self, b: &[u8], at: usize) -> Option<u8> {
        match self {
            Self::Bytes => b.get(at).copied(),
            Self::Utf16Le => match b.get(at..at + 2)? {
                [c, 0] => Some(*c),
                _ => None,
            },
            Self::Utf16Be => match b.get(at..at + 2)? {
                [0, c] => Some(*c),
                _ => None,
            },
        }
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Finds one keyset's keys in byte streams.
pub(crate) struct Matcher {
    prefix: String,
    /// Characters in a key.
    key_chars: usize,
    finders: Vec<(Encoding, memmem::Finder<'static>)>,
}

/// Bytes read per chunk.
const CHUNK: usize = 1 << 20;

impl Matcher {
    pub(crate) fn new(prefix: &str) -> Self {
        let needle = format!("{prefix}_");
        Self {
            prefix: prefix.to_string(),
            key_chars: needle.len() + SECRET_LEN + CHECKSUM_LEN,
            finders: Encoding::ALL
                .iter()
                .map(|&e| {
                    (
                        e,
                        memmem::Finder::new(&e.encode(needle.as_bytes())).into_owned(),
                    )
                })
                .collect(),
        }
    }

    /// The key starting at `at` in `buf` in encoding `e`, if a well-formed
    /// key of this prefix stands there as a whole word.
    fn key_at(&self, buf: &[u8], at: usize, e: Encoding) -> Option<KeyId> {
        let w = e.width();
        if at >= w && e.char_at(buf, at - w).is_some_and(is_word) {
            return None;
        }
        let mut s = [0u8; 64];
        let cand = s.get_mut(..self.key_chars)?;
        for (i, c) in cand.iter_mut().enumerate() {
            *c = e.char_at(buf, at + i * w)?;
        }
        if e.char_at(buf, at + self.key_chars * w).is_some_and(is_word) {
            return None;
        }
        let text = core::str::from_utf8(cand).ok()?;
        keygate::parse_key(text)
            .ok()
            .filter(|p| p.prefix() == self.prefix)
            .map(|_| Digest::of(cand).key_id())
    }

    /// Key ids (with 1-based line numbers) of the well-formed keys in `r`, in
    /// file order, read in overlapping chunks. Lookalikes with a bad checksum
    /// are ignored.
    pub(crate) fn scan(
        &self,
        mut r: impl Read,
        mut found: impl FnMut(usize, KeyId),
    ) -> std::io::Result<()> {
        // A match is taken from the chunk it starts in only when the whole
        // key and the character after it are there; the bytes it may still
        // need stay for the next chunk, with the two before it.
        const BEHIND: usize = 2;
        let ahead = 2 * (self.key_chars + 1);
        let mut buf: Vec<u8> = Vec::new();
        // In `buf`: where unsearched matches may start; where lines were
        // counted up to.
        let (mut from, mut counted) = (0usize, 0usize);
        let mut line = 1usize;
        // Bytes dropped from the front of `buf` so far: UTF-16 text puts
        // every character at an even offset of the file, which rules out the
        // same text read one byte off in the other byte order.
        let mut base = 0usize;
        let mut hits: Vec<(usize, Encoding)> = Vec::new();
        loop {
            // read_to_end grows the buffer as data arrives: a small file
            // costs its size, not a zero-filled chunk.
            let got = (&mut r).take(CHUNK as u64).read_to_end(&mut buf)?;
            let eof = got < CHUNK;
            let limit = if eof {
                buf.len()
            } else {
                buf.len().saturating_sub(ahead)
            };
            hits.clear();
            for (e, f) in &self.finders {
                let hay = &buf[from.min(buf.len())..];
                hits.extend(
                    f.find_iter(hay)
                        .map(|p| p + from)
                        .take_while(|p| *p < limit)
                        .filter(|p| *e == Encoding::Bytes || (base + p).is_multiple_of(2))
                        .map(|p| (p, *e)),
                );
            }
            hits.sort_unstable_by_key(|h| h.0);
            for &(at, e) in &hits {
                if let Some(id) = self.key_at(&buf, at, e) {
                    line += memchr::memchr_iter(b'\n', &buf[counted..at]).count();
                    counted = at;
                    found(line, id);
                }
            }
            if eof {
                return Ok(());
            }
            from = from.max(limit);
            // Keep what the next chunk's matches may need; count the lines of
            // what is dropped.
            let drop = from.saturating_sub(BEHIND);
            if drop > counted {
                line += memchr::memchr_iter(b'\n', &buf[counted..drop]).count();
                counted = drop;
            }
            buf.drain(..drop);
            base += drop;
            from -= drop;
            counted -= drop;
        }
    }
}

/// Key ids (with line numbers) of well-formed `prefix` keys in `text`.
/// Lookalikes with a bad checksum are ignored.
pub fn find_in(text: &[u8], prefix: &str) -> Vec<(usize, KeyId)> {
    let mut out = Vec::new();
    // Reading from a slice cannot fail.
    let _ = Matcher::new(prefix).scan(text, |line, id| out.push((line, id)));
    out
}

/// Walks `paths`: every file, ignored or not unless `opts` says so, goes to
/// `visit` as `Ok`; what cannot be listed as `Err`.
pub(crate) fn walk(
    paths: &[PathBuf],
    opts: &ScanOptions,
    mut visit: impl FnMut(Result<&Path, Unreadable>),
) {
    for p in paths {
        if let Err(e) = std::fs::symlink_metadata(p) {
            visit(Err(Unreadable {
                path: p.clone(),
                error: e.to_string(),
            }));
            continue;
        }
        let mut w = ignore::WalkBuilder::new(p);
        w.standard_filters(false)
            .hidden(false)
            .git_ignore(opts.respect_gitignore)
            .git_exclude(opts.respect_gitignore)
            .git_global(opts.respect_gitignore)
            .ignore(opts.respect_gitignore)
            .parents(opts.respect_gitignore)
            .require_git(false);
        for e in w.build() {
            match e {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => visit(Ok(e.path())),
                Ok(_) => {}
                Err(err) => visit(Err(Unreadable {
                    path: err_path(&err).unwrap_or_else(|| p.clone()),
                    error: err.to_string(),
                })),
            }
        }
    }
}

fn err_path(e: &ignore::Error) -> Option<PathBuf> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            err_path(err)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> keygate::ApiKey {
        keygate::ApiKey::from_secret_bytes("acme_live", &[3; 24]).unwrap()
    }

    #[test]
    fn finds_keys_and_ignores_lookalikes() {
        let k = key();
        let s = k.expose_secret();
        let mut bad = s.to_string();
        bad.replace_range(20..21, if &s[20..21] == "A" { "B" } else { "A" });
        let text = format!("x = \"{s}\"\nlookalike {bad}\nembedded x{s}\n{s}");
        let found = find_in(text.as_bytes(), "acme_live");
        assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 4]);
        assert!(found.iter().all(|f| f.1 == k.key_id()));
    }

    #[test]
    fn finds_keys_in_utf16_and_next_to_nul_bytes() {
        let k = key();
        let text = format!("a\nb = {}\n", k.expose_secret());
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for bytes in [le, be] {
            assert_eq!(find_in(&bytes, "acme_live"), vec![(2, k.key_id())]);
        }
        let mut nul = vec![0u8; 100];
        nul.extend_from_slice(text.as_bytes());
        assert_eq!(find_in(&nul, "acme_live"), vec![(2, k.key_id())]);
    }

    /// A key across every chunk boundary position is found once, on its line.
    #[test]
    fn keys_across_chunk_boundaries_are_found_once() {
        let k = key();
        let s = k.expose_secret().as_bytes();
        for shift in [0, 1, 2, 30, s.len() - 1, s.len(), s.len() + 1] {
            let mut text = vec![b'.'; CHUNK - shift];
            text[10] = b'\n';
            text.push(b' ');
            text.extend_from_slice(s);
            text.extend_from_slice(b"\nzz ");
            text.extend_from_slice(s);
            let found = find_in(&text, "acme_live");
            assert_eq!(
                found,
                vec![(2, k.key_id()), (3, k.key_id())],
                "shift {shift}"
            );
        }
    }

    /// Many keys per file cost linear time: line numbers are counted as the
    /// scan goes, not from the start of the file for every key.
    #[test]
    fn many_keys_line_numbers() {
        let k = key();
        let line = format!("{}\n", k.expose_secret());
        let text = line.repeat(30_000);
        let found = find_in(text.as_bytes(), "acme_live");
        assert_eq!(found.len(), 30_000);
        assert!(found.iter().enumerate().all(|(i, f)| f.0 == i + 1));
    }
}

//! Compact storage for the long strings aggregates keep: URLs and job ids.
//!
//! An aggregate lives in memory for as long as its partition is owned, and most of a video's
//! bytes are VOD's text: eight or so 100-150 character URLs that all start with the same
//! `scheme://host/` (the OSS bucket or the CDN domain) and whose paths are mostly 32-character
//! hex ids (VideoIds, job ids, file names). [`Text`] stores such a string losslessly as:
//!
//! * one byte: the index of its `scheme://host/` prefix in a process-wide, append-only table
//!   (0: no prefix; the table holds at most 255 prefixes, later ones are simply not shared), then
//! * the rest, with every run of 32 lowercase hex digits packed into a `0xFF` marker and 16 bytes
//!   (`0xFF` never occurs in UTF-8, so the marker is unambiguous).
//!
//! The encoding of a string is a function of the string (a prefix, once in the table, always has
//! the same index in this process), so equality is byte equality. Ordering is the ordering of
//! the decoded strings: the table's indices depend on arrival order, and the joins' tie-breaks
//! must not.
use std::cmp::Ordering;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Mutex, OnceLock};

const MARK: u8 = 0xFF;
const HEX: &[u8; 16] = b"0123456789abcdef";
const MAX_PREFIXES: usize = 255;
/// Prefixes shorter than this are not worth a table entry.
const MIN_PREFIX: usize = 12;

static SLOTS: [OnceLock<&'static str>; MAX_PREFIXES + 1] =
    [const { OnceLock::new() }; MAX_PREFIXES + 1];
static COUNT: AtomicUsize = AtomicUsize::new(0);
static INSERT: Mutex<()> = Mutex::new(());

fn prefix_text(i: u8) -> &'static str {
    if i == 0 {
        return "";
    }
    SLOTS[usize::from(i)].get().copied().unwrap_or("")
}

fn find_prefix(p: &str) -> Option<u8> {
    let n = COUNT.load(AtomicOrdering::Acquire);
    (1..=n)
        .find(|&i| SLOTS[i].get().is_some_and(|s| *s == p))
        .map(|i| i as u8)
}

/// The table index of `p`, adding it if there is room (0 when the table is full).
fn intern_prefix(p: &str) -> u8 {
    if let Some(i) = find_prefix(p) {
        return i;
    }
    let _guard = INSERT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = find_prefix(p) {
        return i;
    }
    let n = COUNT.load(AtomicOrdering::Acquire);
    if n >= MAX_PREFIXES {
        return 0;
    }
    // Leaked on purpose: at most 255 short host prefixes per process.
    let leaked: &'static str = Box::leak(p.to_string().into_boxed_str());
    let _ = SLOTS[n + 1].set(leaked);
    COUNT.store(n + 1, AtomicOrdering::Release);
    (n + 1) as u8
}

/// `scheme://host/` of an http(s) URL.
fn url_prefix(s: &str) -> Option<&str> {
    let after = if s.starts_with("https://") {
        8
    } else if s.starts_with("http://") {
        7
    } else {
        return None;
    };
    let slash = s[after..].find('/')? + after;
    Some(&s[..=slash]).filter(|p| p.len() >= MIN_PREFIX)
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn nibble(b: u8) -> u8 {
    if b.is_ascii_digit() {
        b - b'0'
    } else {
        b - b'a' + 10
    }
}

/// A string stored compactly (see the module doc).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(Box<[u8]>);

impl Text {
    /// Encodes `s`.
    pub fn new(s: &str) -> Text {
        let (index, rest) = match url_prefix(s) {
            Some(p) => match intern_prefix(p) {
                0 => (0, s),
                i => (i, &s[p.len()..]),
            },
            None => (0, s),
        };
        let b = rest.as_bytes();
        let mut out = Vec::with_capacity(1 + b.len());
        out.push(index);
        // Runs of hex digits: each full 32 packed, from the run's start; the rest as is.
        let mut i = 0;
        while i < b.len() {
            let start = i;
            let hex = is_hex(b[i]);
            while i < b.len() && is_hex(b[i]) == hex {
                i += 1;
            }
            let mut j = start;
            if hex {
                while i - j >= 32 {
                    out.push(MARK);
                    for pair in b[j..j + 32].chunks_exact(2) {
                        out.push(nibble(pair[0]) << 4 | nibble(pair[1]));
                    }
                    j += 32;
                }
            }
            out.extend_from_slice(&b[j..i]);
        }
        Text(out.into_boxed_slice())
    }

    /// Heap bytes this text occupies.
    pub fn stored_len(&self) -> usize {
        self.0.len()
    }

    /// The stored bytes (to embed a text in a larger packed value).
    pub fn stored(&self) -> &[u8] {
        &self.0
    }

    /// A borrowed view of this text.
    pub fn as_text_ref(&self) -> TextRef<'_> {
        TextRef(&self.0)
    }

    /// Length of the decoded string in bytes.
    pub fn len(&self) -> usize {
        self.as_text_ref().len()
    }

    /// Whether the decoded string is empty.
    pub fn is_empty(&self) -> bool {
        self.as_text_ref().is_empty()
    }

    /// Appends the decoded string's bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.as_text_ref().write_to(out)
    }

    fn decoded(&self) -> String {
        self.as_text_ref().decoded()
    }
}

/// The stored bytes of a [`Text`], borrowed (e.g. from inside a packed value).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TextRef<'a>(&'a [u8]);

impl<'a> TextRef<'a> {
    /// Views bytes written from [`Text::stored`].
    pub fn from_stored(b: &'a [u8]) -> Self {
        TextRef(b)
    }

    /// An owned copy.
    pub fn to_text(self) -> Text {
        Text(self.0.into())
    }

    /// Length of the decoded string in bytes.
    pub fn len(self) -> usize {
        let mut n = prefix_text(self.0[0]).len();
        let b = &self.0[1..];
        let mut i = 0;
        while i < b.len() {
            if b[i] == MARK {
                n += 32;
                i += 17;
            } else {
                n += 1;
                i += 1;
            }
        }
        n
    }

    /// Whether the decoded string is empty.
    pub fn is_empty(self) -> bool {
        self.0.len() == 1 && self.0[0] == 0
    }

    /// Appends the decoded string's bytes to `out`.
    pub fn write_to(self, out: &mut Vec<u8>) {
        out.extend_from_slice(prefix_text(self.0[0]).as_bytes());
        let b = &self.0[1..];
        let mut i = 0;
        while i < b.len() {
            match b[i..].iter().position(|&c| c == MARK) {
                None => {
                    out.extend_from_slice(&b[i..]);
                    break;
                }
                Some(0) => {
                    for &x in &b[i + 1..i + 17] {
                        out.push(HEX[usize::from(x >> 4)]);
                        out.push(HEX[usize::from(x & 15)]);
                    }
                    i += 17;
                }
                Some(n) => {
                    out.extend_from_slice(&b[i..i + n]);
                    i += n;
                }
            }
        }
    }

    /// The decoded string.
    pub fn decoded(self) -> String {
        let mut out = Vec::with_capacity(self.len());
        self.write_to(&mut out);
        // Only ever built from a `&str`; markers expand to ASCII.
        String::from_utf8(out).unwrap_or_default()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::new(s)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.decoded())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.decoded(), f)
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.0 == other.0 {
            Ordering::Equal
        } else {
            self.decoded().cmp(&other.decoded())
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text(Box::new([0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders_like_the_string() {
        let cases = [
            "",
            "x",
            "http://outin-3f2a9b8c7d6e11eeb0a500163e1c7426.oss-cn-shanghai.aliyuncs.com/0123456789abcdef0123456789abcdef/fedcba9876543210fedcba9876543210-HD.m3u8",
            "https://vod.cdn.example.com/a/b.mp4",
            "https://short/x",
            "http://host-without-path.example.com",
            "0123456789abcdef0123456789abcdef",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
            "héllo ✓ 0123456789abcdef0123456789abcdefü",
        ];
        let texts: Vec<Text> = cases.iter().map(|s| Text::new(s)).collect();
        for (s, t) in cases.iter().zip(&texts) {
            assert_eq!(t.to_string(), *s);
            assert_eq!(t.len(), s.len());
            assert_eq!(t.is_empty(), s.is_empty());
            assert_eq!(t, &Text::new(s));
        }
        for (a, ta) in cases.iter().zip(&texts) {
            for (b, tb) in cases.iter().zip(&texts) {
                assert_eq!(ta.cmp(tb), a.cmp(b), "{a} vs {b}");
                assert_eq!(ta == tb, a == b);
            }
        }
        assert!(texts[2].stored_len() < 60, "{}", texts[2].stored_len());
        assert_eq!(texts[6].stored_len(), 18);
        assert_eq!(Text::default().to_string(), "");
    }
}

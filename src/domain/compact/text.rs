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
    // A byte scan: hosts are short, and `str::find` sets up a searcher per call.
    let slash = s.as_bytes()[after..].iter().position(|&c| c == b'/')? + after;
    Some(&s[..=slash]).filter(|p| p.len() >= MIN_PREFIX)
}

/// Whether each byte is a lowercase hex digit: one load per byte in `Text::new`'s scan.
static IS_HEX: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = matches!(c as u8, b'0'..=b'9' | b'a'..=b'f');
        c += 1;
    }
    t
};

/// Whether all eight bytes at `at` are lowercase hex digits (SWAR: per byte, bit 7 of `x + k`
/// says `x >= 0x80 - k`; with bit 7 of the input cleared first, no sum carries into the next byte).
#[inline]
fn all_hex8(b: &[u8], at: usize) -> bool {
    const H: u64 = 0x8080_8080_8080_8080;
    const L: u64 = 0x0101_0101_0101_0101;
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    let w = u64::from_le_bytes(w);
    let x = w & !H;
    let at_least = |c: u8| x + L * u64::from(0x80 - c);
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let af = at_least(b'a') & !at_least(b'f' + 1);
    (digit | af) & !w & H == H
}

/// Packs 32 lowercase hex digits into 16 bytes, eight digits at a time: a digit's value is its
/// low nibble, plus 9 for `a`-`f` (bit 6 set).
fn pack32(hex: &[u8], out: &mut [u8]) {
    for (src, dst) in hex.chunks_exact(8).zip(out.chunks_exact_mut(4)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(src);
        let w = u64::from_le_bytes(w);
        let n = (w & 0x0F0F_0F0F_0F0F_0F0F) + ((w >> 6) & 0x0101_0101_0101_0101) * 9;
        // Per 16-bit lane: first digit in the low byte, second in the high byte.
        let x = ((n & 0x000F_000F_000F_000F) << 4) | (n >> 8 & 0x000F_000F_000F_000F);
        let x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
        let x = (x | (x >> 16)) & 0xFFFF_FFFF;
        dst.copy_from_slice(&(x as u32).to_le_bytes());
    }
}

/// A string stored compactly (see the module doc).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(Box<[u8]>);

impl Text {
    /// Encodes `s`.
    pub fn new(s: &str) -> Text {
        Text::with_encoded(s, |b| Text(Box::from(b)))
    }

    /// Calls `f` with the stored bytes `s` encodes to, without allocating them on the heap (to
    /// embed a text in a larger packed value).
    pub fn with_encoded<R>(s: &str, f: impl FnOnce(&[u8]) -> R) -> R {
        let (index, rest) = match url_prefix(s) {
            Some(p) => match intern_prefix(p) {
                0 => (0, s),
                i => (i, &s[p.len()..]),
            },
            None => (0, s),
        };
        let b = rest.as_bytes();
        // Encoded on the stack and allocated once at its exact size (the encoding is never
        // longer than 1 + the input).
        let mut small = [0u8; 256];
        let mut large = Vec::new();
        let out: &mut [u8] = if b.len() < small.len() {
            &mut small
        } else {
            large.resize(1 + b.len(), 0);
            &mut large
        };
        out[0] = index;
        let mut n = 1;
        // Runs of hex digits: each full 32 packed, from the run's start; the rest as is.
        let (mut i, mut literal) = (0, 0);
        while i < b.len() {
            if !IS_HEX[usize::from(b[i])] {
                i += 1;
                continue;
            }
            let start = i;
            while i + 8 <= b.len() && all_hex8(b, i) {
                i += 8;
            }
            while i < b.len() && IS_HEX[usize::from(b[i])] {
                i += 1;
            }
            if i - start < 32 {
                continue;
            }
            out[n..n + start - literal].copy_from_slice(&b[literal..start]);
            n += start - literal;
            let mut j = start;
            while i - j >= 32 {
                out[n] = MARK;
                pack32(&b[j..j + 32], &mut out[n + 1..n + 17]);
                n += 17;
                j += 32;
            }
            literal = j;
        }
        out[n..n + b.len() - literal].copy_from_slice(&b[literal..]);
        n += b.len() - literal;
        f(&out[..n])
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

/// Four packed bytes as their eight lowercase hex digits (SWAR: each byte spread to a 16-bit
/// lane, nibbles split, then `'0' + n`, plus 39 more for `a`-`f`).
#[inline]
fn hex8(src: &[u8]) -> [u8; 8] {
    const LANE_LO: u64 = 0x000F_000F_000F_000F;
    let mut w = [0u8; 4];
    w.copy_from_slice(src);
    let v = u64::from(u32::from_le_bytes(w));
    let v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF;
    let v = (v | (v << 8)) & 0x00FF_00FF_00FF_00FF;
    let n = ((v >> 4) & LANE_LO) | ((v & LANE_LO) << 8);
    let letters = ((n + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (n + 0x3030_3030_3030_3030 + letters * 39).to_le_bytes()
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
        // Each marker and its 16 packed bytes stand for 32 digits; the bytes between markers
        // for themselves.
        while let Some(p) = b[i..].iter().position(|&c| c == MARK) {
            n += p + 32;
            i += p + 17;
        }
        n + b.len() - i
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
                    let mut digits = [0u8; 32];
                    for (src, d) in b[i + 1..i + 17]
                        .chunks_exact(4)
                        .zip(digits.chunks_exact_mut(8))
                    {
                        d.copy_from_slice(&hex8(src));
                    }
                    out.extend_from_slice(&digits);
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

impl std::fmt::Debug for TextRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.decoded(), f)
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
        // The word-at-a-time encoder packs exactly what the byte-at-a-time one did.
        let reference = |b: &[u8]| {
            let is_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
            let nibble = |c: u8| {
                if c.is_ascii_digit() {
                    c - b'0'
                } else {
                    c - b'a' + 10
                }
            };
            let (mut out, mut i) = (vec![0u8], 0);
            while i < b.len() {
                let start = i;
                let hex = is_hex(b[i]);
                while i < b.len() && is_hex(b[i]) == hex {
                    i += 1;
                }
                let mut j = start;
                while hex && i - j >= 32 {
                    out.push(MARK);
                    for pair in b[j..j + 32].chunks_exact(2) {
                        out.push(nibble(pair[0]) << 4 | nibble(pair[1]));
                    }
                    j += 32;
                }
                out.extend_from_slice(&b[j..i]);
            }
            out
        };
        let alphabet = b"0123456789abcdefABCDEFgz/-.";
        let mut x = 7u64;
        for _ in 0..3000 {
            let mut s = Vec::new();
            for _ in 0..(x % 150) {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1442695040888963407);
                // Mostly lowercase hex, so long runs occur.
                let c = if (x >> 40) % 4 == 0 {
                    alphabet[((x >> 20) % 27) as usize]
                } else {
                    b"0123456789abcdef"[((x >> 33) % 16) as usize]
                };
                s.push(c);
            }
            let s = String::from_utf8(s).unwrap();
            let t = Text::new(&s);
            assert_eq!(t.stored(), &reference(s.as_bytes())[..], "{s}");
            assert_eq!(t.to_string(), s);
            assert_eq!(t.len(), s.len());
        }
        assert_eq!(texts[6].stored_len(), 18);
        assert_eq!(Text::default().to_string(), "");
    }
}

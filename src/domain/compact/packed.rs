//! [`PackedInfo`]: a rendition's fields in one allocation (see the type).
use super::text::{Text, TextRef};
use crate::domain::lattice::{Status, F64};

/// What is known about one rendition. `T` and `S` are the text types: owned (the default), or
/// `&str` for packing straight from a parsed event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RenditionInfo<T = Text, S = Box<str>> {
    /// Terminal status of the latest report.
    pub status: Status,
    /// `FileUrl`.
    pub file_url: Option<T>,
    /// `Bitrate` (kbps, text).
    pub bitrate: Option<S>,
    /// `Width`.
    pub width: Option<i64>,
    /// `Height`.
    pub height: Option<i64>,
    /// `Duration` in seconds.
    pub duration: Option<F64>,
    /// `Size` in bytes.
    pub size: Option<i64>,
    /// `JobId`.
    pub job_id: Option<T>,
    /// `ErrorCode` when it failed.
    pub error_code: Option<S>,
}

/// A text field of a [`RenditionInfo`] to pack: a [`Text`] as stored, or a string to encode.
pub trait PackText {
    /// Writes the stored bytes, length first.
    fn put(&self, out: &mut Vec<u8>);
}

impl PackText for Text {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.stored());
    }
}

impl PackText for &str {
    fn put(&self, out: &mut Vec<u8>) {
        Text::with_encoded(self, |b| put_bytes(out, b));
    }
}

/// A [`RenditionInfo`] packed into one allocation: a presence mask, the status, then the present
/// fields (texts as [`Text`] bytes, integers as zigzag varints, the duration as 8 bytes). A video
/// keeps four or more renditions for as long as it is in memory; packed, one costs a third of
/// the struct with its separate strings. Equality is byte equality (the packing is a function of
/// the value); the order is [`RenditionInfo`]'s, so tie-breaks do not depend on the packing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PackedInfo(Box<[u8]>);

const P_URL: u8 = 1;
const P_BITRATE: u8 = 2;
const P_WIDTH: u8 = 4;
const P_HEIGHT: u8 = 8;
const P_DURATION: u8 = 16;
const P_SIZE: u8 = 32;
const P_JOB: u8 = 64;
const P_ERROR: u8 = 128;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_int(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

struct Rd<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Rd<'a> {
    fn byte(&mut self) -> u8 {
        let b = self.b[self.i];
        self.i += 1;
        b
    }
    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    fn bytes(&mut self) -> &'a [u8] {
        let n = self.varint() as usize;
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        s
    }
    fn str(&mut self) -> &'a str {
        // Written from a `&str` by `pack`.
        std::str::from_utf8(self.bytes()).unwrap_or("")
    }
    fn int(&mut self) -> i64 {
        let v = self.varint();
        ((v >> 1) as i64) ^ -((v & 1) as i64)
    }
}

/// A packed rendition's fields, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct InfoRef<'a> {
    /// Status as text (`success`, `fail` or VOD's own word).
    pub status: &'a str,
    /// Whether the status is `Success`.
    pub success: bool,
    /// `FileUrl`.
    pub file_url: Option<TextRef<'a>>,
    /// `Bitrate`.
    pub bitrate: Option<&'a str>,
    /// `Width`.
    pub width: Option<i64>,
    /// `Height`.
    pub height: Option<i64>,
    /// `Duration`.
    pub duration: Option<f64>,
    /// `Size`.
    pub size: Option<i64>,
    /// `JobId`.
    pub job_id: Option<TextRef<'a>>,
    /// `ErrorCode`.
    pub error_code: Option<&'a str>,
}

impl PackedInfo {
    /// Packs a rendition's fields.
    /// Also packs a rendition given by borrowed strings (`RenditionInfo<&str, &str>`, the fold's
    /// hot path): no intermediate owned texts, no allocation but the result's.
    pub fn pack<T: PackText, S: AsRef<str>>(i: &RenditionInfo<T, S>) -> PackedInfo {
        thread_local! {
            /// Packing scratch, kept between calls: the value is then allocated once, at its
            /// exact size, instead of being grown and shrunk.
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|s| {
            let mut out = s.borrow_mut();
            out.clear();
            Self::pack_into(i, &mut out);
            PackedInfo(Box::from(&out[..]))
        })
    }

    fn pack_into<T: PackText, S: AsRef<str>>(i: &RenditionInfo<T, S>, out: &mut Vec<u8>) {
        let mask = [
            (i.file_url.is_some(), P_URL),
            (i.bitrate.is_some(), P_BITRATE),
            (i.width.is_some(), P_WIDTH),
            (i.height.is_some(), P_HEIGHT),
            (i.duration.is_some(), P_DURATION),
            (i.size.is_some(), P_SIZE),
            (i.job_id.is_some(), P_JOB),
            (i.error_code.is_some(), P_ERROR),
        ]
        .into_iter()
        .filter(|(present, _)| *present)
        .fold(0u8, |m, (_, bit)| m | bit);
        out.push(mask);
        match &i.status {
            Status::Fail => out.push(0),
            Status::Success => out.push(1),
            Status::Other(s) => {
                out.push(2);
                put_bytes(out, s.as_bytes());
            }
        }
        if let Some(u) = &i.file_url {
            u.put(out);
        }
        if let Some(b) = &i.bitrate {
            put_bytes(out, b.as_ref().as_bytes());
        }
        for v in [i.width, i.height].into_iter().flatten() {
            put_int(out, v);
        }
        if let Some(d) = i.duration {
            out.extend_from_slice(&d.0.to_bits().to_le_bytes());
        }
        if let Some(s) = i.size {
            put_int(out, s);
        }
        if let Some(j) = &i.job_id {
            j.put(out);
        }
        if let Some(e) = &i.error_code {
            put_bytes(out, e.as_ref().as_bytes());
        }
    }

    /// Heap bytes this value occupies.
    pub fn stored_len(&self) -> usize {
        self.0.len()
    }

    /// Whether the rendition's status is `Success`.
    pub fn is_success(&self) -> bool {
        self.0[1] == 1
    }

    /// The fields, borrowed.
    pub fn view(&self) -> InfoRef<'_> {
        let mut r = Rd { b: &self.0, i: 0 };
        let mask = r.byte();
        let (status, success) = match r.byte() {
            0 => ("fail", false),
            1 => ("success", true),
            _ => (r.str(), false),
        };
        let has = |bit: u8| mask & bit != 0;
        InfoRef {
            status,
            success,
            file_url: has(P_URL).then(|| TextRef::from_stored(r.bytes())),
            bitrate: has(P_BITRATE).then(|| r.str()),
            width: has(P_WIDTH).then(|| r.int()),
            height: has(P_HEIGHT).then(|| r.int()),
            duration: has(P_DURATION).then(|| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&r.b[r.i..r.i + 8]);
                r.i += 8;
                f64::from_bits(u64::from_le_bytes(w))
            }),
            size: has(P_SIZE).then(|| r.int()),
            job_id: has(P_JOB).then(|| TextRef::from_stored(r.bytes())),
            error_code: has(P_ERROR).then(|| r.str()),
        }
    }

    /// The fields, owned.
    pub fn unpack(&self) -> RenditionInfo {
        let v = self.view();
        RenditionInfo {
            status: match self.0[1] {
                0 => Status::Fail,
                1 => Status::Success,
                _ => Status::Other(v.status.into()),
            },
            file_url: v.file_url.map(TextRef::to_text),
            bitrate: v.bitrate.map(Into::into),
            width: v.width,
            height: v.height,
            duration: v.duration.map(F64),
            size: v.size,
            job_id: v.job_id.map(TextRef::to_text),
            error_code: v.error_code.map(Into::into),
        }
    }
}

impl std::fmt::Debug for PackedInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.unpack(), f)
    }
}

impl PartialOrd for PackedInfo {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PackedInfo {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.0 == other.0 {
            std::cmp::Ordering::Equal
        } else {
            self.unpack().cmp(&other.unpack())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_rendition_info_round_trips_and_orders_like_the_struct() {
        let full = RenditionInfo {
            status: Status::Other("Processing".into()),
            file_url: Some(Text::new(
                "http://outin-0123456789abcdef0123456789abcdef.oss.example.com/a/0123456789abcdef0123456789abcdef.m3u8",
            )),
            bitrate: Some("1500.5".into()),
            width: Some(-1),
            height: Some(i64::MAX),
            duration: Some(F64(-0.0)),
            size: Some(i64::MIN),
            job_id: Some(Text::new("0123456789abcdef0123456789abcdef")),
            error_code: Some("Ε".into()),
        };
        let empty = RenditionInfo {
            status: Status::Fail,
            file_url: None,
            bitrate: None,
            width: None,
            height: None,
            duration: None,
            size: None,
            job_id: None,
            error_code: None,
        };
        let mut only_some = empty.clone();
        only_some.status = Status::Success;
        only_some.height = Some(720);
        only_some.duration = Some(F64(f64::NAN));
        let all = [full, empty, only_some];
        for a in &all {
            let p = PackedInfo::pack(a);
            assert_eq!(&p.unpack(), a);
            assert_eq!(p.is_success(), a.status.is_success());
            assert_eq!(p.view().status, a.status.as_str());
            for b in &all {
                let q = PackedInfo::pack(b);
                assert_eq!(p.cmp(&q), a.cmp(b));
                assert_eq!(p == q, a == b);
            }
        }
    }
}

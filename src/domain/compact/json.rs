//! A small borrowed JSON tree for callback parsing, plus the stable canonical hash.
//!
//! Why not `serde_json::Value`: it allocates a `String` per key and per string value and a
//! B-tree per object; callback parsing is the fold's hot path. Here strings borrow from the body
//! unless they contain escapes, objects are a vector of entries (VOD bodies have ~10-20 keys, so a
//! linear scan beats a map), and only the fields nobody knows (the faithful `extra`) are converted
//! to `serde_json::Value`.
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON number as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// Negative integer.
    I(i64),
    /// Non-negative integer.
    U(u64),
    /// Anything with a fraction or exponent.
    F(f64),
}

/// A JSON value borrowing its strings from the input where possible.
#[derive(Debug, Clone, PartialEq)]
pub enum J<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Num(Num),
    /// A string (borrowed unless it had escapes).
    Str(Cow<'a, str>),
    /// An array.
    Arr(Vec<J<'a>>),
    /// An object, entries in input order.
    Obj(Obj<'a>),
}

/// A JSON object as a vector of entries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Obj<'a>(pub Vec<(Cow<'a, str>, J<'a>)>);

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<J<'de>, E> {
        Ok(J::Null)
    }
    fn visit_none<E>(self) -> Result<J<'de>, E> {
        Ok(J::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<J<'de>, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<J<'de>, E> {
        Ok(J::Num(if v >= 0 { Num::U(v as u64) } else { Num::I(v) }))
    }
    fn visit_u64<E>(self, v: u64) -> Result<J<'de>, E> {
        Ok(J::Num(Num::U(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<J<'de>, E> {
        Ok(J::Num(Num::F(v)))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<J<'de>, E> {
        Ok(J::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<J<'de>, E> {
        Ok(J::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<J<'de>, E> {
        Ok(J::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J<'de>, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(x) = seq.next_element::<J<'de>>()? {
            v.push(x);
        }
        Ok(J::Arr(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J<'de>, A::Error> {
        let mut v = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(k) = map.next_key::<Key<'de>>()? {
            let val = map.next_value::<J<'de>>()?;
            v.push((k.0, val));
        }
        Ok(J::Obj(Obj(v)))
    }
}

impl<'de> Deserialize<'de> for J<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JVisitor)
    }
}

struct Key<'a>(Cow<'a, str>);
struct KeyVisitor;
impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}
impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

impl J<'_> {
    /// Name of the JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Bool(_) => "a boolean",
            J::Num(_) => "a number",
            J::Str(_) => "a string",
            J::Arr(_) => "an array",
            J::Obj(_) => "an object",
        }
    }

    /// Converts to an owned `serde_json::Value` (only for fields kept verbatim).
    pub fn to_value(&self) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Num(Num::I(i)) => Value::from(*i),
            J::Num(Num::U(u)) => Value::from(*u),
            J::Num(Num::F(f)) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            J::Str(s) => Value::String(s.to_string()),
            J::Arr(a) => Value::Array(a.iter().map(J::to_value).collect()),
            J::Obj(o) => Value::Object(o.to_map()),
        }
    }

    /// Converts an owned `serde_json::Value` (rare paths: JSON nested inside a string).
    pub fn from_value(v: Value) -> J<'static> {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(b),
            Value::Number(n) => J::Num(match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Num::U(u),
                (None, Some(i)) => Num::I(i),
                _ => Num::F(n.as_f64().unwrap_or(0.0)),
            }),
            Value::String(s) => J::Str(Cow::Owned(s)),
            Value::Array(a) => J::Arr(a.into_iter().map(J::from_value).collect()),
            Value::Object(m) => J::Obj(Obj(m
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), J::from_value(v)))
                .collect())),
        }
    }
}

/// Parses a JSON document into a borrowed tree: the same tree, and the same acceptance, as
/// `serde_json::from_slice::<J>`, several times faster (no visitor machinery, one scratch stack
/// instead of a growing vector per object, each object and array allocated at its exact size).
///
/// The fast parser only decides the easy cases: whenever it does not accept the input (syntax
/// errors, numbers it does not convert itself, deep nesting), serde_json parses it, so errors
/// and corner cases are serde_json's own. Numbers with a fraction or exponent, `-0` and integers
/// that overflow are converted by serde_json too, so every `f64` is bit-identical (the canonical
/// hash depends on it).
pub fn parse(body: &[u8]) -> Result<J<'_>, serde_json::Error> {
    parse_hashed(body).map(|(v, _)| v)
}

/// [`parse`], and the [`canonical_hash`] of the value, computed while parsing (one pass over the
/// text instead of a second walk over the tree).
pub fn parse_hashed(body: &[u8]) -> Result<(J<'_>, u64), serde_json::Error> {
    if let Ok(text) = std::str::from_utf8(body) {
        let (fields, items) = STACKS.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let mut p = Parser {
            s: text,
            b: body,
            i: 0,
            depth: 128,
            fields,
            items,
            item_hashes: Vec::new(),
        };
        let v = p.document();
        let Parser {
            mut fields,
            mut items,
            ..
        } = p;
        fields.clear();
        items.clear();
        // Empty again: hand the allocations back for the next parse (collecting a vector's own
        // iterator into an element type of the same layout reuses its allocation; `filter` could
        // not change the lifetime).
        #[allow(clippy::unnecessary_filter_map)]
        let fields: Vec<Field<'static>> = fields.into_iter().filter_map(|_| None).collect();
        #[allow(clippy::unnecessary_filter_map)]
        let items: Vec<J<'static>> = items.into_iter().filter_map(|_| None).collect();
        STACKS.with(|s| *s.borrow_mut() = (fields, items));
        if let Some(v) = v {
            return Ok(v);
        }
    }
    let v: J<'_> = serde_json::from_slice(body)?;
    let h = canonical_hash(&v);
    Ok((v, h))
}

type Field<'a> = (Cow<'a, str>, J<'a>);

thread_local! {
    /// The parser's scratch stacks, kept between parses (empty between them).
    static STACKS: RefCell<(Vec<Field<'static>>, Vec<J<'static>>)> =
        const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Index of the first byte at or after `i` that ends a plain string run (`"`, `\\` or a control
/// character), eight bytes at a time.
#[inline]
fn plain_run_end(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let q = w ^ (LO * u64::from(b'"'));
        let e = w ^ (LO * u64::from(b'\\'));
        // Each term flags its lowest matching byte exactly (false positives only above a match).
        let hit = ((q.wrapping_sub(LO) & !q)
            | (e.wrapping_sub(LO) & !e)
            | (w.wrapping_sub(LO * 0x20) & !w))
            & HI;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// Moves `v[base..]` into a vector of its exact size with one copy (`drain(..).collect()` moves
/// element by element), keeping `v`'s allocation for the next object.
fn take_tail<T>(v: &mut Vec<T>, base: usize) -> Vec<T> {
    if base == 0 {
        // `split_off(0)` would hand over the scratch allocation and allocate a new one.
        let mut out = Vec::with_capacity(v.len());
        out.append(v);
        out
    } else {
        v.split_off(base)
    }
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
    fields: Vec<Field<'a>>,
    items: Vec<J<'a>>,
    item_hashes: Vec<u64>,
}

impl<'a> Parser<'a> {
    fn document(&mut self) -> Option<(J<'a>, u64)> {
        let v = self.value()?;
        self.ws();
        (self.i == self.b.len()).then_some(v)
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// A value and its canonical hash.
    fn value(&mut self) -> Option<(J<'a>, u64)> {
        self.ws();
        let leaf = match self.peek()? {
            b'"' => {
                self.i += 1;
                let s = self.string()?;
                let h = hash_bytes(6, s.as_bytes());
                return Some((J::Str(s), h));
            }
            b'{' => return self.object(),
            b'[' => return self.array(),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true", J::Bool(true)),
            b'f' => self.literal(b"false", J::Bool(false)),
            b'n' => self.literal(b"null", J::Null),
            _ => None,
        }?;
        let h = canonical_hash(&leaf);
        Some((leaf, h))
    }

    fn literal(&mut self, word: &[u8], v: J<'a>) -> Option<J<'a>> {
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(v)
        } else {
            None
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth -= 1;
        (self.depth > 0).then_some(())
    }

    fn object(&mut self) -> Option<(J<'a>, u64)> {
        self.enter()?;
        self.i += 1;
        let base = self.fields.len();
        let mut sum = 0u64;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
        } else {
            loop {
                self.ws();
                if self.peek()? != b'"' {
                    return None;
                }
                self.i += 1;
                let k = self.string()?;
                self.ws();
                if self.peek()? != b':' {
                    return None;
                }
                self.i += 1;
                let (v, hv) = self.value()?;
                sum = sum.wrapping_add(fmix(hash_bytes(8, k.as_bytes()).wrapping_mul(K2) ^ hv));
                self.fields.push((k, v));
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth += 1;
        let n = (self.fields.len() - base) as u64;
        let h = fmix(sum ^ hash_bytes(9, &n.to_le_bytes()));
        Some((J::Obj(Obj(take_tail(&mut self.fields, base))), h))
    }

    fn array(&mut self) -> Option<(J<'a>, u64)> {
        self.enter()?;
        self.i += 1;
        let base = self.items.len();
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
        } else {
            loop {
                let (v, hv) = self.value()?;
                self.items.push(v);
                self.item_hashes.push(hv);
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth += 1;
        let n = (self.items.len() - base) as u64;
        let mut h = hash_bytes(7, &n.to_le_bytes());
        for x in self.item_hashes.drain(base..) {
            h = fmix(h.wrapping_mul(K1) ^ x);
        }
        Some((J::Arr(take_tail(&mut self.items, base)), h))
    }

    /// After the opening quote. Borrowed unless escaped. Slices always start and end next to an
    /// ASCII byte, so they are on char boundaries (the whole body is valid UTF-8).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.i;
        self.i = plain_run_end(self.b, self.i);
        match *self.b.get(self.i)? {
            b'"' => {
                let s = &self.s[start..self.i];
                self.i += 1;
                return Some(Cow::Borrowed(s));
            }
            b'\\' => {}
            _ => return None,
        }
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.s[start..self.i]);
        loop {
            let c = *self.b.get(self.i)?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\x08',
                        b'f' => '\x0c',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    });
                }
                0..=0x1f => return None,
                _ => {
                    let run = self.i;
                    self.i = plain_run_end(self.b, self.i);
                    out.push_str(&self.s[run..self.i]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + char::from(c).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// After `\u`. Lone surrogates are refused (serde_json refuses them too).
    fn unicode_escape(&mut self) -> Option<char> {
        let n = self.hex4()?;
        match n {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2)? != b"\\u" {
                    return None;
                }
                self.i += 2;
                let m = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&m) {
                    return None;
                }
                char::from_u32(0x10000 + ((n - 0xD800) << 10) + (m - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(n),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<J<'a>> {
        let start = self.i;
        let neg = self.b[self.i] == b'-';
        if neg {
            self.i += 1;
        }
        let int_start = self.i;
        match self.peek()? {
            b'0' => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let int_end = self.i;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            float = true;
        }
        if !float {
            let mut sig: u64 = 0;
            let mut fits = true;
            for &c in &self.b[int_start..int_end] {
                match sig
                    .checked_mul(10)
                    .and_then(|x| x.checked_add(u64::from(c - b'0')))
                {
                    Some(x) => sig = x,
                    None => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                if !neg {
                    return Some(J::Num(Num::U(sig)));
                }
                // serde_json: a negative that fits is an i64; `-0` and underflows are floats.
                let n = (sig as i64).wrapping_neg();
                if n < 0 {
                    return Some(J::Num(Num::I(n)));
                }
            }
        }
        let f: f64 = serde_json::from_str(&self.s[start..self.i]).ok()?;
        Some(J::Num(Num::F(f)))
    }
}

/// String equality with a cheap length check first (most probes in `take` are misses), and for
/// field-name lengths (4 to 16 bytes) two overlapping word loads instead of a `memcmp` call.
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    if (8..=16).contains(&n) {
        let w = |s: &[u8], at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&s[at..at + 8]);
            u64::from_le_bytes(x)
        };
        w(a, 0) == w(b, 0) && w(a, n - 8) == w(b, n - 8)
    } else if (4..8).contains(&n) {
        let w = |s: &[u8], at: usize| {
            let mut x = [0u8; 4];
            x.copy_from_slice(&s[at..at + 4]);
            u32::from_le_bytes(x)
        };
        w(a, 0) == w(b, 0) && w(a, n - 4) == w(b, n - 4)
    } else {
        a == b
    }
}

impl<'a> Obj<'a> {
    /// The remaining entries as a `serde_json::Map` (later duplicates of a key win, as in serde_json).
    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in &self.0 {
            m.insert(k.to_string(), v.to_value());
        }
        m
    }

    /// Removes a field by exact name, else by ASCII-case-insensitive name (`FileURL` for
    /// `FileUrl`). Returns the key as written and the value.
    pub fn take(&mut self, name: &str) -> Option<(Cow<'a, str>, J<'a>)> {
        let i = self.0.iter().position(|(k, _)| same(k, name)).or_else(|| {
            self.0
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(name))
        })?;
        Some(self.0.swap_remove(i))
    }

    /// Puts a field back (it was not of a usable type; it stays as an extra field).
    pub fn put_back(&mut self, key: Cow<'a, str>, value: J<'a>) {
        self.0.push((key, value));
    }

    /// Finds a string field without removing it (exact, then case-insensitive name).
    pub fn find_str(&self, name: &str) -> Option<&str> {
        let v = self
            .0
            .iter()
            .find(|(k, _)| k == name)
            .or_else(|| self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v)?;
        match v {
            J::Str(s) => Some(s.trim()).filter(|s| !s.is_empty()),
            _ => None,
        }
    }
}

// ----- canonical hash ------------------------------------------------------------------------

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xff51_afd7_ed55_8ccd;

/// MurmurHash3's 64-bit finaliser: full avalanche.
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(K2);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hashes bytes eight at a time; fixed constants, so the value is the same in every process,
/// on every platform and in every version (it is persisted in snapshots).
fn hash_bytes(tag: u64, b: &[u8]) -> u64 {
    let mut h = tag.wrapping_mul(K1) ^ (b.len() as u64).wrapping_mul(K2);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K1).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K1).rotate_left(29);
    }
    fmix(h)
}

/// Canonical hash of a JSON value: independent of whitespace, key order and escaping (strings are
/// hashed decoded). Object entries are combined with a sum of mixed entry hashes, a multiset hash
/// that needs no sorting; arrays keep their order.
pub fn canonical_hash(v: &J<'_>) -> u64 {
    match v {
        J::Null => fmix(1),
        J::Bool(b) => fmix(2 + u64::from(*b)),
        J::Num(Num::I(i)) => hash_bytes(4, &i.to_le_bytes()),
        J::Num(Num::U(u)) => hash_bytes(4, &u.to_le_bytes()),
        J::Num(Num::F(f)) => hash_bytes(5, &f.to_bits().to_le_bytes()),
        J::Str(s) => hash_bytes(6, s.as_bytes()),
        J::Arr(a) => {
            let mut h = hash_bytes(7, &(a.len() as u64).to_le_bytes());
            for x in a {
                h = fmix(h.wrapping_mul(K1) ^ canonical_hash(x));
            }
            h
        }
        J::Obj(o) => {
            let mut sum = 0u64;
            for (k, x) in &o.0 {
                sum = sum.wrapping_add(fmix(
                    hash_bytes(8, k.as_bytes()).wrapping_mul(K2) ^ canonical_hash(x),
                ));
            }
            fmix(sum ^ hash_bytes(9, &(o.0.len() as u64).to_le_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> J<'_> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let j = parse(r#"{"a":"plain","b":"esc\"aped"}"#);
        let J::Obj(o) = j else {
            panic!("object expected")
        };
        assert!(matches!(&o.0[0].1, J::Str(Cow::Borrowed("plain"))));
        assert!(matches!(&o.0[1].1, J::Str(Cow::Owned(s)) if s == "esc\"aped"));
    }

    #[test]
    fn canonical_hash_ignores_order_whitespace_and_escapes_only() {
        let a = canonical_hash(&parse(r#"{"a":1,"b":[1,2],"c":{"x":"y"}}"#));
        assert_eq!(
            a,
            canonical_hash(&parse(r#"{ "c" : {"x":"\u0079"}, "b":[1, 2], "a":1 }"#))
        );
        assert_ne!(
            a,
            canonical_hash(&parse(r#"{"a":1,"b":[2,1],"c":{"x":"y"}}"#))
        );
        assert_ne!(
            a,
            canonical_hash(&parse(r#"{"a":"1","b":[1,2],"c":{"x":"y"}}"#))
        );
        assert_ne!(
            canonical_hash(&parse(r#"{"a":"b"}"#)),
            canonical_hash(&parse(r#"{"b":"a"}"#))
        );
        // Pinned: the value is persisted, so it must never change.
        assert_eq!(
            canonical_hash(&parse(r#"{"EventType":"X","VideoId":"v"}"#)),
            PINNED
        );
    }

    #[test]
    fn fast_parser_agrees_with_serde_json() {
        let cases = [
            r#"{"a":1,"b":[1,2,{"c":null}],"d":"x\"y\\u00e9\ud83d\ude00","e":true,"f":false}"#,
            r#"  [ -1, -0, 0, 1.5, -2.5e3, 1E2, 18446744073709551615, 18446744073709551616,
                -9223372036854775808, -9223372036854775809, 123456789012345678901234 ] "#,
            r#"{"k":"\/\b\f\n\r\t","é":"ü€😀","":{},"n":[[],[[]]]}"#,
            r#"{"dup":1,"dup":2}"#,
            "{\"s\":\"\u{7f}\"}",
            "\"plain\"",
            "null",
        ];
        for c in cases {
            let (fast, hash) = super::parse_hashed(c.as_bytes()).unwrap();
            let reference: J<'_> = serde_json::from_str(c).unwrap();
            assert_eq!(fast, reference, "{c}");
            assert_eq!(hash, canonical_hash(&reference), "{c}");
            assert_eq!(canonical_hash(&fast), canonical_hash(&reference), "{c}");
        }
        let bad = [
            "",
            "{",
            "{\"a\":1,}",
            "[1,]",
            "01",
            "-",
            "1.",
            "1e",
            "{\"a\" 1}",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"a\u{1}\"",
            "\"\\x\"",
            "tru",
            "nul",
            "[1] x",
            "{\"a\":1}}",
            "1e400",
            "\"\\u12\"",
            "{'a':1}",
            "[1 2]",
        ];
        for c in bad {
            assert!(super::parse(c.as_bytes()).is_err(), "{c:?} must be refused");
            assert!(serde_json::from_str::<J<'_>>(c).is_err(), "{c:?}");
        }
        assert!(super::parse(b"\"\xff\"").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(super::parse(deep.as_bytes()).is_err());
        let ok_deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(
            super::parse(ok_deep.as_bytes()).unwrap(),
            serde_json::from_str::<J<'_>>(&ok_deep).unwrap()
        );
    }

    const PINNED: u64 = 16_096_472_710_633_283_318;

    #[test]
    fn values_convert_both_ways() {
        let v: Value = serde_json::from_str(r#"{"a":[1,-2,2.5,"s",null,true,{"b":{}}]}"#).unwrap();
        assert_eq!(J::from_value(v.clone()).to_value(), v);
    }
}

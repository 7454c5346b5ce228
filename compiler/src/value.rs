//! Runtime values and their types, with SQL-style semantics.
//!
//! `Value` is what flows through the dataflow: attribute values, event fields,
//! tag results. It is totally ordered (floats by `total_cmp`) and hashable so it
//! can be a key or a value in differential's arrangements. Decimals are exact
//! fixed-point numbers with six fractional digits carried in an `i128`, so sums
//! of money never pass through binary floating point.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Index of an entity in the compiled model.
pub type EntityId = usize;

/// The type of a value. Nullability is tracked beside it where it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Type {
    Bool,
    Int,
    Float,
    Decimal,
    String,
    Timestamp,
    /// A reference to an instance of the entity, held as its interned key id.
    Ref(EntityId),
    /// The type of `null` alone; fits anywhere.
    Null,
}

impl Type {
    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Decimal)
    }
}

/// Exact decimal: the value times 10^6.
///
/// Packed to 8-byte alignment: an `i128` alone would align every `Value` to
/// 16 bytes and make it 32 bytes long instead of 24, and rows of values are
/// most of what the dataflow holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(C, packed(8))]
pub struct Decimal(pub i128);

pub const DECIMAL_SCALE: u32 = 6;
const ONE: i128 = 1_000_000;
/// 10^6 with 18 integer digits: the documented range (24 significant digits).
const LIMIT: i128 = 1_000_000_000_000_000_000_000_000;

impl Decimal {
    pub const ZERO: Decimal = Decimal(0);

    pub fn from_int(i: i64) -> Decimal {
        Decimal(i as i128 * ONE)
    }

    /// Parses `-12.345`, `7`, `1e3`, `2.5E-2` exactly. More than six fractional
    /// digits is an error rather than a silent rounding: input data must be exact.
    pub fn parse(text: &str) -> Result<Decimal, String> {
        match Decimal::plain(text.as_bytes()) {
            Some(d) => Ok(d),
            None => Decimal::parse_any(text),
        }
    }

    /// The common form, `-123.45` (at most 18 integer and 6 fractional
    /// digits), read digit by digit: the general reading below formats a
    /// string of the digits and raises 10 to a power per digit, ~1,200
    /// instructions an order's amount. Anything else is `None`, for it.
    fn plain(b: &[u8]) -> Option<Decimal> {
        let (negative, b) = match b.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, b),
        };
        let (int, frac) = match b.iter().position(|&c| c == b'.') {
            Some(at) => (&b[..at], &b[at + 1..]),
            None => (b, &b[b.len()..]),
        };
        let point = int.len() < b.len();
        if int.is_empty() || int.len() > 18 || frac.len() > 6 || (point && frac.is_empty()) {
            return None;
        }
        let units = digits(int)? as i128 * ONE + digits(frac)? as i128 * 10i128.pow(6 - frac.len() as u32);
        Some(Decimal(if negative { -units } else { units }))
    }

    /// `parse` of any form it takes, and its errors.
    fn parse_any(text: &str) -> Result<Decimal, String> {
        let text = text.trim();
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(at) => {
                let exp: i32 = text[at + 1..].parse().map_err(|_| format!("invalid exponent in `{text}`"))?;
                (&text[..at], exp)
            }
            None => (text, 0),
        };
        let (negative, digits) = match mantissa.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty())
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!("`{text}` is not a decimal number"));
        }
        // Shift the decimal point by the exponent, in the digit string.
        let all: String = format!("{int_part}{frac_part}");
        let point = int_part.len() as i64 + exponent as i64;
        let scale = DECIMAL_SCALE as i64;
        let mut units: i128 = 0;
        for (i, b) in all.bytes().enumerate() {
            let position = i as i64; // digit i has weight 10^(point - 1 - i)
            let weight = point - 1 - position + scale;
            let d = (b - b'0') as i128;
            if weight < 0 {
                if d != 0 {
                    return Err(format!("`{text}` has more than {DECIMAL_SCALE} digits after the decimal point"));
                }
                continue;
            }
            if weight > 30 {
                if d != 0 {
                    return Err(format!("`{text}` is too large for a decimal"));
                }
                continue;
            }
            units = units
                .checked_add(d * 10i128.pow(weight as u32))
                .ok_or_else(|| format!("`{text}` is too large for a decimal"))?;
        }
        if units >= LIMIT {
            return Err(format!("`{text}` is too large for a decimal"));
        }
        Ok(Decimal(if negative { -units } else { units }))
    }

    pub fn checked_add(self, o: Decimal) -> Option<Decimal> {
        self.0.checked_add(o.0).filter(|v| v.abs() < LIMIT).map(Decimal)
    }
    pub fn checked_sub(self, o: Decimal) -> Option<Decimal> {
        self.0.checked_sub(o.0).filter(|v| v.abs() < LIMIT).map(Decimal)
    }
    /// Product rounded half away from zero to six places.
    pub fn checked_mul(self, o: Decimal) -> Option<Decimal> {
        let raw = self.0.checked_mul(o.0)?;
        Some(Decimal(div_round(raw, ONE))).filter(|d| d.0.abs() < LIMIT)
    }
    /// Quotient rounded half away from zero to six places; `None` on division by zero.
    pub fn checked_div(self, o: Decimal) -> Option<Decimal> {
        if o.0 == 0 {
            return None;
        }
        let num = self.0.checked_mul(ONE)?;
        Some(Decimal(div_round(num, o.0))).filter(|d| d.0.abs() < LIMIT)
    }
    pub fn checked_rem(self, o: Decimal) -> Option<Decimal> {
        if o.0 == 0 {
            return None;
        }
        Some(Decimal(self.0 % o.0))
    }
    /// Rounds half away from zero to `digits` fractional digits (0..=6).
    pub fn round(self, digits: i64) -> Decimal {
        if digits >= DECIMAL_SCALE as i64 {
            return self;
        }
        let digits = digits.max(-18);
        let unit = 10i128.pow((DECIMAL_SCALE as i64 - digits) as u32);
        Decimal(div_round(self.0, unit) * unit)
    }
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / ONE as f64
    }
    /// Average of a sum of `count` values, rounded half away from zero.
    pub fn average(sum_units: i128, count: i64) -> Option<Decimal> {
        if count == 0 {
            return None;
        }
        Some(Decimal(div_round(sum_units, count as i128)))
    }
}

/// `a / b` rounded half away from zero.
fn div_round(a: i128, b: i128) -> i128 {
    let q = a / b;
    let r = a % b;
    if r.abs() * 2 >= b.abs() {
        if (a < 0) != (b < 0) {
            q - 1
        } else {
            q + 1
        }
    } else {
        q
    }
}

impl Decimal {
    /// Appends the decimal as `Display` shows it, without the formatting
    /// machinery: a profile dump writes one for most users' tags, and
    /// `write!` with a `format!` of the fraction was a fifth of its time.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if self.0 < 0 {
            out.push(b'-');
        }
        let abs = self.0.unsigned_abs();
        // (Through a u64 where it fits: dividing a u128 is a library call a digit.)
        let int = abs / ONE as u128;
        let mut buffer = itoa::Buffer::new();
        let int_text = match u64::try_from(int) {
            Ok(small) => buffer.format(small),
            Err(_) => buffer.format(int),
        };
        out.extend_from_slice(int_text.as_bytes());
        let mut frac = (abs % ONE as u128) as u32;
        if frac == 0 {
            return;
        }
        let mut places = 6;
        while frac.is_multiple_of(10) {
            frac /= 10;
            places -= 1;
        }
        out.push(b'.');
        let start = out.len();
        out.resize(start + places, b'0');
        for at in out[start..].iter_mut().rev() {
            *at = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
    }
}

impl fmt::Display for Decimal {
    /// Exact, with no trailing fractional zeros: `1234.5`, `100`, `-0.000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::with_capacity(48);
        self.write_to(&mut text);
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// An `f64` with a total order, so that values can be keys.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}
impl Eq for F64 {}
impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl Hash for F64 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

/// The longest string a `Text` holds in place.
pub const INLINE: usize = 15;

/// A string value. Most strings a record carries are short (ids, keys,
/// channels, categories); up to `INLINE` bytes they sit inside the value
/// itself, so making one allocates nothing and copying one (rows are copied
/// into every window's input, into joins, into aggregates) neither counts
/// references nor reads another allocation. A longer one is shared. A value
/// stays 24 bytes either way.
///
/// It compares, orders, prints and serializes as its `str` does, whatever
/// its form (and a string has one form: `new` picks it from the length).
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Inline(Short),
    Shared(Arc<str>),
}

/// A short string: its bytes, zeros after them, and its length in the last
/// byte; the value's last two words. Aligned to a word, it leaves the first
/// word to the tag alone (rustc widens the tag to fill it), and LLVM copies a
/// value as three words. The layout before (the length in byte 1, then 22
/// bytes) made LLVM split each copy at the tag byte and move bytes 1 to 7
/// as two overlapping 4-byte pieces through stack slots, whose reloads
/// missed store forwarding: 40-60 % of the samples of the loops that copy
/// rows (the engine's feed of an event's fields to each input, a join's
/// rows, a keyed operator's changes).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Short([u8; INLINE + 1]);

impl Short {
    /// `bytes` (at most `INLINE` of them), assembled in registers from a few
    /// overlapping reads. Copied into a buffer on the stack by `memcpy` and
    /// read back as words, they missed store forwarding: half of the samples
    /// of making a string value. `Text::new`, the one caller, has checked
    /// the length (past `INLINE`, `16 - n` would wrap).
    #[inline(always)]
    fn new(bytes: &[u8]) -> Short {
        let n = bytes.len();
        debug_assert!(n <= INLINE);
        let (low, high) = if n >= 8 {
            // The last 8 bytes, shifted down to start at byte 8 (none past 8 when n = 8).
            let last = le_word(&bytes[n - 8..]);
            (le_word(&bytes[..8]), last.checked_shr(8 * (16 - n) as u32).unwrap_or(0))
        } else if n >= 4 {
            let (first, last) = (le_word(&bytes[..4]), le_word(&bytes[n - 4..]));
            (first | last << (8 * (n - 4)), 0)
        } else {
            (bytes.iter().rev().fold(0, |word, &b| word << 8 | u64::from(b)), 0)
        };
        let all = u128::from(low) | u128::from(high) << 64 | (n as u128) << (8 * INLINE);
        Short(all.to_le_bytes())
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0[..usize::from(self.0[INLINE])]
    }
}

/// The little-endian number of exactly 4 or 8 bytes.
#[inline]
fn le_word(bytes: &[u8]) -> u64 {
    debug_assert!(matches!(bytes.len(), 4 | 8));
    match bytes.len() {
        8 => u64::from_le_bytes(bytes.try_into().unwrap_or_default()),
        _ => u64::from(u32::from_le_bytes(bytes.try_into().unwrap_or_default())),
    }
}

impl Text {
    // Inlined, a short string's words go straight where the value goes.
    // Returned from a call, they were two 8-byte stores that the caller read
    // back as one 16-byte load, which missed store forwarding (a sixth of
    // the decoder's samples).
    #[inline]
    pub fn new(s: &str) -> Text {
        if s.len() <= INLINE {
            Text(Repr::Inline(Short::new(s.as_bytes())))
        } else {
            Text::shared(s)
        }
    }

    #[inline(never)]
    fn shared(s: &str) -> Text {
        Text(Repr::Shared(Arc::from(s)))
    }

    /// The UTF-8 bytes, without checking them again.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(short) => short.as_bytes(),
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    /// The string. A short one's bytes are checked again on every call
    /// (`unsafe` is not used here): on a hot path, `as_bytes` and `len`
    /// do not check.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // The bytes were copied from a `str` whole: the check never fails.
            Repr::Inline(_) => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Repr::Shared(s) => s,
        }
    }

    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the string sits inside the value.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(_))
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // The bytes, zeros after them and the length: equal blocks are
            // equal strings (two word compares, where a slice's was a call).
            (Repr::Inline(a), Repr::Inline(b)) => a.0 == b.0,
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for Text {}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// UTF-8 bytes order as their strings do.
impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            // Read big-endian, a block orders by its zero-padded bytes, then
            // by its length (the last byte): as the strings do, since a
            // string that pads to another's bytes is a prefix of it.
            (Repr::Inline(a), Repr::Inline(b)) => u128::from_be_bytes(a.0).cmp(&u128::from_be_bytes(b.0)),
            _ => self.as_bytes().cmp(other.as_bytes()),
        }
    }
}

/// As `str` hashes with any hasher that keeps `Hasher::write_str`'s default
/// (every stable one). Nothing depends on it: values hash alike on every
/// worker of one process, and nothing stores a hash.
impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Read from a string, borrowed or not (serde hands every form to
/// `visit_str`), without an intermediate `String` for a short one.
impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        struct TextVisitor;
        impl serde::de::Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text::new(s))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// One value. The order between variants is arbitrary but fixed; SQL comparisons
/// go through [`crate::eval`], which widens numbers first.
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(F64),
    Decimal(Decimal),
    Str(Text),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// An entity instance, by interned key id (see the runtime's interner).
    Ref(u64),
}

const _: () = assert!(std::mem::size_of::<Value>() == 24);
// A short string fills the last two words, and leaves the first to the tag (see `Short`).
const _: () = assert!(std::mem::size_of::<Short>() == 16 && std::mem::align_of::<Short>() == 8);

/// A value without a shared string is cloned by copying its bytes. The
/// derived clone matched the variant and copied its fields one by one: 1.7 %
/// of a backfill's instructions (200k retail events: 2.611 -> 2.566 G), as
/// rows are copied into every group of inputs, join and aggregate.
impl Clone for Value {
    #[inline]
    fn clone(&self) -> Value {
        match self {
            Value::Str(s) if !s.is_inline() => Value::Str(s.clone()),
            // Named one by one: a variant added later that owns memory must
            // not be copied here unseen.
            #[allow(unsafe_code)]
            // SAFETY: these variants hold only plain data (numbers, a
            // boolean, a short string's bytes inside the value), which a copy
            // of the bytes duplicates exactly as a clone would, and own
            // nothing that a copy would share.
            Value::Null
            | Value::Bool(_)
            | Value::Int(_)
            | Value::Float(_)
            | Value::Decimal(_)
            | Value::Str(_)
            | Value::Timestamp(_)
            | Value::Ref(_) => unsafe { std::ptr::read(self) },
        }
    }
}

impl Value {
    #[inline]
    pub fn str(s: &str) -> Value {
        Value::Str(Text::new(s))
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn as_ref_id(&self) -> Option<u64> {
        match self {
            Value::Ref(id) => Some(*id),
            _ => None,
        }
    }
}

/// Formats epoch milliseconds as RFC 3339 with milliseconds: `2026-11-20T10:00:00.000Z`.
pub fn format_timestamp(ms: i64) -> String {
    Rfc3339(ms).to_string()
}

/// Epoch milliseconds shown as `format_timestamp` shows them, for writing
/// one without a `String` of its own.
pub struct Rfc3339(pub i64);

impl Rfc3339 {
    /// (year, month, day, hour, minute, second, millisecond).
    fn parts(&self) -> [i64; 7] {
        let days = self.0.div_euclid(86_400_000);
        let rem = self.0.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        [y, m, d, rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000]
    }

    /// The text, if its year has four digits (every time from year 0 to
    /// 9999), made digit by digit: a dump writes a few for every user.
    fn fixed(&self) -> Option<[u8; 24]> {
        let parts = self.parts();
        if !(0..=9999).contains(&parts[0]) {
            return None;
        }
        let mut text = *b"0000-00-00T00:00:00.000Z";
        // Each part's last digit is at its place's end.
        for (part, end) in parts.into_iter().zip([4, 7, 10, 13, 16, 19, 23]) {
            let mut n = part;
            let mut at = end;
            while n > 0 {
                at -= 1;
                text[at] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        Some(text)
    }

    /// Appends the text as `Display` shows it.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self.fixed() {
            Some(text) => out.extend_from_slice(&text),
            None => out.extend_from_slice(self.to_string().as_bytes()),
        }
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.fixed() {
            return f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?);
        }
        let [y, m, d, h, mi, s, milli] = self.parts();
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
    }
}

/// Parses RFC 3339 (`2026-11-20T10:00:00Z`, fractional seconds, `+08:00` offsets)
/// into epoch milliseconds. Sub-millisecond digits must be zero: times are exact.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    match plain_timestamp(text.as_bytes()) {
        Some(ms) => Ok(ms),
        None => parse_any_timestamp(text),
    }
}

/// `parse_timestamp` of any form it takes, and its errors.
fn parse_any_timestamp(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not an RFC 3339 timestamp (e.g. 2026-11-20T10:00:00Z)");
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(bad());
    }
    // At most 4 digits each: no overflow. (`str::parse` was most of a scan's time.)
    let num = |r: std::ops::Range<usize>| b.get(r).and_then(digits).ok_or_else(bad);
    if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let parts = [num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?];
    let whole_seconds = civil_ms(parts).ok_or_else(bad)?;
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &text[start..i];
        if frac.is_empty() {
            return Err(bad());
        }
        for (k, c) in frac.bytes().enumerate() {
            let digit = (c - b'0') as i64;
            if k < 3 {
                millis += digit * 10i64.pow(2 - k as u32);
            } else if digit != 0 {
                return Err(format!("`{text}` has sub-millisecond precision; times are kept to the millisecond"));
            }
        }
    }
    let offset_ms = match &text[i..] {
        "Z" | "z" => 0,
        // Bytes, not `&tz[3..4]`: a character of several bytes may straddle it.
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && tz.as_bytes()[3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3_600_000 + om * 60_000)
        }
        _ => return Err(bad()),
    };
    Ok(whole_seconds + millis - offset_ms)
}

/// The common forms, `2026-11-20T10:00:00.123Z` or without the fraction,
/// and either with an offset (`+08:00`) in place of the `Z`, read with no
/// more than they need: every event carries a time, and the general reading
/// below (closures, `Result`s with messages, a fraction of any length) took
/// ~500 instructions of the ~5,000 a record's decoding did. Times with an
/// offset, as a store in China writes them, went that way until they were
/// read here too: 2.3 % of a 200k-event backfill's instructions.
/// Anything else, or anything invalid, is `None`, and the general reading
/// accepts it or says what is wrong.
fn plain_timestamp(b: &[u8]) -> Option<i64> {
    let (b, offset_ms) = match b.split_last()? {
        (b'Z', time) => (time, 0),
        _ => {
            // As the general reading takes them: two digits each, unchecked.
            let (time, zone) = b.split_at_checked(b.len().checked_sub(6)?)?;
            let sign = match zone[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if zone[3] != b':' {
                return None;
            }
            (time, sign * (digits(&zone[1..3])? * 3_600_000 + digits(&zone[4..6])? * 60_000))
        }
    };
    let millis = match b.len() {
        19 => 0,
        23 if b[19] == b'.' => digits(&b[20..23])?,
        _ => return None,
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| b[at] != byte) {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, s) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    Some(civil_ms([y, mo, d, h, mi, s])? + millis - offset_ms)
}

/// Epoch milliseconds of [year, month, day, hour, minute, second] (UTC),
/// read as digits (none negative), if that is a time (second 60, a leap
/// second, is). Both readings of a time check and count it here.
// (Inlined: it is on the path of every event's time.)
#[inline(always)]
fn civil_ms([y, mo, d, h, mi, s]: [i64; 6]) -> Option<i64> {
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000)
}

/// The number that ASCII digits `b` (at most 18) spell; `None` if one is not a digit.
fn digits(b: &[u8]) -> Option<i64> {
    let mut n = 0i64;
    for &c in b {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10 + i64::from(digit);
    }
    Some(n)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms (public domain), restated.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    proptest! {
        /// Whatever the common form of a decimal reads as, the general
        /// reading reads the same: numbers of up to 18 and 6 digits, and
        /// texts near them (a sign, a point, an exponent, a space, a letter).
        #[test]
        fn the_common_form_of_a_decimal_reads_as_the_general_reading_reads_it(
            text in "-?[0-9]{0,19}(\\.[0-9]{0,7})?",
            inserted in prop::option::of((
                0usize..30,
                prop_oneof![Just('-'), Just('+'), Just('.'), Just('e'), Just(' '), Just('x')],
            )),
        ) {
            let mut text = text;
            if let Some((at, c)) = inserted {
                text.insert(at.min(text.len()), c);
            }
            if let Some(read) = Decimal::plain(text.as_bytes()) {
                prop_assert_eq!(Ok(read), Decimal::parse_any(&text), "{}", text);
            }
        }

        /// A decimal in the common form is read by it: its integer digits
        /// (1 to 18), then its point and fraction (1 to 6 digits) if any.
        #[test]
        fn a_decimal_in_the_common_form_is_read_by_it(
            negative in any::<bool>(),
            int in "[0-9]{1,18}",
            frac in prop::option::of("[0-9]{1,6}"),
        ) {
            let sign = if negative { "-" } else { "" };
            let text = match &frac {
                Some(frac) => format!("{sign}{int}.{frac}"),
                None => format!("{sign}{int}"),
            };
            prop_assert_eq!(Decimal::plain(text.as_bytes()).map(Ok), Some(Decimal::parse_any(&text)), "{}", text);
        }

        /// Whatever the common forms' reading accepts, the general reading
        /// accepts as the same time: times in those forms (from every year of
        /// four digits, 0000 to 9999, in `Z` or at any offset of two digits
        /// each), and texts near them (a byte replaced anywhere); and a time
        /// in those forms is read by it.
        #[test]
        fn the_common_form_of_a_time_reads_as_the_general_reading_reads_it(
            ms in -62_167_219_200_000i64..253_402_300_800_000,
            whole_seconds in any::<bool>(),
            zone in prop::option::of(("[+-]", 0i64..100, 0i64..100)),
            replaced in prop::option::of((
                0usize..29,
                prop_oneof![
                    Just(b'/'), Just(b'9'), Just(b'0'), Just(b'Z'), Just(b't'), Just(b':'), Just(b'.'), Just(b'+')
                ],
            )),
        ) {
            let mut text = format_timestamp(ms).into_bytes();
            text.pop();
            if whole_seconds {
                text.truncate(19);
            }
            let offset_ms = match &zone {
                None => {
                    text.push(b'Z');
                    0
                }
                Some((sign, h, m)) => {
                    text.extend_from_slice(format!("{sign}{h:02}:{m:02}").as_bytes());
                    (if sign == "-" { -1 } else { 1 }) * (h * 3_600_000 + m * 60_000)
                }
            };
            if let Some((at, byte)) = replaced {
                if at < text.len() {
                    text[at] = byte;
                }
            }
            let text = String::from_utf8(text).unwrap();
            if let Some(read) = plain_timestamp(text.as_bytes()) {
                prop_assert_eq!(Ok(read), parse_any_timestamp(&text), "{}", text);
            }
            if replaced.is_none() {
                let expected = if whole_seconds { ms - ms.rem_euclid(1000) } else { ms };
                prop_assert_eq!(plain_timestamp(text.as_bytes()), Some(expected - offset_ms), "{}", text);
            }
        }

        /// Decimals print digit by digit as `write!` printed them: the
        /// integer part, then the six fractional digits without their
        /// trailing zeros; at the extremes of `i128` too.
        #[test]
        fn decimals_print_as_formatting_printed_them(
            units in prop_oneof![any::<i128>(), -10_000_000i128..10_000_000, Just(i128::MIN), Just(i128::MAX)],
        ) {
            let abs = units.unsigned_abs();
            let frac = format!("{:06}", abs % ONE as u128);
            let mut expected = format!("{}{}", if units < 0 { "-" } else { "" }, abs / ONE as u128);
            if abs % ONE as u128 != 0 {
                expected = format!("{expected}.{}", frac.trim_end_matches('0'));
            }
            let mut written = Vec::new();
            Decimal(units).write_to(&mut written);
            prop_assert_eq!(String::from_utf8(written).unwrap(), expected.clone());
            prop_assert_eq!(Decimal(units).to_string(), expected);
        }

        /// Times print digit by digit as `write!` printed them, and years
        /// of other than four digits still print through it.
        #[test]
        fn timestamps_print_as_formatting_printed_them(
            ms in prop_oneof![-62_167_219_200_000i64..253_402_300_800_000, any::<i64>().prop_map(|t| t / 4)],
        ) {
            let [y, m, d, h, mi, s, milli] = Rfc3339(ms).parts();
            let expected = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z");
            let mut written = Vec::new();
            Rfc3339(ms).write_to(&mut written);
            prop_assert_eq!(String::from_utf8(written).unwrap(), expected.clone());
            prop_assert_eq!(format_timestamp(ms), expected);
        }

        /// A short text holds its string's bytes whatever their length
        /// and values (`Short::new` assembles them from overlapping words).
        #[test]
        fn a_short_text_holds_its_bytes(bytes in prop::collection::vec(1u8..128, 0..=INLINE + 1)) {
            let s = String::from_utf8(bytes).unwrap();
            let text = Text::new(&s);
            prop_assert_eq!(text.as_str(), s.as_str());
        }

        /// Short texts (blocks compared whole) compare and order as their
        /// strings, NULs and prefixes among them.
        #[test]
        fn short_texts_compare_as_their_strings(a in "[a\\x00]{0,15}", b in "[a\\x00]{0,15}") {
            let (ta, tb) = (Text::new(&a), Text::new(&b));
            prop_assert_eq!(ta == tb, a == b);
            prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
        }

        /// Texts compare, order, hash, print and serialize as their strings
        /// do, on either side of the inline length and across it.
        #[test]
        fn texts_behave_as_their_strings(a in "[a-c\\x00é]{0,30}", b in "[a-c\\x00é]{0,30}") {
            let (ta, tb) = (Text::new(&a), Text::new(&b));
            prop_assert_eq!(ta.is_inline(), a.len() <= INLINE);
            prop_assert_eq!(ta.as_str(), a.as_str());
            prop_assert_eq!(ta.len(), a.len());
            prop_assert_eq!(ta == tb, a == b);
            prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
            prop_assert_eq!(hash_of(&ta), hash_of(a.as_str()));
            prop_assert_eq!(format!("{:?}", Value::Str(ta.clone())), format!("Str({a:?})"));
            let json = serde_json::to_string(&Value::Str(ta.clone())).unwrap();
            prop_assert_eq!(&json, &serde_json::to_string(&serde_json::json!({ "Str": a })).unwrap());
            prop_assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), Value::Str(ta));
        }
    }

    #[test]
    fn decimals_parse_and_print_exactly() {
        for (text, shown) in [
            ("99.50", "99.5"),
            ("-0.000001", "-0.000001"),
            ("1234.5", "1234.5"),
            ("100", "100"),
            ("1e3", "1000"),
            ("2.5E-2", "0.025"),
            ("123456789012345678.123456", "123456789012345678.123456"),
        ] {
            assert_eq!(Decimal::parse(text).unwrap().to_string(), shown, "{text}");
        }
        assert!(Decimal::parse("0.0000001").is_err());
        assert!(Decimal::parse("abc").is_err());
        assert!(Decimal::parse("1.2.3").is_err());
        assert!(Decimal::parse("").is_err());
    }

    #[test]
    fn decimal_arithmetic_rounds_half_away_from_zero() {
        let d = |s: &str| Decimal::parse(s).unwrap();
        assert_eq!(d("1").checked_div(d("3")).unwrap().to_string(), "0.333333");
        assert_eq!(d("2").checked_div(d("3")).unwrap().to_string(), "0.666667");
        assert_eq!(d("-2").checked_div(d("3")).unwrap().to_string(), "-0.666667");
        assert_eq!(d("2.5").round(0).to_string(), "3");
        assert_eq!(d("-2.5").round(0).to_string(), "-3");
        assert_eq!(d("0.1").checked_mul(d("0.2")).unwrap().to_string(), "0.02");
        assert!(d("1").checked_div(d("0")).is_none());
    }

    #[test]
    fn every_kind_of_value_clones_to_an_equal_one() {
        let long = "a string longer than fits inside a value";
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::Float(F64(2.5)),
            Value::Decimal(Decimal::from_int(12)),
            Value::str(""),
            Value::str(&"x".repeat(INLINE)),
            Value::str(long),
            Value::Timestamp(1_795_132_800_000),
            Value::Ref(u64::MAX - 1),
        ];
        for value in &values {
            let copy = value.clone();
            assert_eq!(&copy, value);
            assert_eq!(hash_of(&copy), hash_of(value));
        }
        // A shared string's copy holds a reference of its own: it outlives
        // the value it came from, and dropping both frees it once.
        let shared = Value::str(long);
        let references = |v: &Value| match v {
            Value::Str(Text(Repr::Shared(s))) => Arc::strong_count(s),
            _ => 0,
        };
        let copies: Vec<Value> = (0..3).map(|_| shared.clone()).collect();
        assert_eq!(references(&shared), 4);
        drop(shared);
        assert_eq!(references(&copies[0]), 3);
        assert!(copies.iter().all(|c| matches!(c, Value::Str(s) if s.as_str() == long && !s.is_inline())));
    }

    #[test]
    fn timestamps_round_trip() {
        let ms = parse_timestamp("2026-11-20T00:00:00Z").unwrap();
        assert_eq!(ms, 1_795_132_800_000);
        assert_eq!(format_timestamp(ms), "2026-11-20T00:00:00.000Z");
        assert_eq!(parse_timestamp("2026-11-20T08:00:00.5+08:00").unwrap(), ms + 500);
        assert_eq!(format_timestamp(parse_timestamp("2024-02-29T23:59:59.999Z").unwrap()), "2024-02-29T23:59:59.999Z");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
        assert!(parse_timestamp("2026-02-30T00:00:00Z").is_err());
        assert!(parse_timestamp("2026-11-20").is_err());
        assert!(parse_timestamp("2026-11-20T00:00:00.0001Z").is_err());
        // Each with its separators in place, so that the digits are what is refused.
        for bad in ["+026-11-20T00:00:00Z", "2026-1a-20T00:00:00Z", "2026-11-20T0x:00:00Z", "20é-11-20T00:00:00Z"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
        // Regression (review): an offset with a character of two bytes across
        // its colon's place panicked.
        assert!(parse_timestamp("2026-11-20T00:00:00+0é00").is_err());
        assert!(parse_timestamp("2026-11-20T00:00:00+0a:00").is_err());
        assert_eq!(parse_timestamp("2026-11-20T00:00:00-01:30").unwrap(), ms + 5_400_000);
    }
}

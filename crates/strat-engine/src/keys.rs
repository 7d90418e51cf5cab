//! Key texts (docs/spec.md §6) and `_stratum` texts (§7).
//!
//! # Design
//!
//! Keys are written as UTF-8 bytes into a caller-owned `Vec<u8>` that is
//! cleared and reused for every row, so producing a key allocates nothing per
//! row (the buffer only grows until it fits the longest key). The per-type
//! dispatch is done once per column: [`KeyColumn::unit`] / [`KeyColumn::row`]
//! (and [`RowKeys`]) resolve the Arrow type into a typed accessor, and
//! [`KeyColumn::write`] is then a plain match plus formatting. Integers are
//! written in place two digits at a time, short strings copied as one fixed
//! move (a call to memcpy per value of a few bytes cost more than the
//! value), dates and timestamps formatted by hand.
//! [`write_key`] and [`write_row_key`] are one-row conveniences that redo the
//! dispatch on every call.
//!
//! # Key text by type
//!
//! | Arrow type | unit key | row key |
//! |---|---|---|
//! | Int8..Int64, UInt8..UInt64 | canonical decimal (`-5`, `18446744073709551615`) | same |
//! | Utf8, LargeUtf8, Utf8View | the string as is | `\` → `\\`, U+001F → `\u001f` (six characters) |
//! | Boolean | `true` / `false` | same |
//! | Date32, Date64 | `YYYY-MM-DD` | same |
//! | Float16/32/64 | error | widened to f64, Rust's `{}`: shortest round-trip digits, never an exponent (`0.1`, `1`, `1e300` → `1` and 300 zeros), `NaN`, `inf`, `-inf`, `-0` |
//! | Decimal32/64/128/256 | error | the unscaled integer with exactly `scale` fraction digits (`-1.50`, `-0.05`); a negative scale appends zeros |
//! | Timestamp (any unit) | error | `YYYY-MM-DDTHH:MM:SS`, plus `.` and exactly 9 digits when the sub-second part is non-zero; the stored UTC instant, the time zone is ignored |
//! | Null | error | `\N` |
//! | Dictionary of a supported type | as its values | as its values |
//! | anything else (nested, binary, time, interval, …) | error | error |
//!
//! NULL is `\N` in a row key and never a unit key ([`KeyError::Null`]).
//!
//! Dates are proleptic Gregorian with astronomical year numbering (year 0 is
//! 1 BC). Years 0..=9999 are written with exactly 4 digits; years above 9999
//! with all their digits and no `+`; negative years as `-` followed by at least
//! 4 digits (`-0001-01-01`).

use std::fmt;
use std::hash::BuildHasher;
use std::io::Write as _;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericStringArray, OffsetSizeTrait, PrimitiveArray,
    StringViewArray,
};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::{cast, max, min};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal32Type, Decimal64Type,
    Decimal128Type, Decimal256Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};

/// Separator between the columns of a row key (U+001F, unit separator).
pub const ROW_KEY_SEPARATOR: u8 = 0x1f;

/// Why a value has no key text.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyError {
    /// The unit value is NULL; NULL units are filtered by the caller.
    Null,
    /// The column type has no key text (in a unit key when `unit` is true,
    /// else in a row key).
    UnsupportedType { data_type: DataType, unit: bool },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Null => write!(f, "a NULL value has no unit key"),
            KeyError::UnsupportedType {
                data_type,
                unit: true,
            } => write!(f, "a unit column of type {data_type} has no key text"),
            KeyError::UnsupportedType {
                data_type,
                unit: false,
            } => write!(f, "a column of type {data_type} has no row key text"),
        }
    }
}

impl std::error::Error for KeyError {}

/// True if a `unit` column of this type has a key text.
pub fn is_unit_key_type(data_type: &DataType) -> bool {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Utf8 | LargeUtf8
        | Utf8View | Boolean | Date32 | Date64 => true,
        Dictionary(_, value) => is_unit_key_type(value),
        _ => false,
    }
}

/// True if a column of this type can be part of a row key (no `unit`).
pub fn is_row_key_type(data_type: &DataType) -> bool {
    use DataType::*;
    match data_type {
        Null | Float16 | Float32 | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..)
        | Decimal256(..) | Timestamp(..) => true,
        Dictionary(_, value) => is_row_key_type(value),
        other => is_unit_key_type(other),
    }
}

/// A column resolved once to a typed accessor.
#[derive(Debug, Clone)]
enum Kind {
    Null,
    I8(PrimitiveArray<Int8Type>),
    I16(PrimitiveArray<Int16Type>),
    I32(PrimitiveArray<Int32Type>),
    I64(PrimitiveArray<Int64Type>),
    U8(PrimitiveArray<UInt8Type>),
    U16(PrimitiveArray<UInt16Type>),
    U32(PrimitiveArray<UInt32Type>),
    U64(PrimitiveArray<UInt64Type>),
    Utf8(GenericStringArray<i32>),
    LargeUtf8(GenericStringArray<i64>),
    Utf8View(StringViewArray),
    Bool(BooleanArray),
    Date32(PrimitiveArray<Date32Type>, Option<DateTexts>),
    Date64(PrimitiveArray<Date64Type>),
    F16(PrimitiveArray<Float16Type>),
    F32(PrimitiveArray<Float32Type>),
    F64(PrimitiveArray<Float64Type>),
    Dec32(PrimitiveArray<Decimal32Type>, i8),
    Dec64(PrimitiveArray<Decimal64Type>, i8),
    Dec128(PrimitiveArray<Decimal128Type>, i8),
    Dec256(PrimitiveArray<Decimal256Type>, i8),
    /// Raw timestamp values and the number of units per second.
    Timestamp(ScalarBuffer<i64>, i64),
}

/// One column prepared for writing key texts row by row.
#[derive(Debug, Clone)]
pub struct KeyColumn {
    kind: Kind,
    nulls: Option<NullBuffer>,
    /// Row-key mode: escape strings, write NULL as `\N`.
    row: bool,
    /// No string of the column needs escaping (or unit mode, which never
    /// escapes): each is written as it is, with no test per value.
    plain: bool,
}

fn prim<T: ArrowPrimitiveType>(a: &dyn Array) -> PrimitiveArray<T> {
    a.as_primitive::<T>().clone()
}

impl KeyColumn {
    /// Prepares a `unit` column; fails unless [`is_unit_key_type`].
    pub fn unit(array: &dyn Array) -> Result<Self, KeyError> {
        Self::new(array, false)
    }

    /// Prepares a column of a row key; fails unless [`is_row_key_type`].
    pub fn row(array: &dyn Array) -> Result<Self, KeyError> {
        Self::new(array, true)
    }

    fn new(array: &dyn Array, row: bool) -> Result<Self, KeyError> {
        use DataType as D;
        let dt = array.data_type();
        let supported = if row {
            is_row_key_type(dt)
        } else {
            is_unit_key_type(dt)
        };
        if !supported {
            return Err(KeyError::UnsupportedType {
                data_type: dt.clone(),
                unit: !row,
            });
        }
        if let D::Dictionary(_, value) = dt {
            let flat = cast(array, value).map_err(|_| KeyError::UnsupportedType {
                data_type: dt.clone(),
                unit: !row,
            })?;
            return Self::new(flat.as_ref(), row);
        }
        let a = array;
        let kind = match dt {
            D::Null => Kind::Null,
            D::Int8 => Kind::I8(prim(a)),
            D::Int16 => Kind::I16(prim(a)),
            D::Int32 => Kind::I32(prim(a)),
            D::Int64 => Kind::I64(prim(a)),
            D::UInt8 => Kind::U8(prim(a)),
            D::UInt16 => Kind::U16(prim(a)),
            D::UInt32 => Kind::U32(prim(a)),
            D::UInt64 => Kind::U64(prim(a)),
            D::Utf8 => Kind::Utf8(a.as_string::<i32>().clone()),
            D::LargeUtf8 => Kind::LargeUtf8(a.as_string::<i64>().clone()),
            D::Utf8View => Kind::Utf8View(a.as_string_view().clone()),
            D::Boolean => Kind::Bool(a.as_boolean().clone()),
            D::Date32 => {
                let days = prim::<Date32Type>(a);
                let texts = DateTexts::of(&days);
                Kind::Date32(days, texts)
            }
            D::Date64 => Kind::Date64(prim(a)),
            D::Float16 => Kind::F16(prim(a)),
            D::Float32 => Kind::F32(prim(a)),
            D::Float64 => Kind::F64(prim(a)),
            D::Decimal32(_, s) => Kind::Dec32(prim(a), *s),
            D::Decimal64(_, s) => Kind::Dec64(prim(a), *s),
            D::Decimal128(_, s) => Kind::Dec128(prim(a), *s),
            D::Decimal256(_, s) => Kind::Dec256(prim(a), *s),
            D::Timestamp(TimeUnit::Second, _) => {
                Kind::Timestamp(a.as_primitive::<TimestampSecondType>().values().clone(), 1)
            }
            D::Timestamp(TimeUnit::Millisecond, _) => Kind::Timestamp(
                a.as_primitive::<TimestampMillisecondType>()
                    .values()
                    .clone(),
                1_000,
            ),
            D::Timestamp(TimeUnit::Microsecond, _) => Kind::Timestamp(
                a.as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .clone(),
                1_000_000,
            ),
            D::Timestamp(TimeUnit::Nanosecond, _) => Kind::Timestamp(
                a.as_primitive::<TimestampNanosecondType>().values().clone(),
                1_000_000_000,
            ),
            _ => unreachable!("checked by is_row_key_type"),
        };
        Ok(KeyColumn {
            plain: !row || !may_need_escape(&kind),
            kind,
            nulls: array.logical_nulls(),
            row,
        })
    }

    /// Whether two non-NULL rows certainly have the same key text, decided
    /// without writing it (integers and strings; `false` when unsure).
    pub fn same_value(&self, a: usize, b: usize) -> bool {
        match &self.kind {
            Kind::I32(x) => x.value(a) == x.value(b),
            Kind::I64(x) => x.value(a) == x.value(b),
            Kind::U32(x) => x.value(a) == x.value(b),
            Kind::U64(x) => x.value(a) == x.value(b),
            Kind::Utf8(x) => x.value(a) == x.value(b),
            Kind::LargeUtf8(x) => x.value(a) == x.value(b),
            Kind::Utf8View(x) => x.value(a) == x.value(b),
            _ => false,
        }
    }

    /// True if the value at `row` is NULL.
    pub fn is_null(&self, row: usize) -> bool {
        matches!(self.kind, Kind::Null) || self.nulls.as_ref().is_some_and(|n| n.is_null(row))
    }

    /// The logical validity of the column (`None`: no NULLs).
    pub fn nulls(&self) -> Option<&NullBuffer> {
        self.nulls.as_ref()
    }

    /// Appends the key text of `row` to `buf` (does not clear it).
    ///
    /// In unit mode a NULL is [`KeyError::Null`]; in row mode it is `\N`.
    #[inline]
    pub fn write(&self, row: usize, buf: &mut Vec<u8>) -> Result<(), KeyError> {
        if self.is_null(row) {
            return if self.row {
                buf.extend_from_slice(b"\\N");
                Ok(())
            } else {
                Err(KeyError::Null)
            };
        }
        let mut int = itoa::Buffer::new();
        match &self.kind {
            Kind::Null => unreachable!("handled as NULL"),
            Kind::I8(a) => push_i64(a.value(row).into(), buf),
            Kind::I16(a) => push_i64(a.value(row).into(), buf),
            Kind::I32(a) => push_i64(a.value(row).into(), buf),
            Kind::I64(a) => push_i64(a.value(row), buf),
            Kind::U8(a) => push_u64(a.value(row).into(), buf),
            Kind::U16(a) => push_u64(a.value(row).into(), buf),
            Kind::U32(a) => push_u64(a.value(row).into(), buf),
            Kind::U64(a) => push_u64(a.value(row), buf),
            Kind::Utf8(a) if self.plain => push_offset(a, row, buf),
            Kind::LargeUtf8(a) if self.plain => push_offset(a, row, buf),
            Kind::Utf8View(a) if push_view(a, row, self.plain, buf) => {}
            Kind::Utf8(a) => self.write_str(a.value(row), buf),
            Kind::LargeUtf8(a) => self.write_str(a.value(row), buf),
            Kind::Utf8View(a) => self.write_str(a.value(row), buf),
            Kind::Bool(a) => buf.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            Kind::Date32(a, Some(texts)) => buf.extend_from_slice(texts.of_day(a.value(row))),
            Kind::Date32(a, None) => write_date(i64::from(a.value(row)), buf),
            Kind::Date64(a) => write_date(a.value(row).div_euclid(86_400_000), buf),
            Kind::F16(a) => write_f64(a.value(row).to_f64(), buf),
            Kind::F32(a) => write_f64(f64::from(a.value(row)), buf),
            Kind::F64(a) => write_f64(a.value(row), buf),
            Kind::Dec32(a, s) => write_decimal(int.format(a.value(row)), *s, buf),
            Kind::Dec64(a, s) => write_decimal(int.format(a.value(row)), *s, buf),
            Kind::Dec128(a, s) => write_decimal(int.format(a.value(row)), *s, buf),
            Kind::Dec256(a, s) => {
                let v = a.value(row);
                match v.to_i128() {
                    Some(small) => write_decimal(int.format(small), *s, buf),
                    // Beyond i128 (more than 38 digits): arrow's Display allocates.
                    None => write_decimal(&v.to_string(), *s, buf),
                }
            }
            Kind::Timestamp(values, per_second) => write_timestamp(values[row], *per_second, buf),
        }
        Ok(())
    }

    /// Mixes the identity of every row's key text into `hashes` (one per
    /// row) without writing the texts: rows with equal key texts mix equal
    /// words (floats as f64 bits with one NaN, dates as days, strings as
    /// their keyed hash, a NULL as one constant). A pass that only needs to
    /// know whether a row's unit is among a few selected ones hashes this
    /// instead of formatting every value of every row. Each type is one
    /// loop over the column.
    pub fn hash_into(&self, keyed: &KeyHasher, hashes: &mut [u64]) {
        let nulls = self.nulls.as_ref();
        let float = |v: f64| if v.is_nan() { f64::NAN } else { v }.to_bits();
        match &self.kind {
            Kind::Null => hashes.iter_mut().for_each(|h| *h = mix(*h, NULL_WORD)),
            Kind::I8(a) => each(hashes, nulls, |r| a.value(r) as u64),
            Kind::I16(a) => each(hashes, nulls, |r| a.value(r) as u64),
            Kind::I32(a) => each(hashes, nulls, |r| a.value(r) as u64),
            Kind::I64(a) => each(hashes, nulls, |r| a.value(r) as u64),
            Kind::U8(a) => each(hashes, nulls, |r| a.value(r).into()),
            Kind::U16(a) => each(hashes, nulls, |r| a.value(r).into()),
            Kind::U32(a) => each(hashes, nulls, |r| a.value(r).into()),
            Kind::U64(a) => each(hashes, nulls, |r| a.value(r)),
            Kind::Utf8(a) => each(hashes, nulls, |r| keyed.string_word(a.value(r))),
            Kind::LargeUtf8(a) => each(hashes, nulls, |r| keyed.string_word(a.value(r))),
            Kind::Utf8View(a) => each(hashes, nulls, |r| keyed.view_word(a, r)),
            Kind::Bool(a) => each(hashes, nulls, |r| a.value(r).into()),
            Kind::Date32(a, _) => each(hashes, nulls, |r| a.value(r) as u64),
            Kind::Date64(a) => each(hashes, nulls, |r| a.value(r).div_euclid(86_400_000) as u64),
            Kind::F16(a) => each(hashes, nulls, |r| float(a.value(r).to_f64())),
            Kind::F32(a) => each(hashes, nulls, |r| float(a.value(r).into())),
            Kind::F64(a) => each(hashes, nulls, |r| float(a.value(r))),
            Kind::Timestamp(values, _) => each(hashes, nulls, |r| values[r] as u64),
            // Decimals by their text: a negative scale appends zeros, so
            // "150" is both (15, -1) and (150, 0).
            Kind::Dec32(..) | Kind::Dec64(..) | Kind::Dec128(..) | Kind::Dec256(..) => {
                each(hashes, nulls, |r| {
                    let mut text = Vec::with_capacity(40);
                    let _ = self.write(r, &mut text);
                    keyed.strings.hash_one(&text)
                });
            }
        }
    }

    fn write_str(&self, s: &str, buf: &mut Vec<u8>) {
        let escaped = |b: &u8| *b == b'\\' || *b == ROW_KEY_SEPARATOR;
        if !self.row || !s.as_bytes().iter().any(escaped) {
            buf.extend_from_slice(s.as_bytes());
            return;
        }
        for &b in s.as_bytes() {
            match b {
                b'\\' => buf.extend_from_slice(b"\\\\"),
                ROW_KEY_SEPARATOR => buf.extend_from_slice(b"\\u001f"),
                _ => buf.push(b),
            }
        }
    }
}

/// Whether some string of a column may hold a byte a row key escapes (`\\`
/// or the separator): one pass over the batch's strings when the column is
/// prepared, so that the common column is written without a test per value.
/// Views are not scanned (true: each is tested as it is written).
fn may_need_escape(kind: &Kind) -> bool {
    match kind {
        Kind::Utf8(a) => has_escape(offset_strings(a)),
        Kind::LargeUtf8(a) => has_escape(offset_strings(a)),
        // Views are tested one by one as they are written (a pass over
        // them first cost more than it saved).
        Kind::Utf8View(_) => true,
        _ => false,
    }
}

/// The bytes of an offset-buffer string array's strings, back to back.
fn offset_strings<O: OffsetSizeTrait>(a: &GenericStringArray<O>) -> &[u8] {
    let o = a.value_offsets();
    &a.value_data()[o[0].as_usize()..o[o.len() - 1].as_usize()]
}

/// Whether a string holds `\\` or the separator, which a row key escapes.
fn has_escape(bytes: &[u8]) -> bool {
    memchr::memchr2(b'\\', ROW_KEY_SEPARATOR, bytes).is_some()
}

/// Whether the string inside a view of at most 12 bytes holds `\\` or the
/// separator: the view's other bytes (the length, under 13, and the zeros
/// Arrow pads with) are neither, so it is tested as one word. Were the
/// padding not zeros, a false alarm would only send the string to the
/// general path ([`KeyColumn::write_str`]).
fn inline_has_escape(view: u128) -> bool {
    const ONES: u128 = u128::MAX / 255;
    let has_zero_byte = |x: u128| x.wrapping_sub(ONES) & !x & (ONES << 7) != 0;
    has_zero_byte(view ^ (ONES * u128::from(b'\\')))
        || has_zero_byte(view ^ (ONES * u128::from(ROW_KEY_SEPARATOR)))
}

/// Appends `window[..len]` to `buf`. A few bytes are copied as one move of
/// 16 when `window` has them, then the length is cut back: a call to memcpy
/// for each short value was a tenth of a row key's cost.
#[inline(always)]
fn push_short(window: &[u8], len: usize, buf: &mut Vec<u8>) {
    let at = buf.len();
    match window.first_chunk::<16>() {
        Some(block) if len <= 16 => {
            buf.extend_from_slice(block);
            buf.truncate(at + len);
        }
        _ => buf.extend_from_slice(&window[..len]),
    }
}

/// Appends string `row` of an offset-buffer string array, unescaped.
#[inline]
fn push_offset<O: OffsetSizeTrait>(a: &GenericStringArray<O>, row: usize, buf: &mut Vec<u8>) {
    let offsets = a.value_offsets();
    let (start, end) = (offsets[row].as_usize(), offsets[row + 1].as_usize());
    push_short(&a.value_data()[start..], end - start, buf);
}

/// Appends string `row` of a view array if it needs no escaping (`plain`:
/// none of the column's does) and returns true, else appends nothing and
/// returns false. A string of at most 12 bytes is inside its view, tested
/// and copied as one word.
#[inline]
fn push_view(a: &StringViewArray, row: usize, plain: bool, buf: &mut Vec<u8>) -> bool {
    let view = a.views()[row];
    let len = view as u32 as usize;
    if len > 12 {
        let buffer = (view >> 64) as u32 as usize;
        let offset = (view >> 96) as u32 as usize;
        let data = &a.data_buffers()[buffer].as_slice()[offset..];
        if !plain && has_escape(&data[..len]) {
            return false;
        }
        push_short(data, len, buf);
        return true;
    }
    if !plain && inline_has_escape(view) {
        return false;
    }
    let at = buf.len();
    let inline: [u8; 16] = view.to_le_bytes();
    buf.extend_from_slice(&inline[4..]);
    buf.truncate(at + len);
    true
}

/// Two decimal digits for each of 0..100.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v` in decimal, written in place two digits at a time from the
/// last (itoa writes into its own buffer, and copying its few digits out
/// was a call to memcpy per value).
fn push_u64(mut v: u64, buf: &mut Vec<u8>) {
    let len = decimal_len(v);
    let at = buf.len();
    buf.extend_from_slice(&[0; 20]);
    buf.truncate(at + len);
    let digits = &mut buf[at..];
    let mut end = len;
    let mut pair = |p: u32, end: usize| {
        let p = 2 * p as usize;
        digits[end - 2..end].copy_from_slice(&DIGIT_PAIRS[p..p + 2]);
    };
    // Four digits per 64-bit division, then their two pairs from 32 bits.
    while v >= 10_000 {
        let four = (v % 10_000) as u32;
        v /= 10_000;
        pair(four % 100, end);
        pair(four / 100, end - 2);
        end -= 4;
    }
    let mut v = v as u32;
    if v >= 100 {
        pair(v % 100, end);
        v /= 100;
    }
    if v >= 10 {
        pair(v, 2);
    } else {
        buf[at] = b'0' + v as u8;
    }
}

/// The number of decimal digits of `v`.
fn decimal_len(v: u64) -> usize {
    const POWERS: [u64; 20] = {
        let mut p = [1u64; 20];
        let mut i = 1;
        while i < 20 {
            p[i] = p[i - 1] * 10;
            i += 1;
        }
        p
    };
    // log10 from the bit length (1233/4096 ≈ log10 2), then one comparison.
    let v = v | 1;
    let bits = 64 - v.leading_zeros() as usize;
    let guess = (bits * 1233) >> 12;
    guess + 1 - usize::from(v < POWERS[guess])
}

fn push_i64(v: i64, buf: &mut Vec<u8>) {
    if v < 0 {
        buf.push(b'-');
    }
    push_u64(v.unsigned_abs(), buf);
}

/// All source columns of a statement without `unit`, prepared for row keys.
#[derive(Debug, Clone)]
pub struct RowKeys {
    columns: Vec<KeyColumn>,
}

impl RowKeys {
    /// Prepares the columns (in schema order); fails on the first column
    /// whose type has no row key text.
    pub fn new(columns: &[ArrayRef]) -> Result<Self, KeyError> {
        let columns = columns
            .iter()
            .map(|c| KeyColumn::row(c.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(RowKeys { columns })
    }

    /// Clears `buf` and writes the row key of `row` into it.
    pub fn write(&self, row: usize, buf: &mut Vec<u8>) {
        buf.clear();
        self.append(row, buf);
    }

    /// The number of columns of a row key.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Appends the text of column `column` of the row key of `row` to `buf`
    /// (as it stands in the row key: escaped, NULL as `\N`).
    pub fn append_column(&self, column: usize, row: usize, buf: &mut Vec<u8>) {
        // Row mode never fails: NULL is `\N`.
        let _ = self.columns[column].write(row, buf);
    }

    /// The hashes of the rows' keys ([`KeyColumn::hash_into`] of every
    /// column), one per row, in `hashes`.
    pub fn hash_into(&self, keyed: &KeyHasher, hashes: &mut [u64]) {
        for column in &self.columns {
            column.hash_into(keyed, hashes);
        }
    }

    /// Appends the row key of `row` to `buf`.
    pub fn append(&self, row: usize, buf: &mut Vec<u8>) {
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                buf.push(ROW_KEY_SEPARATOR);
            }
            // Row mode never fails: NULL is `\N`.
            let _ = column.write(row, buf);
        }
    }
}

/// Compares two row keys one column at a time, as their joined texts
/// compare bytewise: given the texts of one column of both keys (escaped, so
/// they never hold the separator), `None` when they are equal (compare the
/// next column), else the order of the keys. `last`: the key's last column.
pub fn compare_row_key_column(a: &[u8], b: &[u8], last: bool) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    if a == b {
        return None;
    }
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    Some(match (a.get(common), b.get(common)) {
        (Some(x), Some(y)) => x.cmp(y),
        // One text is a prefix of the other: the shorter key goes on with
        // the separator, or ends after its last column.
        (None, Some(y)) if !last => ROW_KEY_SEPARATOR.cmp(y),
        (Some(x), None) if !last => x.cmp(&ROW_KEY_SEPARATOR),
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
    })
}

/// Clears `buf` and writes the unit key text of `array[row]` into it.
///
/// Resolves the type on every call; for many rows use [`KeyColumn::unit`].
pub fn write_key(array: &dyn Array, row: usize, buf: &mut Vec<u8>) -> Result<(), KeyError> {
    buf.clear();
    KeyColumn::unit(array)?.write(row, buf)
}

/// Clears `buf` and writes the row key of `row` (all `columns` in schema
/// order joined by U+001F) into it.
///
/// Resolves the types on every call; for many rows use [`RowKeys`].
pub fn write_row_key(columns: &[ArrayRef], row: usize, buf: &mut Vec<u8>) -> Result<(), KeyError> {
    RowKeys::new(columns)?.write(row, buf);
    Ok(())
}

/// The `_stratum` text (§7): the key texts joined by `/`, with `\`, `/` and
/// `∅` inside a value escaped by a preceding `\`, NULL written `∅`; `""` for
/// no values.
pub fn stratum_text(values: &[Option<String>]) -> String {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        push_stratum_value(&mut out, i, value.as_deref());
    }
    out
}

/// Appends value `i` of a `_stratum` text to `out` (a `/` before every
/// value but the first; the value escaped, NULL as `∅`): [`stratum_text`]
/// a value at a time, without allocating.
pub fn push_stratum_value(out: &mut String, i: usize, value: Option<&str>) {
    if i > 0 {
        out.push('/');
    }
    match value {
        None => out.push('∅'),
        Some(v) => {
            for c in v.chars() {
                if matches!(c, '\\' | '/' | '∅') {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
}

/// Mixes `word(row)` of every row into `hashes` (a NULL's word for NULLs).
fn each(hashes: &mut [u64], nulls: Option<&NullBuffer>, word: impl Fn(usize) -> u64) {
    match nulls {
        None => hashes
            .iter_mut()
            .enumerate()
            .for_each(|(r, h)| *h = mix(*h, word(r))),
        Some(n) => hashes.iter_mut().enumerate().for_each(|(r, h)| {
            *h = mix(*h, if n.is_null(r) { NULL_WORD } else { word(r) });
        }),
    }
}

/// The word a NULL mixes into a key's hash.
const NULL_WORD: u64 = 0x5be8_c1a4_77d2_9f03;

/// One step of a key's hash: the folded 128-bit product of the state with
/// the next word (foldhash's and ahash's mixing step).
fn mix(h: u64, word: u64) -> u64 {
    let p = u128::from(h ^ word) * 0x9e37_79b9_7f4a_7c15_u128;
    (p as u64) ^ ((p >> 64) as u64)
}

/// A keyed hash of unit keys computed from their values (equal key texts,
/// equal hashes), seeded anew on every run so that no input can be built
/// to make two keys collide.
#[derive(Clone)]
pub struct KeyHasher {
    seed: u64,
    strings: foldhash::quality::FixedState,
    /// The start of a short string's word.
    short: u64,
}

impl Default for KeyHasher {
    fn default() -> Self {
        use std::hash::BuildHasher as _;
        let random = std::hash::RandomState::new();
        KeyHasher {
            seed: random.hash_one(0u8),
            strings: foldhash::quality::FixedState::with_seed(random.hash_one(1u8)),
            short: random.hash_one(2u8),
        }
    }
}

impl KeyHasher {
    /// `hashes` resized to `rows`, each the hash of no key words yet.
    pub fn start(&self, rows: usize, hashes: &mut Vec<u64>) {
        hashes.clear();
        hashes.resize(rows, self.seed);
    }

    /// The word a string mixes into its key's hash. A string of at most 12
    /// bytes is read as Arrow lays it out in a view (its length, then its
    /// bytes, then zeros: 16 bytes) and mixed as two words; a longer one is
    /// hashed by foldhash. Either way a function of the text alone, whatever
    /// the array type.
    fn string_word(&self, s: &str) -> u64 {
        let len = s.len();
        if len > 12 {
            return self.strings.hash_one(s);
        }
        let mut view = [0u8; 16];
        view[..4].copy_from_slice(&(len as u32).to_le_bytes());
        view[4..4 + len].copy_from_slice(s.as_bytes());
        self.short_word(u128::from_le_bytes(view))
    }

    /// [`KeyHasher::string_word`] of string `row` of a view array: a short
    /// string's word from its view, without reading the string out.
    fn view_word(&self, a: &StringViewArray, row: usize) -> u64 {
        let view = a.views()[row];
        let len = view as u32;
        if len > 12 {
            return self.strings.hash_one(a.value(row));
        }
        // The bytes after the string, zero as Arrow writes them, masked
        // to be sure.
        let kept = 32 + 8 * len;
        self.short_word(if kept == 128 {
            view
        } else {
            view & ((1 << kept) - 1)
        })
    }

    fn short_word(&self, view: u128) -> u64 {
        mix(mix(self.short, view as u64), (view >> 64) as u64)
    }

    /// The top 40 bits of a finished hash (its bits spread by one more
    /// mixing step).
    pub fn top40(&self, h: u64) -> u64 {
        mix(h, self.seed.rotate_left(32)) >> 24
    }
}

fn write_f64(v: f64, buf: &mut Vec<u8>) {
    // Rust's Display: shortest digits that read back to the same f64, never
    // in exponent form; "NaN", "inf", "-inf", "-0". Display goes through
    // core::fmt (a tenth of a row key's cost); zmij finds the same shortest
    // digits faster, and only its layout differs (`1e+20`, `1.0`).
    if !v.is_finite() {
        let _ = write!(buf, "{v}");
        return;
    }
    if write_cents(v, buf) {
        return;
    }
    let mut zmij = zmij::Buffer::new();
    let text = zmij.format_finite(v).as_bytes();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(e) => (&text[..e], parse_exponent(&text[e + 1..])),
        None => (text, 0),
    };
    // mantissa = int "." frac: its digits, the point after int's, and each
    // leading zero dropped moves the point one digit left.
    let dot = mantissa.iter().position(|&b| b == b'.');
    let mut point = dot.unwrap_or(mantissa.len()) as i32 + exponent;
    let mut digits = [0u8; 24];
    let mut len = 0;
    for &b in mantissa.iter().filter(|&&b| b != b'.') {
        if len == digits.len() {
            // Never for zmij's texts (at most 17 digits and 16 zeros).
            let _ = write!(buf, "{v}");
            return;
        }
        if len == 0 && b == b'0' {
            point -= 1;
        } else {
            digits[len] = b;
            len += 1;
        }
    }
    while len > 0 && digits[len - 1] == b'0' {
        len -= 1;
    }
    if may_tie(v, point) {
        let _ = write!(buf, "{v}");
        return;
    }
    if negative {
        buf.push(b'-');
    }
    write_plain(&digits[..len], point, buf);
}

/// Writes `v` when it is `k / 100` for an integer `|k| < 10^15` (hours,
/// prices, rates: most floats in tables have at most two decimals) and
/// returns true. The test is exact: `k / 100.0` is the double nearest to the
/// decimal `k/100`, so equal to `v` means that decimal reads back as `v`; and
/// decimals of at most 15 significant digits are farther apart than a
/// double's precision, so no shorter text does — it is Display's text. Zero
/// is left to the general path (`-0`).
fn write_cents(v: f64, buf: &mut Vec<u8>) -> bool {
    // Rounded half away from zero by truncation (`round` is a call into
    // libm on x86-64's baseline); the test below holds for any integer k.
    let c = v * 100.0;
    let k = (c + 0.5f64.copysign(c)) as i64;
    if v == 0.0 || k.unsigned_abs() >= 1_000_000_000_000_000 || k as f64 / 100.0 != v {
        return false;
    }
    let cents = k.unsigned_abs();
    if k < 0 {
        buf.push(b'-');
    }
    push_u64(cents / 100, buf);
    let (tenths, hundredths) = ((cents / 10 % 10) as u8, (cents % 10) as u8);
    if tenths != 0 || hundredths != 0 {
        buf.push(b'.');
        buf.push(b'0' + tenths);
        if hundredths != 0 {
            buf.push(b'0' + hundredths);
        }
    }
    true
}

/// Whether two shortest texts of `v` may be equally close to it (Display and
/// zmij break that tie differently: 1308548795726862.25 is `…862.3` and
/// `…862.2`). A tie between texts of d ≤ 17 digits needs an exact value of
/// d + 1 significant digits, and one of at most 14 has a unique shortest text
/// (a shorter one is ≥ 5e-14 of it away, far beyond half an ulp); integers
/// below 2^53 are their own unique shortest text.
/// `point`: where the point is in the shortest text (`0.digits × 10^point`),
/// which is v's magnitude or one above it.
fn may_tie(v: f64, point: i32) -> bool {
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (m, e) = match biased {
        0 => (fraction, -1074),
        _ => (fraction | 1 << 52, biased - 1075),
    };
    if m == 0 {
        return false;
    }
    let e = e + m.trailing_zeros() as i32;
    if e >= 0 {
        return v.abs() >= 9_007_199_254_740_992.0;
    }
    // m / 2^-e has -e digits after the point, the last a 5; with the
    // digits before it (or less the zeros after it), its significant digits,
    // within one of this estimate.
    (14..=20).contains(&(-e + point))
}

/// The exponent of a zmij text, after its `e`.
fn parse_exponent(text: &[u8]) -> i32 {
    let (sign, digits) = match text.split_first() {
        Some((b'-', rest)) => (-1, rest),
        Some((b'+', rest)) => (1, rest),
        _ => (1, text),
    };
    sign * digits.iter().fold(0, |n, &d| n * 10 + i32::from(d - b'0'))
}

/// Writes `0.digits × 10^point` without an exponent (`digits` has no leading
/// or trailing zeros; empty for zero).
fn write_plain(digits: &[u8], point: i32, buf: &mut Vec<u8>) {
    if digits.is_empty() {
        buf.push(b'0');
    } else if point <= 0 {
        buf.extend_from_slice(b"0.");
        buf.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
        buf.extend_from_slice(digits);
    } else if point as usize >= digits.len() {
        buf.extend_from_slice(digits);
        buf.extend(std::iter::repeat_n(b'0', point as usize - digits.len()));
    } else {
        let (int, frac) = digits.split_at(point as usize);
        buf.extend_from_slice(int);
        buf.push(b'.');
        buf.extend_from_slice(frac);
    }
}

/// Writes a signed integer text `digits` (as produced by itoa) as a decimal
/// with `scale` fraction digits.
fn write_decimal(digits: &str, scale: i8, buf: &mut Vec<u8>) {
    let (negative, magnitude) = match digits.strip_prefix('-') {
        Some(m) => (true, m.as_bytes()),
        None => (false, digits.as_bytes()),
    };
    if negative {
        buf.push(b'-');
    }
    if scale <= 0 {
        buf.extend_from_slice(magnitude);
        if magnitude != b"0" {
            buf.extend(std::iter::repeat_n(b'0', usize::from(scale.unsigned_abs())));
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    if magnitude.len() > scale {
        let (int, frac) = magnitude.split_at(magnitude.len() - scale);
        buf.extend_from_slice(int);
        buf.push(b'.');
        buf.extend_from_slice(frac);
    } else {
        buf.extend_from_slice(b"0.");
        buf.extend(std::iter::repeat_n(b'0', scale - magnitude.len()));
        buf.extend_from_slice(magnitude);
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push2(n: u32, buf: &mut Vec<u8>) {
    buf.push(b'0' + (n / 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

/// The texts of a batch's days, each written once: dates repeat (a column
/// of signup dates spans a few thousand days over millions of rows).
#[derive(Debug, Clone)]
pub struct DateTexts {
    first: i32,
    texts: Vec<[u8; 10]>,
}

impl DateTexts {
    /// The texts of `days`' range of days, when it is under half as many as
    /// the values (else writing each value is cheaper) and every day is of
    /// a year 0..=9999 (10 bytes).
    fn of(days: &PrimitiveArray<Date32Type>) -> Option<DateTexts> {
        let (first, last) = (min(days)?, max(days)?);
        let span = usize::try_from(i64::from(last) - i64::from(first) + 1).ok()?;
        let writable = |d: i32| (0..10_000).contains(&civil_from_days(i64::from(d)).0);
        if span > days.len() / 2 || !writable(first) || !writable(last) {
            return None;
        }
        let mut buf = Vec::with_capacity(10);
        let texts = (first..=last)
            .map(|d| {
                buf.clear();
                write_date(i64::from(d), &mut buf);
                buf.as_slice().try_into().ok()
            })
            .collect::<Option<_>>()?;
        Some(DateTexts { first, texts })
    }

    fn of_day(&self, day: i32) -> &[u8] {
        &self.texts[(day - self.first) as usize]
    }
}

fn write_date(days: i64, buf: &mut Vec<u8>) {
    let (year, month, day) = civil_from_days(days);
    if (0..10_000).contains(&year) {
        // The common case in one write.
        let y = year as u32;
        let pair = |n: u32| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        let [y1, y2] = pair(y / 100);
        let [y3, y4] = pair(y % 100);
        let [m1, m2] = pair(month);
        let [d1, d2] = pair(day);
        buf.extend_from_slice(&[y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2]);
        return;
    }
    if year < 0 {
        buf.push(b'-');
    }
    let mut int = itoa::Buffer::new();
    let y = int.format(year.unsigned_abs());
    buf.extend(std::iter::repeat_n(b'0', 4usize.saturating_sub(y.len())));
    buf.extend_from_slice(y.as_bytes());
    buf.push(b'-');
    push2(month, buf);
    buf.push(b'-');
    push2(day, buf);
}

fn write_timestamp(value: i64, per_second: i64, buf: &mut Vec<u8>) {
    let seconds = value.div_euclid(per_second);
    let nanos = value.rem_euclid(per_second) * (1_000_000_000 / per_second);
    write_date(seconds.div_euclid(86_400), buf);
    let sod = seconds.rem_euclid(86_400) as u32;
    buf.push(b'T');
    push2(sod / 3600, buf);
    buf.push(b':');
    push2(sod / 60 % 60, buf);
    buf.push(b':');
    push2(sod % 60, buf);
    if nanos != 0 {
        buf.push(b'.');
        let mut int = itoa::Buffer::new();
        let f = int.format(nanos);
        buf.extend(std::iter::repeat_n(b'0', 9 - f.len()));
        buf.extend_from_slice(f.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Date32Array, Date64Array, Decimal128Array, Decimal256Array, DictionaryArray, Float32Array,
        Float64Array, Int8Array, Int32Array, Int64Array, LargeStringArray, ListArray, NullArray,
        StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
        TimestampNanosecondArray, TimestampSecondArray, UInt8Array, UInt64Array,
    };
    use datafusion::arrow::datatypes::{Int32Type as I32, i256};
    use std::sync::Arc;

    fn unit(a: &dyn Array, row: usize) -> String {
        let mut buf = Vec::new();
        write_key(a, row, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn row_of(cols: &[ArrayRef], row: usize) -> String {
        let mut buf = b"stale".to_vec();
        write_row_key(cols, row, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn one(a: ArrayRef) -> String {
        row_of(&[a], 0)
    }

    /// Column by column, row keys compare as their joined texts do: with
    /// empty texts, prefixes, bytes below and above the separator, and keys
    /// equal up to the last column.
    #[test]
    fn row_keys_compare_column_by_column_as_joined() {
        let texts: [&[u8]; 9] = [
            b"",
            b"1",
            b"10",
            b"1\t",
            b"1\\u001f",
            b"2",
            b"\\N",
            b"a\t",
            b"\t",
        ];
        let texts: Vec<Vec<u8>> = texts
            .iter()
            .map(|t| t.to_vec())
            .chain([vec![b'1', 0x09], vec![0x09]])
            .collect();
        let mut keys: Vec<Vec<&[u8]>> = Vec::new();
        for x in &texts {
            for y in &texts {
                keys.push(vec![x.as_slice(), y.as_slice()]);
            }
        }
        let joined = |k: &[&[u8]]| k.join(&ROW_KEY_SEPARATOR);
        for a in &keys {
            for b in &keys {
                let by_column = (0..2)
                    .find_map(|c| compare_row_key_column(a[c], b[c], c == 1))
                    .unwrap_or(std::cmp::Ordering::Equal);
                assert_eq!(by_column, joined(a).cmp(&joined(b)), "{a:?} vs {b:?}");
            }
        }
    }

    /// `same_value` may say "same" only when the key texts are equal; it
    /// may say "not sure" (false) for any type.
    #[test]
    fn same_value_agrees_with_the_key_texts() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![7, 7, 8, -7])),
            Arc::new(StringArray::from(vec!["a", "a", "b", "A"])),
            Arc::new(Float64Array::from(vec![0.0, -0.0, 1.0, 1.0])),
            Arc::new(UInt64Array::from(vec![1, 1, 2, 2])),
        ];
        for c in &columns {
            let kc = KeyColumn::row(c.as_ref()).unwrap();
            let text = |row| {
                let mut buf = Vec::new();
                kc.write(row, &mut buf).unwrap();
                buf
            };
            for a in 0..4 {
                for b in 0..4 {
                    if kc.same_value(a, b) {
                        assert_eq!(text(a), text(b));
                    }
                }
            }
        }
        let ints = KeyColumn::unit(columns[0].as_ref()).unwrap();
        assert!(ints.same_value(0, 1) && !ints.same_value(0, 3));
        let floats = KeyColumn::row(columns[2].as_ref()).unwrap();
        assert!(
            !floats.same_value(2, 3),
            "floats are never taken as the same"
        );
    }

    #[test]
    fn integers() {
        assert_eq!(unit(&Int8Array::from(vec![-5]), 0), "-5");
        assert_eq!(unit(&Int8Array::from(vec![i8::MIN]), 0), "-128");
        assert_eq!(unit(&Int32Array::from(vec![0]), 0), "0");
        assert_eq!(
            unit(&Int64Array::from(vec![i64::MIN]), 0),
            "-9223372036854775808"
        );
        assert_eq!(unit(&UInt8Array::from(vec![255]), 0), "255");
        assert_eq!(
            unit(&UInt64Array::from(vec![u64::MAX]), 0),
            "18446744073709551615"
        );
        assert_eq!(
            unit(&datafusion::arrow::array::Int16Array::from(vec![-300]), 0),
            "-300"
        );
        assert_eq!(
            unit(&datafusion::arrow::array::UInt16Array::from(vec![65535]), 0),
            "65535"
        );
        assert_eq!(
            unit(
                &datafusion::arrow::array::UInt32Array::from(vec![4294967295]),
                0
            ),
            "4294967295"
        );
    }

    /// Every string layout (offsets, large offsets, views inline and in a
    /// buffer, near a buffer's end where no 16 bytes follow) and every
    /// length around the fast copies' 12 and 16 bytes, with and without
    /// bytes to escape, written as the spec's text.
    #[test]
    fn strings_of_every_layout_and_length_are_written_in_full() {
        let escape = |s: &str| s.replace('\\', "\\\\").replace('\u{1f}', "\\u001f");
        for special in ["", "\\", "\u{1f}"] {
            let texts: Vec<String> = (0..40)
                .map(|n| {
                    let mut t: String = "abcdefghijklmnopqrstuvwxyzäöü0123456789"
                        .chars()
                        .take(n)
                        .collect();
                    if n % 3 == 0 {
                        t.insert_str(t.len() / 2, special);
                    }
                    t
                })
                .collect();
            let arrays: [ArrayRef; 3] = [
                Arc::new(StringArray::from(texts.clone())),
                Arc::new(LargeStringArray::from(texts.clone())),
                Arc::new(StringViewArray::from(texts.clone())),
            ];
            for array in &arrays {
                for (row, text) in texts.iter().enumerate() {
                    assert_eq!(unit(array.as_ref(), row), *text);
                    assert_eq!(row_of(std::slice::from_ref(array), row), escape(text));
                    let sliced = array.slice(row, texts.len() - row);
                    assert_eq!(row_of(&[sliced], 0), escape(text));
                }
            }
        }
    }

    /// Integers written in place agree with Rust's Display at every length.
    #[test]
    fn integers_of_every_length_are_written_as_display_writes_them() {
        let mut values: Vec<i64> = vec![0, 1, -1, 9, 10, 99, 100, i64::MIN, i64::MAX];
        let mut power = 1i64;
        while let Some(next) = power.checked_mul(10) {
            values.extend([power - 1, power, power + 1, -power, -(power - 1)]);
            power = next;
        }
        for v in values {
            assert_eq!(unit(&Int64Array::from(vec![v]), 0), v.to_string());
            let u = v.unsigned_abs().wrapping_mul(3);
            assert_eq!(unit(&UInt64Array::from(vec![u]), 0), u.to_string());
        }
    }

    #[test]
    fn strings_and_booleans() {
        assert_eq!(unit(&StringArray::from(vec!["Zürich"]), 0), "Zürich");
        assert_eq!(unit(&LargeStringArray::from(vec!["a/b"]), 0), "a/b");
        let view = StringViewArray::from(vec!["short", "a string longer than twelve bytes"]);
        assert_eq!(unit(&view, 0), "short");
        assert_eq!(unit(&view, 1), "a string longer than twelve bytes");
        // Unit keys are not escaped.
        assert_eq!(
            unit(&StringArray::from(vec!["x\\y\u{1f}"]), 0),
            "x\\y\u{1f}"
        );
        let b = BooleanArray::from(vec![true, false]);
        assert_eq!(unit(&b, 0), "true");
        assert_eq!(unit(&b, 1), "false");
    }

    #[test]
    fn dates() {
        // Day numbers from Python: (date(y,m,d) - date(1970,1,1)).days
        let d = Date32Array::from(vec![17683, -1, 0, 2932896, -719162, -719528, -719529]);
        assert_eq!(unit(&d, 0), "2018-06-01");
        assert_eq!(unit(&d, 1), "1969-12-31");
        assert_eq!(unit(&d, 2), "1970-01-01");
        assert_eq!(unit(&d, 3), "9999-12-31");
        assert_eq!(unit(&d, 4), "0001-01-01");
        assert_eq!(unit(&d, 5), "0000-01-01");
        assert_eq!(unit(&d, 6), "-0001-12-31");
        let d = Date32Array::from(vec![2932897]);
        assert_eq!(unit(&d, 0), "10000-01-01");
        let d64 = Date64Array::from(vec![17683 * 86_400_000, -86_400_000]);
        assert_eq!(unit(&d64, 0), "2018-06-01");
        assert_eq!(unit(&d64, 1), "1969-12-31");
    }

    #[test]
    fn dates_agree_with_chrono() {
        use datafusion::arrow::temporal_conversions::date32_to_datetime;
        let mut buf = Vec::new();
        for days in (-719_162..2_932_897).step_by(97) {
            buf.clear();
            write_date(i64::from(days), &mut buf);
            let expected = date32_to_datetime(days).unwrap().date().to_string();
            assert_eq!(std::str::from_utf8(&buf).unwrap(), expected, "day {days}");
        }
    }

    /// A batch of few distinct days writes each from its table of texts:
    /// the same texts as day by day, NULLs as `\N`; a range too wide or
    /// reaching year 10000 is written day by day.
    #[test]
    fn a_batchs_day_texts_are_the_days_texts() {
        let days: Vec<Option<i32>> = (0..1_000)
            .map(|i| (i % 7 != 3).then_some(17_000 + (i * 37) % 300))
            .collect();
        let wide: Vec<Option<i32>> = vec![Some(-800_000), Some(2_932_890), None, Some(0)];
        let edge: Vec<Option<i32>> = (0..100).map(|i| Some(2_932_880 + i % 30)).collect();
        for (values, tabled) in [(days, true), (wide, false), (edge, false)] {
            let a = Date32Array::from(values.clone());
            let column = KeyColumn::row(&a).unwrap();
            assert_eq!(
                matches!(column.kind, Kind::Date32(_, Some(_))),
                tabled,
                "{values:?}"
            );
            for (row, v) in values.iter().enumerate() {
                let mut got = Vec::new();
                column.write(row, &mut got).unwrap();
                let mut want = Vec::new();
                match v {
                    Some(d) => write_date(i64::from(*d), &mut want),
                    None => want.extend_from_slice(b"\\N"),
                }
                assert_eq!(got, want, "day {v:?}");
            }
        }
    }

    #[test]
    fn unit_key_errors() {
        let mut buf = Vec::new();
        let a = Int32Array::from(vec![None, Some(1)]);
        assert_eq!(write_key(&a, 0, &mut buf), Err(KeyError::Null));
        assert!(KeyColumn::unit(&a).unwrap().is_null(0));
        for bad in [
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
            Arc::new(TimestampSecondArray::from(vec![0])),
            Arc::new(Decimal128Array::from(vec![1])),
        ] {
            let err = write_key(bad.as_ref(), 0, &mut buf).unwrap_err();
            assert!(matches!(err, KeyError::UnsupportedType { unit: true, .. }));
        }
        let err = write_key(&Float64Array::from(vec![1.0]), 0, &mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a unit column of type Float64 has no key text"
        );
    }

    #[test]
    fn dictionary_keys_use_their_values() {
        let d: DictionaryArray<I32> = vec!["b", "a", "b"].into_iter().collect();
        assert_eq!(unit(&d, 0), "b");
        assert_eq!(unit(&d, 1), "a");
    }

    #[test]
    fn floats_in_row_keys() {
        let f = |v: f64| one(Arc::new(Float64Array::from(vec![v])));
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(1.0), "1");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(1e300), format!("1{}", "0".repeat(300)));
        assert_eq!(f(1e-7), "0.0000001");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(-0.0), "-0");
        // Float32 is widened to f64 first.
        assert_eq!(one(Arc::new(Float32Array::from(vec![0.5f32]))), "0.5");
        assert_eq!(
            one(Arc::new(Float32Array::from(vec![0.1f32]))),
            "0.10000000149011612"
        );
        let half = cast(&Float64Array::from(vec![1.5]), &DataType::Float16).unwrap();
        assert_eq!(one(half), "1.5");
    }

    #[test]
    fn decimals_in_row_keys() {
        let dec = |v: i128, p: u8, s: i8| {
            one(Arc::new(
                Decimal128Array::from(vec![v])
                    .with_precision_and_scale(p, s)
                    .unwrap(),
            ))
        };
        assert_eq!(dec(12345, 10, 2), "123.45");
        assert_eq!(dec(-150, 10, 2), "-1.50");
        assert_eq!(dec(-5, 10, 2), "-0.05");
        assert_eq!(dec(0, 10, 2), "0.00");
        assert_eq!(dec(7, 10, 0), "7");
        assert_eq!(dec(12, 10, -2), "1200");
        assert_eq!(dec(0, 10, -2), "0");
        let big = Decimal256Array::from(vec![i256::from_i128(-12345)])
            .with_precision_and_scale(40, 3)
            .unwrap();
        assert_eq!(one(Arc::new(big)), "-12.345");
        let huge = Decimal256Array::from(vec![i256::from_parts(0, 1)])
            .with_precision_and_scale(76, 2)
            .unwrap();
        // 2^128 = 340282366920938463463374607431768211456
        assert_eq!(
            one(Arc::new(huge)),
            "3402823669209384634633746074317682114.56"
        );
    }

    #[test]
    fn timestamps_in_row_keys() {
        // 2018-06-01T12:34:56 = 1527856496 s (Python calendar.timegm)
        let s = 1_527_856_496i64;
        assert_eq!(
            one(Arc::new(TimestampSecondArray::from(vec![s]))),
            "2018-06-01T12:34:56"
        );
        assert_eq!(
            one(Arc::new(TimestampMillisecondArray::from(vec![
                s * 1000 + 5
            ]))),
            "2018-06-01T12:34:56.005000000"
        );
        assert_eq!(
            one(Arc::new(TimestampMicrosecondArray::from(vec![
                s * 1_000_000
            ]))),
            "2018-06-01T12:34:56"
        );
        assert_eq!(
            one(Arc::new(TimestampNanosecondArray::from(vec![
                s * 1_000_000_000 + 123_456_789
            ]))),
            "2018-06-01T12:34:56.123456789"
        );
        // Before the epoch: -1 ms is 1969-12-31T23:59:59.999.
        assert_eq!(
            one(Arc::new(TimestampMillisecondArray::from(vec![-1]))),
            "1969-12-31T23:59:59.999000000"
        );
        // The time zone is ignored: the UTC instant is written.
        let tz = TimestampSecondArray::from(vec![s]).with_timezone("Europe/Zurich");
        assert_eq!(one(Arc::new(tz)), "2018-06-01T12:34:56");
        // A sliced array keeps its offset.
        let sliced = TimestampSecondArray::from(vec![0, s]).slice(1, 1);
        assert_eq!(one(Arc::new(sliced)), "2018-06-01T12:34:56");
    }

    #[test]
    fn floats_are_written_as_display_writes_them() {
        // Every layout zmij has (plain, `e+` and `e-`, `.0`),
        // every magnitude, subnormals, and a million random bit patterns.
        let mut values = vec![
            0.0, -0.0, 1.0, -1.0, 0.1, 1e-7, 1.5e-7, 1e15, 1e16, 1e17, 1e20,
        ];
        values.extend([
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            5e-324,
            123.456,
        ]);
        values.extend((-330..310).map(|e| 10f64.powi(e)));
        values.extend((-330..310).map(|e| 1.234_567_890_123_456_7 * 10f64.powi(e)));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        values.extend((0..1_000_000).map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            f64::from_bits(z ^ (z >> 31))
        }));
        // Values whose exact text is short: where ties between shortest texts are.
        values.extend((0..200_000u64).flat_map(|i| {
            let k = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64;
            [
                k + 0.25,
                k / 8.0,
                k / 1024.0,
                (k + 0.5) * 1e-3,
                5_234_195_182_907_449.0 / 4.0, // 1308548795726862.25: a tie
            ]
        }));
        values.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
        // Cents (write_cents): every two-decimal value of a range, both
        // signs, huge ones near its limit, and sums that are not cents.
        values.extend((-200_000..200_000).map(|k| f64::from(k) / 100.0));
        values.extend((0..100_000u64).flat_map(|i| {
            let k = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 14) as f64;
            [k / 100.0, -k / 100.0, (k + 0.5) / 100.0, 1e13 + k / 100.0]
        }));
        values.extend([
            0.07,
            0.1 + 0.2,
            999_999_999_999.99,
            9_999_999_999_999.99,
            1e13 - 0.01,
        ]);
        let mut buf = Vec::new();
        for v in values {
            buf.clear();
            write_f64(v, &mut buf);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), format!("{v}"), "{v:e}");
        }
    }

    #[test]
    fn dates_of_every_era_are_written_in_full() {
        let mut buf = Vec::new();
        for (days, text) in [
            (0, "1970-01-01"),
            (-719_528, "0000-01-01"),
            (-719_529, "-0001-12-31"),
            (2_932_896, "9999-12-31"),
            (2_932_897, "10000-01-01"),
            (17_683, "2018-06-01"),
        ] {
            buf.clear();
            write_date(days, &mut buf);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), text);
        }
    }

    #[test]
    fn row_keys_join_escape_and_null() {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![Some(1), None])),
            Arc::new(StringArray::from(vec![Some("a\\b\u{1f}c"), Some("\\N")])),
            Arc::new(Date32Array::from(vec![Some(17683), None])),
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(NullArray::new(2)),
        ];
        assert_eq!(
            row_of(&cols, 0),
            "1\u{1f}a\\\\b\\u001fc\u{1f}2018-06-01\u{1f}true\u{1f}\\N"
        );
        assert_eq!(
            row_of(&cols, 1),
            "\\N\u{1f}\\\\N\u{1f}\\N\u{1f}\\N\u{1f}\\N"
        );
        let keys = RowKeys::new(&cols).unwrap();
        let mut buf = Vec::new();
        keys.write(1, &mut buf);
        assert_eq!(buf, row_of(&cols, 1).as_bytes());
    }

    /// The hash from values stands for the key text: rows of one column
    /// hash alike exactly when their row key texts are equal (NaNs of any
    /// payload, Date64 times of one day, decimals of a negative scale
    /// written with zeros, strings against NULL and escapes), checked over
    /// every pair of rows.
    #[test]
    fn value_hashes_agree_with_row_key_texts() {
        let nan2 = f64::from_bits(f64::NAN.to_bits() | 1);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![
                Some(f64::NAN),
                Some(nan2),
                Some(-f64::NAN),
                Some(0.0),
                Some(-0.0),
                Some(0.1),
                None,
            ])),
            Arc::new(Float32Array::from(vec![Some(0.1f32), Some(f32::NAN), None])),
            Arc::new(Date64Array::from(vec![
                Some(0),
                Some(3_600_000),
                Some(86_400_000),
                Some(-1),
                None,
            ])),
            Arc::new(
                Decimal128Array::from(vec![Some(15), Some(150), Some(0), Some(-15), None])
                    .with_precision_and_scale(20, -1)
                    .unwrap(),
            ),
            Arc::new(
                Decimal128Array::from(vec![Some(150), Some(15), Some(-5), None])
                    .with_precision_and_scale(20, 2)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(vec![
                Some("\\N"),
                Some("\\N"),
                Some(""),
                Some("a\u{1f}b"),
                None,
            ])),
            Arc::new(Int64Array::from(vec![Some(-1), Some(0), Some(-1), None])),
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(0), None])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1),
                Some(1_000),
                None,
            ])),
        ];
        let keyed = KeyHasher::default();
        for column in &columns {
            let key = KeyColumn::row(column.as_ref()).unwrap();
            let mut hashes = Vec::new();
            keyed.start(column.len(), &mut hashes);
            key.hash_into(&keyed, &mut hashes);
            let texts: Vec<Vec<u8>> = (0..column.len())
                .map(|row| {
                    let mut text = Vec::new();
                    key.write(row, &mut text).unwrap();
                    text
                })
                .collect();
            for a in 0..column.len() {
                for b in 0..column.len() {
                    assert_eq!(
                        texts[a] == texts[b],
                        hashes[a] == hashes[b],
                        "{:?} rows {a} and {b}: {:?} and {:?}",
                        column.data_type(),
                        String::from_utf8_lossy(&texts[a]),
                        String::from_utf8_lossy(&texts[b]),
                    );
                }
            }
        }
    }

    /// A string's hash is a function of its text, whatever the array type
    /// holds it (short strings are read from a view's layout): the same
    /// strings in every string type hash the same, different ones differ.
    #[test]
    fn string_hashes_agree_across_array_types() {
        let texts: Vec<String> = (0..20)
            .flat_map(|n| ["", "\0", "é"].map(|tail| format!("{}{tail}", "xy".repeat(n / 2))))
            .collect();
        let arrays: [ArrayRef; 4] = [
            Arc::new(StringArray::from(texts.clone())),
            Arc::new(LargeStringArray::from(texts.clone())),
            Arc::new(StringViewArray::from(texts.clone())),
            Arc::new(DictionaryArray::<I32>::new(
                Int32Array::from_iter_values((0..texts.len() as i32).rev()),
                Arc::new(StringViewArray::from_iter_values(texts.iter().rev())),
            )),
        ];
        let keyed = KeyHasher::default();
        let hashes: Vec<Vec<u64>> = arrays
            .iter()
            .map(|a| {
                let mut hashes = Vec::new();
                keyed.start(a.len(), &mut hashes);
                KeyColumn::unit(a.as_ref())
                    .unwrap()
                    .hash_into(&keyed, &mut hashes);
                hashes
            })
            .collect();
        for other in &hashes[1..] {
            assert_eq!(&hashes[0], other);
        }
        let distinct: std::collections::HashSet<&String> = texts.iter().collect();
        let distinct_hashes: std::collections::HashSet<u64> = hashes[0].iter().copied().collect();
        assert_eq!(distinct.len(), distinct_hashes.len());
    }

    /// Every column of a row key goes into its hash, in order.
    #[test]
    fn row_key_hashes_mix_every_column() {
        let keyed = KeyHasher::default();
        let hash = |cols: Vec<ArrayRef>| {
            let mut hashes = Vec::new();
            keyed.start(1, &mut hashes);
            RowKeys::new(&cols).unwrap().hash_into(&keyed, &mut hashes);
            hashes[0]
        };
        let ab = hash(vec![
            Arc::new(StringArray::from(vec!["ab"])),
            Arc::new(StringArray::from(vec!["c"])),
        ]);
        let a_bc = hash(vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["bc"])),
        ]);
        let swapped = hash(vec![
            Arc::new(StringArray::from(vec!["c"])),
            Arc::new(StringArray::from(vec!["ab"])),
        ]);
        assert_ne!(ab, a_bc);
        assert_ne!(ab, swapped);
        let null_then_one = hash(vec![
            Arc::new(Int64Array::from(vec![None])),
            Arc::new(Int64Array::from(vec![Some(1)])),
        ]);
        let one_then_null = hash(vec![
            Arc::new(Int64Array::from(vec![Some(1)])),
            Arc::new(Int64Array::from(vec![None])),
        ]);
        assert_ne!(null_then_one, one_then_null);
    }

    #[test]
    fn row_key_rejects_nested_types() {
        let list = ListArray::from_iter_primitive::<I32, _, _>(vec![Some(vec![Some(1)])]);
        let cols: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(vec![1])), Arc::new(list)];
        let err = write_row_key(&cols, 0, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, KeyError::UnsupportedType { unit: false, .. }));
        assert!(
            err.to_string().starts_with("a column of type List("),
            "{err}"
        );
        assert!(!is_row_key_type(&DataType::Binary));
        assert!(is_row_key_type(&DataType::Float64));
        assert!(!is_unit_key_type(&DataType::Float64));
        assert!(is_unit_key_type(&DataType::Utf8View));
    }

    #[test]
    fn stratum_texts() {
        let s = |v: &[Option<&str>]| {
            stratum_text(&v.iter().map(|x| x.map(String::from)).collect::<Vec<_>>())
        };
        assert_eq!(s(&[]), "");
        assert_eq!(s(&[Some("north")]), "north");
        assert_eq!(s(&[Some("north"), Some("2018-06-01")]), "north/2018-06-01");
        assert_eq!(s(&[Some("a/b")]), "a\\/b");
        assert_eq!(s(&[Some("∅")]), "\\∅");
        assert_eq!(s(&[Some("x\\y")]), "x\\\\y");
        assert_eq!(s(&[None]), "∅");
        assert_eq!(s(&[Some("a/b"), None, Some("x\\y")]), "a\\/b/∅/x\\\\y");
        assert_eq!(s(&[Some("")]), "");
        assert_eq!(s(&[Some(""), Some("")]), "/");
    }
}

//! The draw (docs/spec.md §6): `r` = first 16 hex digits of
//! `md5(D ":" k)`, the stratum start = first 8 hex digits of `md5(D ":" s)`.
//!
//! # Design
//!
//! Draws are `u64`s: the first 8 digest bytes read big-endian, so comparing
//! draws as integers is the same as comparing the spec's hex strings (and
//! [`draw_hex`] gives those strings back). No allocation happens per row: a
//! [`Drawer`] feeds `D ":"` into an MD5 state once, and each key clones that
//! state (a small memcpy) and feeds the key bytes; keys are written by
//! [`crate::keys`] into one reused buffer. The only per-column allocation is
//! the output array.
//!
//! [`draw_udf`] exposes the draw to SQL as `strat_draw(seed, key)`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use md5::{Digest, Md5};
use strat_md5_lanes::{Backend, Block, LANES};

use crate::keys::{KeyColumn, KeyError, RowKeys, is_unit_key_type};

/// MD5 state primed with `D ":"` for one seed.
#[derive(Clone)]
pub struct Drawer {
    primed: Md5,
    /// `D ":"` (at most 20 bytes: a seed has at most 19 digits).
    prefix: [u8; 20],
    prefix_len: usize,
    /// The MD5 lanes' widest form this CPU runs, chosen once.
    lanes: Backend,
}

/// A draw from the first two words of an MD5 state: the first 8 digest
/// bytes (little-endian words), read big-endian.
fn draw_of(a: u32, b: u32) -> u64 {
    (u64::from(a.swap_bytes()) << 32) | u64::from(b.swap_bytes())
}

/// Keys whose message is longer than this many MD5 blocks are hashed one
/// by one (a row key of a wide table); shorter ones [`LANES`] at a time.
const LANE_BLOCKS: usize = 4;

/// Messages of one length in blocks, gathered until [`LANES`] of them can
/// be compressed side by side.
struct Pending {
    /// `words[block][word][lane]`.
    words: Vec<Block>,
    /// Where each lane's draw goes in the output.
    places: [usize; LANES],
    filled: usize,
    lanes: Backend,
}

impl Pending {
    fn new(blocks: usize, lanes: Backend) -> Self {
        Pending {
            words: vec![[[0; LANES]; 16]; blocks],
            places: [0; LANES],
            filled: 0,
            lanes,
        }
    }

    /// Adds a padded message of this batch's length, whose draw goes to
    /// `out[place]`; full lanes are hashed at once.
    fn add(&mut self, msg: &[u8], place: usize, out: &mut [u64]) {
        for (block, bytes) in self.words.iter_mut().zip(msg.chunks_exact(64)) {
            for (w, chunk) in block.iter_mut().zip(bytes.chunks_exact(4)) {
                w[self.filled] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            }
        }
        self.places[self.filled] = place;
        self.filled += 1;
        if self.filled == LANES {
            self.flush(out);
        }
    }

    /// Hashes the messages gathered (the unfilled lanes hash stale words
    /// whose draws are not used).
    fn flush(&mut self, out: &mut [u64]) {
        if self.filled == 0 {
            return;
        }
        let mut state = strat_md5_lanes::INIT;
        for block in &self.words {
            self.lanes.compress(&mut state, block);
        }
        for (l, &place) in self.places[..self.filled].iter().enumerate() {
            out[place] = draw_of(state[0][l], state[1][l]);
        }
        self.filled = 0;
    }
}

impl Drawer {
    pub fn new(seed: u64) -> Self {
        let mut itoa = itoa::Buffer::new();
        let digits = itoa.format(seed).as_bytes();
        let mut primed = Md5::new();
        primed.update(digits);
        primed.update(b":");
        let mut prefix = [0u8; 20];
        prefix[..digits.len()].copy_from_slice(digits);
        prefix[digits.len()] = b':';
        Drawer {
            primed,
            prefix,
            prefix_len: digits.len() + 1,
            lanes: Backend::best(),
        }
    }

    /// The message `D ":" key` padded to one MD5 block, if it fits (at most
    /// 55 bytes), built on the stack.
    fn one_block(&self, key: &[u8]) -> Option<[u8; 64]> {
        let n = self.prefix_len + key.len();
        if n > 55 {
            return None;
        }
        let mut block = [0u8; 64];
        block[..self.prefix_len].copy_from_slice(&self.prefix[..self.prefix_len]);
        block[self.prefix_len..n].copy_from_slice(key);
        block[n] = 0x80;
        block[56..].copy_from_slice(&(n as u64 * 8).to_le_bytes());
        Some(block)
    }

    /// The draw of a key whose message fits in one MD5 block: the block is
    /// compressed once, with no hasher state to copy.
    fn draw_one_block(&self, key: &[u8]) -> Option<u64> {
        let block = self.one_block(key)?;
        let mut state = strat_md5_lanes::IV;
        md5::block_api::compress(&mut state, &[block]);
        Some(draw_of(state[0], state[1]))
    }

    /// The message `D ":" key` padded as RFC 1321 says (`0x80`, zeros,
    /// the bit length), written over `msg` (a fixed-size array: zeroed and
    /// filled without a call to memset per key); its length in blocks, or
    /// None if longer than [`LANE_BLOCKS`].
    fn padded(&self, key: &[u8], msg: &mut [u8; LANE_BLOCKS * 64]) -> Option<usize> {
        let n = self.prefix_len + key.len();
        let blocks = (n + 8) / 64 + 1;
        if blocks > LANE_BLOCKS {
            return None;
        }
        *msg = [0; LANE_BLOCKS * 64];
        msg[..20].copy_from_slice(&self.prefix);
        msg[self.prefix_len..n].copy_from_slice(key);
        msg[n] = 0x80;
        msg[blocks * 64 - 8..blocks * 64].copy_from_slice(&(n as u64 * 8).to_le_bytes());
        Some(blocks)
    }

    /// The draws of many keys, `keys[ends[i-1]..ends[i]]` (from 0), appended
    /// to `out`. Keys are hashed [`LANES`] at a time, interleaved, with
    /// other keys of as many MD5 blocks (a unit id takes one block, a row
    /// key of a members table two); keys past [`LANE_BLOCKS`] one by one.
    pub fn draw_many(&self, keys: &[u8], ends: &[usize], out: &mut Vec<u64>) {
        let first = out.len();
        out.resize(first + ends.len(), 0);
        let mut pending: Vec<Pending> = (1..=LANE_BLOCKS)
            .map(|blocks| Pending::new(blocks, self.lanes))
            .collect();
        let mut msg = [0; LANE_BLOCKS * 64];
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            let key = &keys[start..end];
            start = end;
            match self.padded(key, &mut msg) {
                Some(blocks) => pending[blocks - 1].add(&msg[..blocks * 64], first + i, out),
                None => out[first + i] = self.draw(key),
            }
        }
        for p in &mut pending {
            p.flush(out);
        }
    }

    /// The full digest of `D ":" text`.
    pub fn digest(&self, text: &[u8]) -> [u8; 16] {
        let mut h = self.primed.clone();
        h.update(text);
        h.finalize().into()
    }

    /// The draw `r` of a key text.
    pub fn draw(&self, key: &[u8]) -> u64 {
        if let Some(r) = self.draw_one_block(key) {
            return r;
        }
        let d = self.digest(key);
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// The stratum start `U` (the spec's `u_h` is `U / 2^32`).
    pub fn stratum_start(&self, stratum_text: &str) -> u32 {
        let d = self.digest(stratum_text.as_bytes());
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }
}

/// The draw of key text `key` under `seed`: the first 8 bytes of
/// `md5(seed ":" key)` big-endian.
pub fn draw(seed: u64, key: &[u8]) -> u64 {
    Drawer::new(seed).draw(key)
}

/// The stratum start `U` of a `_stratum` text: the first 4 bytes of
/// `md5(seed ":" text)` big-endian.
pub fn stratum_start(seed: u64, stratum_text: &str) -> u32 {
    Drawer::new(seed).stratum_start(stratum_text)
}

/// A draw as the spec writes it: 16 lowercase hex digits.
pub fn draw_hex(r: u64) -> String {
    format!("{r:016x}")
}

/// The draws of a unit-key column; NULL keys give NULL draws.
pub fn draw_column(seed: u64, keys: &dyn Array) -> Result<UInt64Array, KeyError> {
    let column = KeyColumn::unit(keys)?;
    let drawer = Drawer::new(seed);
    let mut buf = Vec::with_capacity(64);
    let values = (0..keys.len())
        .map(|row| {
            if column.is_null(row) {
                return 0;
            }
            buf.clear();
            // Cannot fail: the type was checked and the row is not NULL.
            let _ = column.write(row, &mut buf);
            drawer.draw(&buf)
        })
        .collect::<Vec<u64>>();
    Ok(UInt64Array::new(values.into(), column.nulls().cloned()))
}

/// The draws of row keys (a statement without `unit`): one per row of
/// `columns`, which are all source columns in schema order. Fails only on a
/// column type with no row key text.
pub fn draw_rows(seed: u64, columns: &[ArrayRef]) -> Result<UInt64Array, KeyError> {
    let keys = RowKeys::new(columns)?;
    let rows = columns.first().map_or(0, |c| c.len());
    let (mut texts, mut ends) = (Vec::with_capacity(rows * 64), Vec::with_capacity(rows));
    for row in 0..rows {
        keys.append(row, &mut texts);
        ends.push(texts.len());
    }
    let mut draws = Vec::with_capacity(rows);
    Drawer::new(seed).draw_many(&texts, &ends, &mut draws);
    Ok(UInt64Array::from(draws))
}

/// `strat_draw(seed, key) -> UInt64`: the draw of a unit key. `seed` is a
/// constant integer in 0..=2^63−1; `key` is any unit-key type (integers,
/// Utf8/LargeUtf8/Utf8View, Date32/Date64, Boolean). A NULL key gives NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StratDraw {
    signature: Signature,
}

impl Default for StratDraw {
    fn default() -> Self {
        StratDraw {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// The `strat_draw` UDF, ready for `SessionContext::register_udf`.
pub fn draw_udf() -> ScalarUDF {
    ScalarUDF::from(StratDraw::default())
}

fn seed_of(value: &ScalarValue) -> Result<u64> {
    let seed = match value {
        ScalarValue::Int8(Some(v)) => i64::from(*v),
        ScalarValue::Int16(Some(v)) => i64::from(*v),
        ScalarValue::Int32(Some(v)) => i64::from(*v),
        ScalarValue::Int64(Some(v)) => *v,
        ScalarValue::UInt8(Some(v)) => i64::from(*v),
        ScalarValue::UInt16(Some(v)) => i64::from(*v),
        ScalarValue::UInt32(Some(v)) => i64::from(*v),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).unwrap_or(-1),
        other => return exec_err!("strat_draw: the seed must be a non-NULL integer, got {other}"),
    };
    match u64::try_from(seed) {
        Ok(seed) => Ok(seed),
        Err(_) => exec_err!("strat_draw: the seed must be in 0..=9223372036854775807"),
    }
}

impl ScalarUDFImpl for StratDraw {
    fn name(&self) -> &str {
        "strat_draw"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [seed, key] = arg_types else {
            return plan_err!("strat_draw takes 2 arguments (seed, key)");
        };
        if !seed.is_integer() {
            return plan_err!("strat_draw: the seed must be an integer, got {seed}");
        }
        if !is_unit_key_type(key) {
            return plan_err!("strat_draw: a key of type {key} has no key text");
        }
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [seed, key] = args.args.as_slice() else {
            return exec_err!("strat_draw takes 2 arguments (seed, key)");
        };
        let ColumnarValue::Scalar(seed) = seed else {
            return exec_err!("strat_draw: the seed must be a constant");
        };
        let seed = seed_of(seed)?;
        let draws = |keys: &dyn Array| -> Result<UInt64Array> {
            draw_column(seed, keys).or_else(|e| exec_err!("strat_draw: {e}"))
        };
        match key {
            ColumnarValue::Array(keys) => Ok(ColumnarValue::Array(Arc::new(draws(keys)?))),
            ColumnarValue::Scalar(key) => {
                let out = draws(key.to_array()?.as_ref())?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many keys at once (lanes of keys of as many blocks, and one by one
    /// past `LANE_BLOCKS`) give the draws one key at a time gives: every key
    /// length from 0 to 300 (one to six blocks, interleaved), batches not a
    /// multiple of the lanes, and several seeds.
    #[test]
    fn many_draws_equal_single_draws() {
        for seed in [0u64, 7, 20180602, i64::MAX as u64] {
            let drawer = Drawer::new(seed);
            let mut keys = Vec::new();
            let mut ends = Vec::new();
            for len in (0..=300usize).chain((0..=300).rev()) {
                for variant in 0..3u8 {
                    keys.extend(
                        (0..len).map(|i| b'!' + ((i * 7 + len + variant as usize) % 90) as u8),
                    );
                    ends.push(keys.len());
                }
            }
            for take in [0, 1, LANES - 1, LANES, LANES + 1, ends.len()] {
                let mut out = vec![42];
                drawer.draw_many(&keys, &ends[..take], &mut out);
                assert_eq!(out.len(), take + 1);
                assert_eq!(out[0], 42, "what was in `out` stays");
                let mut start = 0;
                for (i, &end) in ends[..take].iter().enumerate() {
                    assert_eq!(
                        out[i + 1],
                        drawer.draw(&keys[start..end]),
                        "seed {seed}, key {i}"
                    );
                    start = end;
                }
            }
        }
    }

    #[test]
    fn one_block_draws_equal_the_hasher_on_both_sides_of_the_block_boundary() {
        for seed in [0u64, 7, 20180601, i64::MAX as u64] {
            let d = Drawer::new(seed);
            for len in 0..=120 {
                let key: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                let full = d.digest(&key);
                let want = u64::from_be_bytes(full[..8].try_into().unwrap());
                assert_eq!(d.draw(&key), want, "seed {seed}, key length {len}");
            }
        }
    }
    use datafusion::arrow::array::{
        AsArray, BooleanArray, Date32Array, Float64Array, Int8Array, Int64Array, StringArray,
        StringViewArray, UInt64Array,
    };
    use datafusion::arrow::datatypes::{Field, Schema, UInt64Type};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    // Every expected value below is Python's hashlib.md5(text.encode()).hexdigest().

    #[test]
    fn draw_matches_md5_vectors() {
        // md5("1:42") = a15a53f9499ea49862040e62fd86bcc1
        assert_eq!(draw(1, b"42"), 0xa15a53f9499ea498);
        // md5("7:42") = ad177c67bdafbc3743d61c3bd5840b0e
        assert_eq!(draw(7, b"42"), 0xad177c67bdafbc37);
        // md5("0:42") = a9a14c524890795c802601d3b040706a
        assert_eq!(draw(0, b"42"), 0xa9a14c524890795c);
        // md5("9223372036854775807:42") = 1badbe1dadcb7ece19357673a3396457
        assert_eq!(draw(i64::MAX as u64, b"42"), 0x1badbe1dadcb7ece);
        // md5("1:Zürich") = d57400c700382c62a7db78a8fcef70a7
        assert_eq!(draw(1, "Zürich".as_bytes()), 0xd57400c700382c62);
        // md5("3:-5") = 29d6be1673fd590c326f2cd7d9370cc8
        assert_eq!(draw(3, b"-5"), 0x29d6be1673fd590c);
        // md5("5:2018-06-01") = 3ee76cef8976e0a2e7bc8998733b6174
        assert_eq!(draw(5, b"2018-06-01"), 0x3ee76cef8976e0a2);
        // md5("1:") = 3afcdbfeb6ecfbdd0ba628696e3cc163
        assert_eq!(draw(1, b""), 0x3afcdbfeb6ecfbdd);
        assert_eq!(
            Drawer::new(7).digest(b"42"),
            [
                0xad, 0x17, 0x7c, 0x67, 0xbd, 0xaf, 0xbc, 0x37, 0x43, 0xd6, 0x1c, 0x3b, 0xd5, 0x84,
                0x0b, 0x0e
            ]
        );
    }

    #[test]
    fn stratum_start_matches_md5_vectors() {
        assert_eq!(stratum_start(1, "42"), 0xa15a53f9);
        // md5("1:north/2018-06-01") = f935529cd7249284a526902022846e59
        assert_eq!(stratum_start(1, "north/2018-06-01"), 0xf935529c);
        // md5("42:a\\/b/∅") = c47da3537dee4f9dff0f2f33d37fe0a2
        let s = crate::keys::stratum_text(&[Some("a/b".into()), None]);
        assert_eq!(s, "a\\/b/∅");
        assert_eq!(stratum_start(42, &s), 0xc47da353);
    }

    #[test]
    fn hex_order_is_integer_order() {
        assert_eq!(draw_hex(0xa15a53f9499ea498), "a15a53f9499ea498");
        assert_eq!(draw_hex(0x1b), "000000000000001b");
        let mut draws: Vec<u64> = (0..200)
            .map(|i: i32| draw(9, i.to_string().as_bytes()))
            .collect();
        let mut hexes: Vec<String> = draws.iter().map(|&r| draw_hex(r)).collect();
        draws.sort_unstable();
        hexes.sort();
        assert_eq!(
            draws.iter().map(|&r| draw_hex(r)).collect::<Vec<_>>(),
            hexes
        );
    }

    #[test]
    fn draw_column_unit_keys() {
        // md5("3:-5") = 29d6be16..., md5("5:1969-12-31") = 3004e075d32ce0f7...
        let ints = Int8Array::from(vec![Some(-5), None]);
        let out = draw_column(3, &ints).unwrap();
        assert_eq!(out.value(0), 0x29d6be1673fd590c);
        assert!(out.is_null(1));
        let dates = Date32Array::from(vec![17683, -1]);
        let out = draw_column(5, &dates).unwrap();
        assert_eq!(
            out.values().as_ref(),
            &[0x3ee76cef8976e0a2, 0x3004e075d32ce0f7]
        );
        // md5("2:true") = 8f016cc6390e51b61543fb31e61612aa
        let out = draw_column(2, &BooleanArray::from(vec![true])).unwrap();
        assert_eq!(out.value(0), 0x8f016cc6390e51b6);
        // md5("1:Zürich") = d57400c700382c62...
        let out = draw_column(1, &StringViewArray::from(vec!["Zürich"])).unwrap();
        assert_eq!(out.value(0), 0xd57400c700382c62);
        assert!(draw_column(1, &Float64Array::from(vec![1.0])).is_err());
    }

    #[test]
    fn draw_rows_row_keys() {
        // Row 0 key: "1" US "\N" US "x\\y"; md5("7:" + key) = daf36810e56d13c0...
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec![None::<&str>])),
            Arc::new(StringArray::from(vec!["x\\y"])),
        ];
        assert_eq!(draw_rows(7, &cols).unwrap().value(0), 0xdaf36810e56d13c0);
        // Key: "2" US "p\u001fq" US "0.1"; md5 = d0978258aabbbc08...
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(StringArray::from(vec!["p\u{1f}q"])),
            Arc::new(Float64Array::from(vec![0.1])),
        ];
        assert_eq!(draw_rows(7, &cols).unwrap().value(0), 0xd0978258aabbbc08);
        assert_eq!(draw_rows(7, &[]).unwrap().len(), 0);
    }

    #[tokio::test]
    async fn udf_in_sql_matches_draw() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("name_v", DataType::Utf8View, true),
            Field::new("d", DataType::Date32, true),
            Field::new("u", DataType::UInt64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(-1), None])),
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
                Arc::new(StringViewArray::from(vec![
                    Some("short"),
                    Some("a string longer than twelve bytes"),
                    None,
                ])),
                Arc::new(Date32Array::from(vec![Some(17683), Some(-1), None])),
                Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(0), None])),
            ],
        )?;
        let ctx = SessionContext::new();
        ctx.register_udf(draw_udf());
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
        let sql = "SELECT strat_draw(7, id), strat_draw(7, name), strat_draw(7, name_v), \
                   strat_draw(5, d), strat_draw(7, u) FROM t ORDER BY id NULLS LAST";
        let batches = ctx.sql(sql).await?.collect().await?;
        let out = &batches[0];
        assert_eq!(out.num_rows(), 3);
        let col = |i: usize| out.column(i).as_primitive::<UInt64Type>().clone();
        let expected = [
            // md5("7:-1") = f11cba32..., md5("7:1") = 6dd6c9f6...
            [Some(0xf11cba323161237c_u64), Some(0x6dd6c9f6fa7d73bb), None],
            // md5("7:b") = a50d78f2..., md5("7:a") = 6ff38820...
            [Some(0xa50d78f29fdb1c5d), Some(0x6ff38820cf40c6a4), None],
            // md5("7:a string longer than twelve bytes"), md5("7:short")
            [Some(0x8810daf0ef9eeda8), Some(0xa9bc51b3a95d73d3), None],
            // md5("5:1969-12-31"), md5("5:2018-06-01")
            [Some(0x3004e075d32ce0f7), Some(0x3ee76cef8976e0a2), None],
            // md5("7:0"), md5("7:18446744073709551615")
            [Some(0xdd27b8f2338df455), Some(0xad7699bffe20699b), None],
        ];
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(col(i).iter().collect::<Vec<_>>(), want, "column {i}");
        }

        // Scalar keys, both string types: md5("1:42") = a15a53f9499ea498...
        let sql = "SELECT strat_draw(1, '42'), strat_draw(1, 42), \
                   strat_draw(1, arrow_cast('42', 'Utf8View'))";
        let batches = ctx.sql(sql).await?.collect().await?;
        for i in 0..3 {
            assert_eq!(
                batches[0].column(i).as_primitive::<UInt64Type>().value(0),
                0xa15a53f9499ea498,
                "column {i}"
            );
        }

        // Type and seed errors.
        assert!(ctx.sql("SELECT strat_draw(1, 0.5)").await.is_err());
        assert!(ctx.sql("SELECT strat_draw('x', 1)").await.is_err());
        let negative = ctx
            .sql("SELECT strat_draw(-1, id) FROM t")
            .await?
            .collect()
            .await;
        assert!(negative.is_err());
        Ok(())
    }
}

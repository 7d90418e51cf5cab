//! neyman's `S_h` in bounded memory: DataFusion groups the eligible rows by
//! unit (and stratum) — its aggregate spills past the memory budget — into
//! each unit's smallest and largest value and its counts; strat checks that
//! the value is constant within the unit (E0206 names the smallest key of a
//! unit where it is not) and adds each unit's value once to its stratum's
//! exact sums ([`Moments`]).
//!
//! Most tables have one row per unit (a members table keyed by member):
//! then a unit's value is its row's, and the sums the counting pass keeps
//! of every counted row's value ([`RowValues`]) are the units' sums — the
//! rows are not read again. Whether that holds is known only when the pass
//! ends (as many rows counted as units), so the pass always keeps them.

use datafusion::arrow::array::Decimal128Array;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::prelude::lit;

use super::*;
use crate::moments::{Moments, Scale};

const VALUE: &str = "\u{1}strat_neyman";

/// How a unit's group is placed in its stratum.
pub(super) struct Strata<'a> {
    pub key: KeyOf,
    pub filters: &'a UnitFilters,
    pub fields: &'a [SortField],
    pub ids: &'a HashMap<Vec<u8>, u32>,
    pub rank: &'a [usize],
    pub count: usize,
}

/// How neyman's column is read and summed: floats by their bits, integers
/// and decimals as scaled integers — by the counting pass (each counted
/// row's value) and by the grouping (each unit's).
#[derive(Clone, Debug)]
pub(super) struct RowValues {
    as_type: DataType,
    scale: Scale,
}

/// A batch's values, in the type they are summed in.
pub(super) enum BatchValues {
    Float(Float64Array),
    Decimal(Decimal128Array),
}

impl RowValues {
    pub fn new(value_type: &DataType) -> Self {
        let (as_type, scale) = match value_type {
            t if t.is_floating() => (DataType::Float64, Scale::Float),
            DataType::Decimal32(_, s)
            | DataType::Decimal64(_, s)
            | DataType::Decimal128(_, s)
            | DataType::Decimal256(_, s) => (
                DataType::Decimal128(38, *s),
                Scale::Decimal(u32::from(s.unsigned_abs())),
            ),
            _ => (DataType::Decimal128(38, 0), Scale::Decimal(0)),
        };
        RowValues { as_type, scale }
    }

    pub fn of(&self, values: &ArrayRef) -> Result<BatchValues, RunError> {
        let cast = cast(values, &self.as_type).map_err(arrow_err("neyman"))?;
        Ok(match self.scale {
            Scale::Float => BatchValues::Float(cast.as_primitive::<Float64Type>().clone()),
            Scale::Decimal(_) => {
                BatchValues::Decimal(cast.as_primitive::<Decimal128Type>().clone())
            }
        })
    }

    /// `S_h` per stratum (in stratum order) from the sums by stratum id.
    pub fn sds(&self, by_id: Vec<Moments>, rank: &[usize], count: usize) -> Vec<Option<f64>> {
        let mut moments = vec![Moments::default(); count];
        for (id, m) in by_id.into_iter().enumerate() {
            moments[rank[id]].merge(m);
        }
        self.sds_in_order(&moments)
    }

    /// `S_h` of each stratum's sums.
    fn sds_in_order(&self, moments: &[Moments]) -> Vec<Option<f64>> {
        moments.iter().map(|m| m.sd(self.scale)).collect()
    }
}

impl BatchValues {
    /// Whether `row` is NULL here or has the same value in `other`.
    fn null_or_equal(&self, other: &BatchValues, row: usize) -> bool {
        match (self, other) {
            (BatchValues::Float(a), BatchValues::Float(b)) => {
                a.is_null(row) || a.value(row) == b.value(row)
            }
            (BatchValues::Decimal(a), BatchValues::Decimal(b)) => {
                a.is_null(row) || a.value(row) == b.value(row)
            }
            _ => false,
        }
    }

    /// Adds `row`'s value (none for NULL) to `sums`.
    pub fn add(&self, row: usize, sums: &mut Moments) {
        match self {
            BatchValues::Float(a) if a.is_valid(row) => sums.add_f64(a.value(row)),
            BatchValues::Decimal(a) if a.is_valid(row) => sums.add_scaled(a.value(row)),
            _ => {}
        }
    }
}

/// `S_h` of `column` per stratum (in stratum order).
pub(super) async fn sds(
    ctx: &SessionContext,
    st: &Statement,
    source: &Rows,
    column_name: &str,
    strata: Strata<'_>,
) -> Result<Vec<Option<f64>>, RunError> {
    let key_columns = key_columns(st);
    let mut select = key_columns.clone();
    select.extend(source.strata(st)?);
    select.push(column(column_name).alias(VALUE));
    let mut df = source
        .eligible(ctx, st, None, Columns::Counting(&[column_name]))
        .await?
        .select(select)
        .map_err(df_err("neyman"))?;
    if let Some(u) = &st.unit {
        df = df
            .filter(column(&u.name).is_not_null())
            .map_err(df_err("neyman"))?;
    }
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let n_key = key_columns.len();
    let groups: Vec<Expr> = names[..names.len() - 1].iter().map(|n| column(n)).collect();
    let value = column(VALUE);
    // A unit's smallest and largest value, its values and its rows.
    let df = df
        .aggregate(
            groups,
            vec![
                min(value.clone()).alias("lo"),
                max(value.clone()).alias("hi"),
                count(value).alias("values"),
                count(lit(1)).alias("rows"),
            ],
        )
        .map_err(df_err("neyman"))?;
    let value_type = df.schema().field(names.len() - 1).data_type().clone();
    let reader = RowValues::new(&value_type);
    let mut stream = df
        .execute_stream()
        .await
        .map_err(df_err(format!("reading {}", source.what)))?;
    let mut moments = vec![Moments::default(); strata.count];
    let mut not_constant: Option<Vec<u8>> = None;
    let converter = (!strata.fields.is_empty())
        .then(|| RowConverter::new(strata.fields.to_vec()))
        .transpose()
        .map_err(arrow_err("neyman"))?;
    let mut buf = Vec::with_capacity(64);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(df_err(format!("reading {}", source.what)))?;
        let cols = batch.columns();
        let keys = UnitKeys::new(strata.key.leading(), &cols[..n_key])
            .map_err(|e| RunError::Key(e.to_string()))?;
        let converted = match &converter {
            Some(c) => Some(
                c.convert_columns(&cols[n_key..names.len() - 1])
                    .map_err(arrow_err("neyman"))?,
            ),
            None => None,
        };
        let at = names.len() - 1;
        let (lo, hi) = (reader.of(&cols[at])?, reader.of(&cols[at + 1])?);
        let values = cols[at + 2].as_primitive::<Int64Type>();
        let rows = cols[at + 3].as_primitive::<Int64Type>();
        let filtered = strata.filters.kept.is_some() || strata.filters.excluded.is_some();
        for row in 0..batch.num_rows() {
            buf.clear();
            if filtered {
                keys.write(row, &mut buf);
                if strata.filters.drops(&buf) {
                    continue;
                }
            }
            // Constant: one value on every row (or NULL on every row).
            let constant = lo.null_or_equal(&hi, row)
                && (values.value(row) == 0 || values.value(row) == rows.value(row));
            if !constant {
                if !filtered {
                    keys.write(row, &mut buf);
                }
                if not_constant.as_deref().is_none_or(|k| buf.as_slice() < k) {
                    not_constant = Some(buf.clone());
                }
                continue;
            }
            if values.value(row) == 0 {
                continue;
            }
            let id = match &converted {
                None => 0,
                Some(c) => *strata.ids.get(c.row(row).as_ref()).ok_or_else(|| {
                    RunError::Statement(format!(
                        "{} changed while strat read it: a unit has stratum values the counting pass did not meet; run again on data that does not change during the run",
                        source.what
                    ))
                })?,
            };
            lo.add(row, &mut moments[strata.rank[id as usize]]);
        }
    }
    if let Some(unit) = not_constant {
        return Err(RunError::NeymanNotConstant {
            column: column_name.to_string(),
            unit: String::from_utf8_lossy(&unit).into_owned(),
        });
    }
    Ok(reader.sds_in_order(&moments))
}

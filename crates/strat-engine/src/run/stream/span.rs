//! Naming a unit that spans strata (spec §4.1, E0201) without holding the
//! table: the walk over the units in draw order stops at the first unit
//! whose entries name two strata, known by its draw and keyed hash; one more
//! pass over the rows finds its key text and the first and last of its
//! strata in stratum order.

use super::*;

/// The first unit in draw order met in two strata.
pub(super) struct Spanning<'a> {
    pub unit: UnitEntry,
    pub hasher: &'a KeyHasher,
    pub drawer: &'a Drawer,
}

/// A stratum as it sorts, and its values' texts.
type StratumSeen = (Vec<SVal>, Vec<Option<String>>);

/// What one task saw of the spanning unit's rows.
#[derive(Default)]
struct Seen {
    key: Vec<u8>,
    first: Option<StratumSeen>,
    last: Option<StratumSeen>,
}

impl Seen {
    fn add(&mut self, key: &[u8], stratum: StratumSeen) {
        // Two keys with the draw and hash of one: the smaller key, whatever
        // the order of the rows.
        if self.first.is_some() && key != self.key.as_slice() {
            if key > self.key.as_slice() {
                return;
            }
            *self = Seen::default();
        }
        if self.first.is_none() {
            self.key = key.to_vec();
        }
        if self.first.as_ref().is_none_or(|f| stratum.0 < f.0) {
            self.first = Some(stratum.clone());
        }
        if self.last.as_ref().is_none_or(|l| stratum.0 > l.0) {
            self.last = Some(stratum);
        }
    }

    fn merge(mut self, other: Seen) -> Seen {
        if let (Some(first), Some(last)) = (other.first, other.last) {
            self.add(&other.key, first);
            self.add(&other.key, last);
        }
        self
    }
}

/// What the tasks of the pass share.
struct Search {
    unit: UnitEntry,
    hasher: KeyHasher,
    drawer: Drawer,
    key: KeyOf,
    strata_at: usize,
    labels: Vec<Option<Vec<String>>>,
    context: String,
}

impl Spanning<'_> {
    /// The E0201 error that names the unit, or the error that stopped the
    /// pass looking for it.
    pub async fn error(&self, ctx: &SessionContext, st: &Statement, source: &Rows) -> RunError {
        match self.find(ctx, st, source).await {
            Ok(e) | Err(e) => e,
        }
    }

    async fn find(
        &self,
        ctx: &SessionContext,
        st: &Statement,
        source: &Rows,
    ) -> Result<RunError, RunError> {
        let context = format!("reading {}", source.what);
        let df = source
            .eligible(ctx, st, None, Columns::Counting(&[]))
            .await?;
        let mut select = key_columns(st);
        let strata_at = select.len();
        select.extend(source.strata(st)?);
        let df = df
            .select(select)
            .map_err(df_err("evaluating `stratify by`"))?;
        let search = Arc::new(Search {
            unit: self.unit,
            hasher: self.hasher.clone(),
            drawer: self.drawer.clone(),
            key: key_of(st)?.leading(),
            strata_at,
            labels: st.strata.iter().map(|s| s.bucket_labels.clone()).collect(),
            context: context.clone(),
        });
        let internal = |why: &str| {
            RunError::Statement(format!(
                "{context}: naming a unit that spans strata failed ({why}; an internal error)"
            ))
        };
        let seen = each_partition(df, &context, |s| seen_in(s, search.clone()))
            .await?
            .map_err(|Fallback(why)| internal(why))?;
        let seen = seen.into_iter().fold(Seen::default(), Seen::merge);
        let (Some(first), Some(last)) = (seen.first, seen.last) else {
            return Err(internal("its rows were not found again"));
        };
        Ok(RunError::UnitSpansStrata {
            unit_column: st
                .unit
                .as_ref()
                .map_or_else(String::new, |c| c.name.clone()),
            unit: String::from_utf8_lossy(&seen.key).into_owned(),
            first: stratum_text(&first.1),
            second: stratum_text(&last.1),
        })
    }
}

/// The spanning unit's rows in one partition: those whose keyed hash and
/// draw are the unit's.
async fn seen_in(mut stream: SendableRecordBatchStream, search: Arc<Search>) -> Result<Seen, Stop> {
    let mut seen = Seen::default();
    let (mut hashes, mut buf) = (Vec::new(), Vec::with_capacity(64));
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(df_err(search.context.clone()))?;
        let keys =
            UnitKeys::new(search.key, batch.columns()).map_err(|e| RunError::Key(e.to_string()))?;
        keys.hash_into(&search.hasher, batch.num_rows(), &mut hashes);
        for (row, &hash) in hashes.iter().enumerate() {
            if keys.is_null(row) || search.hasher.top48(hash) != search.unit.hash48() {
                continue;
            }
            buf.clear();
            keys.write(row, &mut buf);
            if search.drawer.draw(&buf) != search.unit.r {
                continue;
            }
            let columns = &batch.columns()[search.strata_at..];
            let (mut values, mut texts) = (Vec::new(), Vec::new());
            for (c, labels) in columns.iter().zip(&search.labels) {
                let one = c.slice(row, 1);
                values.extend(stratum_values(&one, labels.as_deref())?);
                texts.push(TextColumn::new(&one)?.text(0));
            }
            seen.add(&buf, (values, texts));
        }
    }
    Ok(seen)
}

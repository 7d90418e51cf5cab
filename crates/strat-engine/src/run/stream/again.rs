//! Units found again by their draw and keyed hash, where the walk over the
//! units (16 bytes each, no key texts) cannot decide alone: one more pass
//! over the rows writes the key texts of just those units, and their first
//! and last strata in stratum order. Used for a unit that spans strata
//! (spec §4.1, E0201, named by its key text and two of its strata) and for
//! units whose draws tie at a selection or split boundary (their order is
//! by key text, spec §6.2).

use super::*;

/// A stratum as it sorts, and its values' texts.
type StratumSeen = (Vec<SVal>, Vec<Option<String>>);

/// A unit found again.
#[derive(Default)]
pub(super) struct Found {
    pub key: Vec<u8>,
    first: Option<StratumSeen>,
    last: Option<StratumSeen>,
}

impl Found {
    fn add(&mut self, key: &[u8], stratum: StratumSeen) {
        // Two keys with the draw and hash of one: the smaller key, whatever
        // the order of the rows.
        if self.first.is_some() && key != self.key.as_slice() {
            if key > self.key.as_slice() {
                return;
            }
            *self = Found::default();
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

    fn merge(&mut self, other: Found) {
        if let (Some(first), Some(last)) = (other.first, other.last) {
            self.add(&other.key, first);
            self.add(&other.key, last);
        }
    }
}

/// The units to find: (draw, keyed hash) → where the hash alone rules most
/// rows out.
struct Search {
    units: HashSet<(u64, u64)>,
    hashes: HashSet<u64>,
    hasher: KeyHasher,
    drawer: Drawer,
    key: KeyOf,
    strata: std::ops::Range<usize>,
    labels: Vec<Option<Vec<String>>>,
    context: String,
}

/// The units `units` (by draw and [`UnitEntry::hash40`]) found again among
/// the eligible rows of `source`.
pub(super) async fn find(
    ctx: &SessionContext,
    st: &Statement,
    source: &Rows,
    (hasher, drawer): (&KeyHasher, &Drawer),
    units: impl IntoIterator<Item = (u64, u64)>,
) -> Result<HashMap<(u64, u64), Found>, RunError> {
    let context = format!("reading {}", source.what);
    let frame = counting_frame(ctx, st, source, None, Grain::Row).await?;
    let units: HashSet<(u64, u64)> = units.into_iter().collect();
    let search = Arc::new(Search {
        hashes: units.iter().map(|u| u.1).collect(),
        units,
        hasher: hasher.clone(),
        drawer: drawer.clone(),
        key: key_of(st)?.leading(),
        strata: frame.strata,
        labels: st.strata.iter().map(|s| s.bucket_labels.clone()).collect(),
        context: context.clone(),
    });
    let parts = each_partition(frame.df, &context, |s| found_in(s, search.clone())).await?;
    let mut found: HashMap<(u64, u64), Found> = HashMap::new();
    for part in parts {
        for (unit, f) in part {
            found.entry(unit).or_default().merge(f);
        }
    }
    Ok(found)
}

/// The E0201 error that names `unit`, the first unit in draw order met in
/// two strata (or the error that stopped the pass looking for it).
pub(super) async fn spanning(
    ctx: &SessionContext,
    st: &Statement,
    source: &Rows,
    keyed: (&KeyHasher, &Drawer),
    unit: UnitEntry,
) -> RunError {
    let id = (unit.r, unit.hash40());
    let mut found = match find(ctx, st, source, keyed, [id]).await {
        Ok(found) => found,
        Err(e) => return e,
    };
    let Some(Found {
        key,
        first: Some(first),
        last: Some(last),
    }) = found.remove(&id)
    else {
        return RunError::Statement(format!(
            "reading {}: the rows of a unit that spans strata were not found again \
             (the table changed while strat read it?)",
            source.what
        ));
    };
    RunError::UnitSpansStrata {
        unit_column: st
            .unit
            .as_ref()
            .map_or_else(String::new, |c| c.name.clone()),
        unit: String::from_utf8_lossy(&key).into_owned(),
        first: stratum_text(&first.1),
        second: stratum_text(&last.1),
    }
}

/// The wanted units' rows in one partition: those whose keyed hash and draw
/// are one of theirs.
async fn found_in(
    mut stream: SendableRecordBatchStream,
    search: Arc<Search>,
) -> Result<HashMap<(u64, u64), Found>, RunError> {
    let mut found: HashMap<(u64, u64), Found> = HashMap::new();
    let (mut hashes, mut buf) = (Vec::new(), Vec::with_capacity(64));
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(df_err(search.context.clone()))?;
        let keys =
            UnitKeys::new(search.key, batch.columns()).map_err(|e| RunError::Key(e.to_string()))?;
        keys.hash_into(&search.hasher, batch.num_rows(), &mut hashes);
        for (row, &hash) in hashes.iter().enumerate() {
            let h40 = search.hasher.top40(hash);
            if keys.is_null(row) || !search.hashes.contains(&h40) {
                continue;
            }
            buf.clear();
            keys.write(row, &mut buf);
            let unit = (search.drawer.draw(&buf), h40);
            if !search.units.contains(&unit) {
                continue;
            }
            let columns = &batch.columns()[search.strata.clone()];
            let (mut values, mut texts) = (Vec::new(), Vec::new());
            for (c, labels) in columns.iter().zip(&search.labels) {
                let one = c.slice(row, 1);
                values.extend(stratum_values(&one, labels.as_deref())?);
                texts.push(TextColumn::new(&one)?.text(0));
            }
            found.entry(unit).or_default().add(&buf, (values, texts));
        }
    }
    Ok(found)
}

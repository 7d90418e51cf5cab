//! Selection over the units in draw order: how each stratum's units go to
//! parts (a sample has one), by their place in draw order or their draw.
//! Units whose draws are equal are ordered by key text (spec §6.2), which the
//! walk does not hold: a run of equal draws that straddles a boundary is
//! kept aside as a [`Tie`], and [`Walk::settle`] assigns its units in key
//! order once their key texts have been found again.

use super::*;

/// How a stratum's units are assigned to parts (a sample has one part).
#[derive(Clone)]
pub(super) enum Assign {
    /// The first `n` units in draw order.
    Take(u64),
    /// Units whose draw is below the threshold (`None`: all).
    Below(Option<u64>),
    /// Split boundaries `B_1 ≤ … ≤ B_k`: the unit at place `p` in draw order
    /// goes to the first split with `p < B_i`.
    Cuts(Vec<u64>),
    /// `about` split thresholds and the number of splits: the first split
    /// whose threshold is above `r`, else the last.
    Thresholds(Vec<Option<u64>>, usize),
}

impl Assign {
    /// The part of the unit at `place` in draw order with draw `r`.
    fn part(&self, place: u64, r: u64) -> Option<u32> {
        match self {
            Assign::Take(n) => (place < *n).then_some(0),
            Assign::Below(t) => t.is_none_or(|t| r < t).then_some(0),
            Assign::Cuts(b) => b.iter().position(|&b| place < b).map(|i| i as u32),
            Assign::Thresholds(t, parts) => Some(
                t.iter()
                    .position(|t| t.is_none_or(|t| r < t))
                    .unwrap_or(parts - 1) as u32,
            ),
        }
    }
}

/// Units of one stratum with one draw that do not all go to one part: which
/// goes where depends on their key texts.
#[derive(Clone, Debug)]
pub(super) struct Tie {
    pub stratum: usize,
    pub r: u64,
    /// The place in draw order of the first of them.
    pub first_place: u64,
    /// Their keyed hashes ([`UnitEntry::hash40`]).
    pub units: Vec<u64>,
}

/// Walks units in draw order, stratum by stratum, assigning each.
pub(super) struct Walk<'a> {
    assign: &'a [Assign],
    pub places: Vec<u64>,
    last: Vec<Option<(u64, Option<u32>)>>,
    /// Per stratum, units per part.
    pub counts: Vec<Vec<u64>>,
    /// Per stratum, the draw at which each run of one part starts: a unit's
    /// part is that of the last start at or below its draw (units of a
    /// [`Tie`] excepted).
    pub starts: Vec<Vec<(u64, u32)>>,
    /// The selected units (`None`: not listed, only counted).
    pub selected: Option<Vec<Selected>>,
    /// [`unit_check`] summed over the selected units.
    pub check: u64,
    /// Per stratum, the units with the last draw met.
    run: Vec<EqualDraws>,
    pub ties: Vec<Tie>,
}

/// The units of one stratum with the draw the walk met last.
#[derive(Clone, Default)]
struct EqualDraws {
    first_place: u64,
    /// The first one's keyed hash; the others' only when there are others
    /// (rare: nearly every draw is met once), so most units cost no push.
    first: u64,
    more: Vec<u64>,
    /// Whether they go to more than one part.
    straddles: bool,
}

/// A unit's share of a checksum over a set of units: the materialising pass
/// must find again exactly the units the selection chose, in their strata.
pub(super) fn unit_check(r: u64, stratum: u32) -> u64 {
    (r ^ u64::from(stratum).wrapping_mul(0x9e37_79b9_7f4a_7c15)).rotate_left(17)
}

impl<'a> Walk<'a> {
    pub fn new(assign: &'a [Assign], parts: usize, list: bool) -> Self {
        Walk {
            assign,
            places: vec![0; assign.len()],
            last: vec![None; assign.len()],
            counts: vec![vec![0; parts]; assign.len()],
            starts: vec![Vec::new(); assign.len()],
            selected: list.then(Vec::new),
            check: 0,
            run: vec![EqualDraws::default(); assign.len()],
            ties: Vec::new(),
        }
    }

    /// Takes in the walk of the next range of draws.
    pub fn absorb(&mut self, next: Walk) {
        for (k, c) in next.counts.into_iter().enumerate() {
            self.counts[k].iter_mut().zip(c).for_each(|(a, b)| *a += b);
        }
        for (k, s) in next.starts.into_iter().enumerate() {
            self.starts[k].extend(s);
        }
        if let (Some(a), Some(b)) = (&mut self.selected, next.selected) {
            a.extend(b);
        }
        self.check = self.check.wrapping_add(next.check);
        self.ties.extend(next.ties);
    }

    pub fn visit(&mut self, e: UnitEntry, k: usize) {
        let place = self.places[k];
        let part = self.assign[k].part(place, e.r);
        let last = self.last[k];
        if last.is_some_and(|(r, _)| r == e.r) {
            let run = &mut self.run[k];
            run.more.push(e.hash40());
            run.straddles |= last.is_some_and(|(_, p)| p != part);
        } else {
            self.end_run(k);
            let run = &mut self.run[k];
            run.first_place = place;
            run.first = e.hash40();
            run.more.clear();
        }
        if last.is_none_or(|(_, p)| p != part)
            && let Some(part) = part
        {
            self.starts[k].push((e.r, part));
        }
        self.places[k] += 1;
        self.last[k] = Some((e.r, part));
        if let Some(part) = part {
            self.counts[k][part as usize] += 1;
            self.check = self.check.wrapping_add(unit_check(e.r, k as u32));
            if let Some(list) = &mut self.selected {
                list.push(Selected::new(e, k, part as usize));
            }
        }
    }

    /// Keeps the run of equal draws of stratum `k` aside if it straddles a
    /// boundary.
    fn end_run(&mut self, k: usize) {
        let run = &mut self.run[k];
        if let (true, Some((r, _))) = (run.straddles, self.last[k]) {
            let mut units = vec![run.first];
            units.extend_from_slice(&run.more);
            self.ties.push(Tie {
                stratum: k,
                r,
                first_place: run.first_place,
                units,
            });
        }
        run.straddles = false;
    }

    /// Ends the walk of a range of draws.
    pub fn finish(mut self) -> Self {
        for k in 0..self.run.len() {
            self.end_run(k);
        }
        self
    }

    /// Assigns the units of every [`Tie`] in key text order (`keys`: their
    /// texts by draw and keyed hash): the selected units listed again, and
    /// the part of each unit whose draw alone does not tell (by key text).
    pub fn settle(
        &mut self,
        keys: &HashMap<(u64, u64), Vec<u8>>,
    ) -> Result<HashMap<Vec<u8>, u32>, RunError> {
        let mut parts = HashMap::new();
        for tie in std::mem::take(&mut self.ties) {
            let (k, r) = (tie.stratum, tie.r);
            let mut units = Vec::with_capacity(tie.units.len());
            for &h in &tie.units {
                let key = keys.get(&(r, h)).ok_or_else(|| {
                    RunError::Statement(
                        "units whose draws tie were not found again \
                         (the table changed while strat read it?)"
                            .into(),
                    )
                })?;
                units.push((key.as_slice(), h));
            }
            units.sort_unstable();
            if let Some(list) = &mut self.selected {
                list.retain(|s| (s.stratum as usize, s.r) != (k, r));
            }
            for (i, (key, h)) in units.into_iter().enumerate() {
                let Some(part) = self.assign[k].part(tie.first_place + i as u64, r) else {
                    continue;
                };
                if let Some(list) = &mut self.selected {
                    list.push(Selected {
                        r,
                        hash40: h,
                        stratum: k as u32,
                        part,
                    });
                }
                parts.insert(key.to_vec(), part);
            }
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(r: u64, h: u64) -> UnitEntry {
        UnitEntry {
            r,
            tag: h << STRATUM_BITS,
        }
    }

    /// Four units of one stratum, the middle two with one draw (5): keyed
    /// hashes 10 and 20, key texts "b" and "a". In draw order (§6.2) "a"
    /// comes first, whatever the hashes say.
    fn walked(assign: &[Assign], parts: usize, list: bool) -> Walk<'_> {
        let mut walk = Walk::new(assign, parts, list);
        for e in [entry(1, 7), entry(5, 10), entry(5, 20), entry(9, 3)] {
            walk.visit(e, 0);
        }
        walk.finish()
    }

    fn keys() -> HashMap<(u64, u64), Vec<u8>> {
        HashMap::from([((5, 10), b"b".to_vec()), ((5, 20), b"a".to_vec())])
    }

    #[test]
    fn a_tie_at_the_sample_boundary_is_settled_by_key_text() {
        let assign = [Assign::Take(2)];
        let mut walk = walked(&assign, 1, true);
        assert_eq!(walk.ties.len(), 1);
        assert_eq!((walk.ties[0].r, walk.ties[0].first_place), (5, 1));
        assert_eq!(walk.ties[0].units, [10, 20]);
        assert_eq!(walk.counts, [[2]]);
        let check = walk.check;
        walk.settle(&keys()).expect("settled");
        let mut chosen: Vec<(u64, u64)> = (walk.selected.iter().flatten())
            .map(|s| (s.r, s.hash40))
            .collect();
        chosen.sort_unstable();
        assert_eq!(chosen, [(1, 7), (5, 20)], "the unit keyed `a`, not hash 10");
        assert_eq!((walk.counts, walk.check), (vec![vec![2]], check));
    }

    #[test]
    fn a_tie_at_a_split_boundary_gives_parts_by_key_text() {
        // Places 0 and 1 go to part 0, 2 and 3 to part 1: the tied units
        // (places 1 and 2) straddle the cut.
        let assign = [Assign::Cuts(vec![2, 4])];
        let mut walk = walked(&assign, 2, false);
        let parts = walk.settle(&keys()).expect("settled");
        assert_eq!(
            parts,
            HashMap::from([(b"a".to_vec(), 0), (b"b".to_vec(), 1)])
        );
        assert_eq!(walk.counts, [[2, 2]]);
    }

    #[test]
    fn equal_draws_on_one_side_of_every_boundary_are_no_tie() {
        for assign in [Assign::Take(1), Assign::Take(3), Assign::Below(Some(6))] {
            let walk = walked(std::slice::from_ref(&assign), 1, true);
            assert!(walk.ties.is_empty());
        }
    }
}

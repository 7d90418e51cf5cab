//! Work spread over a few threads, for the steps of a run that are plain
//! Rust over data already in memory (DataFusion runs its own plans).

/// Runs `f` on every item, item `i` on thread `i mod threads`, and gives the
/// results in the items' order; `None` when a thread panicked (the caller
/// reports it as an error rather than panicking itself). One thread: on the
/// calling thread.
pub(crate) fn map_on_threads<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Option<Vec<R>> {
    let n = items.len();
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return Some(items.into_iter().map(f).collect());
    }
    let mut shares: Vec<Vec<(usize, T)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        shares[i % threads].push((i, item));
    }
    let mut slots: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let f = &f;
    std::thread::scope(|scope| {
        let tasks: Vec<_> = shares
            .into_iter()
            .map(|share| {
                scope.spawn(move || {
                    share
                        .into_iter()
                        .map(|(i, x)| (i, f(x)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for task in tasks {
            if let Ok(done) = task.join() {
                for (i, r) in done {
                    slots[i] = Some(r);
                }
            }
        }
    });
    slots.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_items_order_on_any_number_of_threads() {
        for threads in [0, 1, 2, 3, 64] {
            let out = map_on_threads((0..10u64).collect(), threads, |x| x * x);
            assert_eq!(
                out,
                Some((0..10u64).map(|x| x * x).collect::<Vec<_>>()),
                "{threads}"
            );
        }
        assert_eq!(map_on_threads(Vec::<u8>::new(), 2, |x| x), Some(vec![]));
    }

    #[test]
    fn a_panicking_thread_gives_none() {
        let out = map_on_threads((0..4).collect(), 2, |x: i32| {
            assert!(x != 3, "boom");
            x
        });
        assert_eq!(out, None);
    }
}

//! Over many seeds, each unit's inclusion frequency matches its design
//! probability: n_h / N_h for exact samples, p_h for Bernoulli. A biased draw
//! (favouring small keys, early rows or one stratum) fails these bounds.

use datafusion::prelude::SessionContext;

use crate::cli::tempdir;

const SEEDS: u64 = 400;

/// 35 units in three strata: A 20, B 10, C 5.
fn data(dir: &std::path::Path) -> std::path::PathBuf {
    let mut csv = String::from("id,grp\n");
    for i in 0..35 {
        let g = if i < 20 {
            "A"
        } else if i < 30 {
            "B"
        } else {
            "C"
        };
        csv.push_str(&format!("{},{g}\n", 1000 + i * 7));
    }
    let path = dir.join("units.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// Inclusion counts per unit id over `SEEDS` seeds of `rules` (with `{seed}`).
fn inclusion_counts(rules: &str) -> std::collections::BTreeMap<String, u64> {
    let dir = tempdir(&format!(
        "stats-{}",
        strat_engine::report::md5_hex(rules.as_bytes())
    ));
    let path = data(&dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for seed in 0..SEEDS {
        let text = rules.replace("{seed}", &seed.to_string());
        let ctx = SessionContext::new();
        let options = strat_engine::Options {
            tables: vec![strat_engine::TableBinding {
                name: "pop".into(),
                path: path.clone(),
            }],
            ..strat_engine::Options::default()
        };
        let out = rt.block_on(async {
            let compiled = strat_engine::compile(&ctx, None, &text, &options).await;
            let program = compiled
                .program
                .unwrap_or_else(|| panic!("{:#?}", compiled.diagnostics));
            strat_engine::run::run_statement(&ctx, &program, program.statements.len() - 1)
                .await
                .unwrap()
        });
        for b in &out.batches {
            let ids = datafusion::arrow::compute::cast(
                b.column(0),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let ids = ids
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .unwrap();
            for id in ids.iter().flatten() {
                *counts.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Each unit within 4.5 binomial standard deviations, and the chi-square over
/// all 35 units below a bound no fair draw reaches in practice.
fn assert_frequencies(counts: &std::collections::BTreeMap<String, u64>, p: impl Fn(u64) -> f64) {
    let mut chi2 = 0.0;
    for i in 0..35u64 {
        let id = (1000 + i * 7).to_string();
        let k = *counts.get(&id).unwrap_or(&0) as f64;
        let p = p(i);
        let mean = SEEDS as f64 * p;
        let var = SEEDS as f64 * p * (1.0 - p);
        assert!(
            (k - mean).abs() <= 4.5 * var.sqrt(),
            "unit {id}: {k} inclusions, expected {mean:.1} ± {:.1}",
            var.sqrt()
        );
        chi2 += (k - mean).powi(2) / var;
    }
    // 35 degrees of freedom: P(chi2 > 80) is about 2e-5.
    assert!(chi2 < 80.0, "chi-square {chi2:.1} over 35 units");
}

#[test]
fn exact_inclusion_frequencies_are_n_over_n() {
    let counts = inclusion_counts("sample pop unit id stratify by grp take 14 seed {seed}");
    // Proportional: 14 of 35 is 40% in every stratum (8 of 20, 4 of 10, 2 of 5).
    assert_frequencies(&counts, |_| 0.4);
}

#[test]
fn equal_allocation_frequencies_follow_each_stratum() {
    let counts =
        inclusion_counts("sample pop unit id stratify by grp take 9 allocate equal seed {seed}");
    // 3 per stratum: 3/20, 3/10, 3/5.
    assert_frequencies(&counts, |i| {
        if i < 20 {
            0.15
        } else if i < 30 {
            0.3
        } else {
            0.6
        }
    });
}

#[test]
fn bernoulli_inclusion_frequencies_are_p() {
    let counts = inclusion_counts("sample pop unit id stratify by grp take about 30% seed {seed}");
    assert_frequencies(&counts, |_| 0.3);
}

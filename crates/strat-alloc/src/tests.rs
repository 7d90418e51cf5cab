use super::*;
use proptest::prelude::*;

fn q(a: i64, b: i64) -> BigRational {
    BigRational::new(a.into(), b.into())
}

fn st(units: u64, start: u32) -> StratumInput {
    StratumInput {
        units,
        start,
        sd: None,
        rule: None,
    }
}

fn ruled(units: u64, start: u32, rule: usize) -> StratumInput {
    StratumInput {
        rule: Some(rule),
        ..st(units, start)
    }
}

fn req(total: Total) -> Request {
    Request {
        total,
        rules: vec![],
        method: Method::Proportional,
        min: None,
        max: None,
    }
}

fn sizes(a: &Allocation) -> Vec<u64> {
    a.targets
        .iter()
        .map(|t| match t {
            Target::Exact(n) => *n,
            Target::Probability(_) => panic!("not exact"),
        })
        .collect()
}

fn probs(a: &Allocation) -> Vec<BigRational> {
    a.targets
        .iter()
        .map(|t| match t {
            Target::Probability(p) => p.clone(),
            Target::Exact(_) => panic!("not Bernoulli"),
        })
        .collect()
}

fn err(strata: &[StratumInput], r: &Request) -> AllocError {
    allocate(strata, r).expect_err("should fail")
}

// ---------- hand-computed cases ----------

#[test]
fn proportional_without_ties() {
    // N = 10, 20, 30, n = 10: x = 10/60·N = 1.667, 3.333, 5 → floors 1, 3, 5 (9);
    // the one leftover goes to the largest fraction (.667, stratum 0).
    let a = allocate(&[st(10, 0), st(20, 0), st(30, 0)], &req(Total::Count(10))).unwrap();
    assert_eq!(sizes(&a), [2, 3, 5]);
    assert_eq!(a.total, q(10, 1));
    assert!(a.warnings.is_empty());
}

#[test]
fn proportional_ties_by_start_then_order() {
    // N = 1, 1, 1, n = 2: x = 2/3 each, floors 0, all fractions tie at 2/3, so the
    // 2 leftovers go to the smaller starts: 10 (stratum 1) and 20 (stratum 2).
    let a = allocate(&[st(1, 30), st(1, 10), st(1, 20)], &req(Total::Count(2))).unwrap();
    assert_eq!(sizes(&a), [0, 1, 1]);
    assert_eq!(
        a.warnings,
        [AllocWarning::ZeroAllocation { strata: vec![0] }]
    );
    // Equal starts too: the first in stratum order wins.
    let a = allocate(&[st(1, 5), st(1, 5), st(1, 5)], &req(Total::Count(1))).unwrap();
    assert_eq!(sizes(&a), [1, 0, 0]);
}

#[test]
fn equal_with_min_and_max() {
    // N = 2, 10, 50, 100, n = 40, min 5, max 15: lower = 2, 5, 5, 5; upper = 2, 10, 15, 15.
    // clamp(λ): 2 + 10 + 2λ = 40 for 10 ≤ λ ≤ 15 → λ = 14 → 2, 10, 14, 14.
    let r = Request {
        method: Method::Equal,
        min: Some(5),
        max: Some(15),
        ..req(Total::Count(40))
    };
    let a = allocate(&[st(2, 0), st(10, 0), st(50, 0), st(100, 0)], &r).unwrap();
    assert_eq!(sizes(&a), [2, 10, 14, 14]);
}

#[test]
fn water_filling_clamps_at_max() {
    // N = 100, 300, 600, n = 450, max 200: stratum 2 clamps (600λ > 200), the rest
    // share 250: 100λ + 300λ = 250 → λ = 5/8 → 62.5, 187.5, 200 (187.5 < 200 ✓).
    // Floors 62 + 187 + 200 = 449; the leftover ties at .5 → smaller start (stratum 1).
    let r = Request {
        max: Some(200),
        ..req(Total::Count(450))
    };
    let a = allocate(&[st(100, 7), st(300, 3), st(600, 0)], &r).unwrap();
    assert_eq!(sizes(&a), [62, 188, 200]);
}

#[test]
fn power_half() {
    // N = 100, 400, 900 → w = 10, 20, 30. n = 120 → λ = 2 → 20, 40, 60.
    let r = Request {
        method: Method::Power(q(1, 2)),
        ..req(Total::Count(120))
    };
    let strata = [st(100, 0), st(400, 0), st(900, 0)];
    assert_eq!(sizes(&allocate(&strata, &r).unwrap()), [20, 40, 60]);
    // n = 100 → 16.67, 33.33, 50 → floors 99, leftover to .667 (stratum 0).
    let r = Request {
        total: Total::Count(100),
        ..r
    };
    assert_eq!(sizes(&allocate(&strata, &r).unwrap()), [17, 33, 50]);
}

#[test]
fn power_zero_is_equal_and_one_is_proportional() {
    let strata = [st(7, 3), st(70, 1), st(700, 2), st(0, 0)];
    for (qq, m) in [(q(0, 1), Method::Equal), (q(1, 1), Method::Proportional)] {
        let a = allocate(
            &strata,
            &Request {
                method: Method::Power(qq),
                ..req(Total::Count(50))
            },
        );
        let b = allocate(
            &strata,
            &Request {
                method: m,
                ..req(Total::Count(50))
            },
        );
        assert_eq!(a, b);
    }
}

#[test]
fn neyman() {
    // w = N·S = 100·1, 200·0.5, 100·3 = 100, 100, 300; n = 50 → λ = 0.1 → 10, 10, 30.
    let mut strata = [st(100, 0), st(200, 0), st(100, 0)];
    for (s, sd) in strata.iter_mut().zip([1.0, 0.5, 3.0]) {
        s.sd = Some(sd);
    }
    let r = Request {
        method: Method::Neyman,
        ..req(Total::Count(50))
    };
    assert_eq!(sizes(&allocate(&strata, &r).unwrap()), [10, 10, 30]);
    // A stratum without a standard deviation has weight 0: it gets its lower bound.
    strata[1].sd = None;
    let a = allocate(&strata, &r).unwrap(); // w = 100, 0, 300 → 12.5, 0, 37.5 → tie at .5 → stratum 0
    assert_eq!(sizes(&a), [13, 0, 37]);
    assert_eq!(
        a.warnings,
        [AllocWarning::ZeroAllocation { strata: vec![1] }]
    );
}

#[test]
fn neyman_all_zero_falls_back_to_proportional() {
    let strata = [st(10, 0), st(30, 0)];
    let a = allocate(
        &strata,
        &Request {
            method: Method::Neyman,
            ..req(Total::Count(8))
        },
    )
    .unwrap();
    assert_eq!(sizes(&a), [2, 6]);
    assert_eq!(a.warnings, [AllocWarning::NeymanAllZero]);
}

#[test]
fn neyman_zero_weight_shortfall() {
    // Stratum 1 has S = 0 so it stays at 0; stratum 0 can give at most 10 of 20.
    let mut strata = [st(10, 0), st(100, 0)];
    strata[0].sd = Some(2.0);
    let e = err(
        &strata,
        &Request {
            method: Method::Neyman,
            ..req(Total::Count(20))
        },
    );
    assert_eq!(
        e,
        AllocError::ZeroWeightShortfall {
            remainder: Box::new(q(20, 1)),
            reachable: Box::new(q(10, 1))
        }
    );
    assert!(e.to_string().contains("at most 10 of the 20"));
}

#[test]
fn share_rules_with_tie_to_first_rule() {
    // Two rules of 25%, n = 10: P·n = 2.5 each, quota = round_half_up(0.5·10) = 5;
    // floors 2 + 2, the leftover ties → rule 0 (listed first) gets 3, rule 1 gets 2.
    // Rule 0 over N = 10, 20: 3·10/30 = 1, 3·20/30 = 2. Rule 1 over N = 5: 2.
    // The method stratum gets R = 10 − 5 = 5.
    let strata = [ruled(10, 0, 0), ruled(20, 0, 0), ruled(5, 0, 1), st(100, 0)];
    let r = Request {
        rules: vec![RuleAmount::Share(q(1, 4)), RuleAmount::Share(q(1, 4))],
        ..req(Total::Count(10))
    };
    assert_eq!(sizes(&allocate(&strata, &r).unwrap()), [1, 2, 2, 5]);
}

#[test]
fn share_quota_split_rounds_by_start() {
    // Share 50% of n = 4 → quota 2 over three strata of 1 unit: 2/3 each, all tie;
    // the starts 9, 1, 5 give the units to strata 1 and 2.
    let strata = [ruled(1, 9, 0), ruled(1, 1, 0), ruled(1, 5, 0), st(10, 0)];
    let r = Request {
        rules: vec![RuleAmount::Share(q(1, 2))],
        ..req(Total::Count(4))
    };
    assert_eq!(sizes(&allocate(&strata, &r).unwrap()), [0, 1, 1, 2]);
}

#[test]
fn count_shortfall_is_a_warning() {
    // count 50 on N = 30 (gives 30, warns) and N = 100 (gives 50); R = 200 − 80 = 120.
    let strata = [ruled(30, 0, 0), ruled(100, 0, 0), st(1000, 0)];
    let r = Request {
        rules: vec![RuleAmount::Count(50)],
        ..req(Total::Count(200))
    };
    let a = allocate(&strata, &r).unwrap();
    assert_eq!(sizes(&a), [30, 50, 120]);
    assert_eq!(
        a.warnings,
        [AllocWarning::CountShortfall {
            stratum: 0,
            wanted: 50,
            available: 30
        }]
    );
}

#[test]
fn rate_and_take_all_with_max() {
    // rate 12.5% of 1001 = 125.125 → 125; rate 50% of 3 = 1.5 → 2 (half up);
    // `all` keeps 7, `none` keeps 0 (warned); method strata keep min(max 20, N_h).
    let strata = [
        ruled(1001, 0, 0),
        ruled(3, 0, 1),
        ruled(7, 0, 2),
        ruled(4, 0, 3),
        st(5, 0),
        st(50, 0),
    ];
    let r = Request {
        rules: vec![
            RuleAmount::Rate(q(1, 8)),
            RuleAmount::Rate(q(1, 2)),
            RuleAmount::All,
            RuleAmount::None,
        ],
        max: Some(20),
        ..req(Total::All)
    };
    let a = allocate(&strata, &r).unwrap();
    assert_eq!(sizes(&a), [125, 2, 7, 0, 5, 20]);
    assert_eq!(a.total, q(159, 1));
    assert_eq!(
        a.warnings,
        [AllocWarning::ZeroAllocation { strata: vec![3] }]
    );
}

#[test]
fn fraction_total_rounds_half_up() {
    // 12.5% of 1001 = 125.125 → 125.
    let a = allocate(&[st(1001, 0)], &req(Total::Fraction(q(1, 8)))).unwrap();
    assert_eq!(sizes(&a), [125]);
    // 50% of 3 = 1.5 → 2: x = 2/3, 4/3 → floors 0, 1; leftover to frac 2/3 (stratum 0).
    let a = allocate(&[st(1, 0), st(2, 0)], &req(Total::Fraction(q(1, 2)))).unwrap();
    assert_eq!(sizes(&a), [1, 1]);
    assert_eq!(round_half_up(&q(5, 2)), 3.into());
    assert_eq!(round_half_up(&q(9, 4)), 2.into());
}

// ---------- errors ----------

#[test]
fn error_total_too_large() {
    let e = err(&[st(4000, 0), st(200, 0)], &req(Total::Count(5000)));
    assert_eq!(
        e,
        AllocError::TotalTooLarge {
            total: 5000,
            population: 4200
        }
    );
    assert!(e.to_string().contains(
        "take 5000 asks for more units than the 4200 eligible ones; lower `take` or widen `where`"
    ));
}

#[test]
fn error_negative_remainder() {
    let r = Request {
        rules: vec![RuleAmount::All],
        ..req(Total::Count(50))
    };
    let e = err(&[ruled(100, 0, 0), st(10, 0)], &r);
    assert_eq!(
        e,
        AllocError::RemainderNegative {
            total: Box::new(q(50, 1)),
            rules: Box::new(q(100, 1))
        }
    );
    assert!(e.to_string().contains("take 100 units but the total is 50"));
}

#[test]
fn error_remainder_without_method_strata() {
    let r = Request {
        rules: vec![RuleAmount::Count(10)],
        ..req(Total::Count(50))
    };
    let e = err(&[ruled(100, 0, 0)], &r);
    assert_eq!(
        e,
        AllocError::NoMethodStrata {
            total: 50,
            rules: 10
        }
    );
    assert!(e.to_string().contains("the other 40"));
    // R = 0 with no method strata is fine.
    let r = Request {
        total: Total::Count(10),
        ..r
    };
    assert_eq!(sizes(&allocate(&[ruled(100, 0, 0)], &r).unwrap()), [10]);
}

#[test]
fn error_infeasible_bounds() {
    let strata = [st(100, 0), st(100, 0), st(100, 0)];
    let e = err(
        &strata,
        &Request {
            min: Some(10),
            ..req(Total::Count(20))
        },
    );
    assert_eq!(
        e,
        AllocError::Infeasible {
            remainder: Box::new(q(20, 1)),
            lower_sum: 30,
            upper_sum: 300
        }
    );
    assert!(e.to_string().contains("needs 30 units") && e.to_string().contains("only 20 remain"));
    let e = err(
        &strata,
        &Request {
            max: Some(5),
            ..req(Total::Count(20))
        },
    );
    assert_eq!(
        e,
        AllocError::Infeasible {
            remainder: Box::new(q(20, 1)),
            lower_sum: 0,
            upper_sum: 15
        }
    );
    assert!(e.to_string().contains("at most 15 units") && e.to_string().contains("but 20"));
}

#[test]
fn error_share_quota_too_large() {
    // quota = round_half_up(50% × 100) = 50 > 10 units.
    let r = Request {
        rules: vec![RuleAmount::Share(q(1, 2))],
        ..req(Total::Count(100))
    };
    let e = err(&[ruled(10, 0, 0), st(100, 0)], &r);
    assert_eq!(
        e,
        AllocError::ShareQuotaTooLarge {
            rule: 0,
            quota: 50,
            available: 10
        }
    );
    assert!(
        e.to_string()
            .contains("rule 1 (`share`) gets a quota of 50")
    );
}

#[test]
fn error_shares_over_100() {
    let r = Request {
        rules: vec![RuleAmount::Share(q(3, 5)), RuleAmount::Share(q(1, 2))],
        ..req(Total::Count(10))
    };
    let e = err(&[st(100, 0)], &r);
    assert_eq!(
        e,
        AllocError::SharesOver100 {
            sum: Box::new(q(11, 10))
        }
    );
    assert!(e.to_string().contains("110%"));
}

#[test]
fn error_share_with_take_all_and_about() {
    let r = Request {
        rules: vec![RuleAmount::None, RuleAmount::Share(q(1, 2))],
        ..req(Total::All)
    };
    assert_eq!(
        err(&[st(1, 0)], &r),
        AllocError::ShareNeedsTotal { rule: 1 }
    );
    let r = Request {
        total: Total::About(q(1, 2)),
        ..r
    };
    assert_eq!(
        err(&[st(1, 0)], &r),
        AllocError::NotWithAbout {
            rule: 1,
            amount: "share"
        }
    );
    let r = Request {
        rules: vec![RuleAmount::Count(3)],
        ..r
    };
    assert_eq!(
        err(&[st(1, 0)], &r),
        AllocError::NotWithAbout {
            rule: 0,
            amount: "count"
        }
    );
}

#[test]
fn error_out_of_range_and_min_above_max() {
    let e = err(&[st(1, 0)], &req(Total::Fraction(q(3, 2))));
    assert!(matches!(e, AllocError::OutOfRange { .. }));
    let e = err(
        &[st(1, 0)],
        &Request {
            min: Some(5),
            max: Some(4),
            ..req(Total::All)
        },
    );
    assert_eq!(e, AllocError::MinAboveMax { min: 5, max: 4 });
}

// ---------- Bernoulli ----------

#[test]
fn bernoulli_plain_proportional_keeps_p() {
    let strata = [st(3, 0), st(7, 0), st(0, 0), st(11, 0)];
    let a = allocate(&strata, &req(Total::About(q(1, 3)))).unwrap();
    assert_eq!(probs(&a), [q(1, 3), q(1, 3), q(0, 1), q(1, 3)]);
    assert_eq!(a.total, q(7, 1)); // 21 / 3
    assert!(a.warnings.is_empty()); // the empty stratum is not reported
}

#[test]
fn bernoulli_with_rules() {
    // N = 120, P = 1/4 → expected 30. Rules: rate 1/2 on 10 (5), all on 5 (5), none on 5.
    // R = 20 over method strata of 80 and 20 → λ·100 = 20 → p = 1/5.
    let strata = [
        ruled(10, 0, 0),
        ruled(5, 0, 1),
        ruled(5, 0, 2),
        st(80, 0),
        st(20, 0),
    ];
    let r = Request {
        rules: vec![RuleAmount::Rate(q(1, 2)), RuleAmount::All, RuleAmount::None],
        ..req(Total::About(q(1, 4)))
    };
    let a = allocate(&strata, &r).unwrap();
    assert_eq!(probs(&a), [q(1, 2), q(1, 1), q(0, 1), q(1, 5), q(1, 5)]);
    assert_eq!(a.total, q(30, 1));
    assert_eq!(
        a.warnings,
        [AllocWarning::ZeroAllocation { strata: vec![2] }]
    );
}

#[test]
fn bernoulli_with_max() {
    // N = 100, 1000, P = 1/10 → 110 expected; max 80: 100λ + 80 = 110 → λ = 3/10;
    // p = 30/100, 80/1000.
    let r = Request {
        max: Some(80),
        ..req(Total::About(q(1, 10)))
    };
    let a = allocate(&[st(100, 0), st(1000, 0)], &r).unwrap();
    assert_eq!(probs(&a), [q(3, 10), q(2, 25)]);
    let r = Request { max: Some(50), ..r };
    assert!(matches!(
        err(&[st(100, 0), st(1000, 0)], &r),
        AllocError::Infeasible { .. }
    ));
}

#[test]
fn bernoulli_remainders() {
    // Rate 1/10 everywhere with about 1/2: R = 5 − 1 = 4 > 0 and no method stratum.
    let r = Request {
        rules: vec![RuleAmount::Rate(q(1, 10))],
        ..req(Total::About(q(1, 2)))
    };
    let a = allocate(&[ruled(10, 0, 0)], &r).unwrap();
    assert_eq!(
        a.warnings,
        [AllocWarning::UnallocatedRemainder { remainder: q(4, 1) }]
    );
    // `all` on 10 of 20 units with about 1/4: expected 5 < 10 → error.
    let r = Request {
        rules: vec![RuleAmount::All],
        ..req(Total::About(q(1, 4)))
    };
    let e = err(&[ruled(10, 0, 0), st(10, 0)], &r);
    assert_eq!(
        e,
        AllocError::ExpectedBelowRules {
            total: Box::new(q(5, 1)),
            rules: Box::new(q(10, 1))
        }
    );
    let text = e.to_string();
    assert!(
        text.contains("the rules keep an expected 10 units but `take about` expects 5 in total")
            && text.contains(
                "drop the amount: `take about` alone keeps each unit with its stratum's rate"
            ),
        "{text}"
    );
}

#[test]
fn bernoulli_by_rates_without_an_amount() {
    // Spark's sampleBy: each stratum with its own rate, no total to share.
    let r = Request {
        rules: vec![
            RuleAmount::Rate(q(1, 2)),
            RuleAmount::All,
            RuleAmount::None,
            RuleAmount::Rate(q(1, 10)),
        ],
        ..req(Total::Rates)
    };
    let a = allocate(
        &[
            ruled(10, 0, 0),
            ruled(3, 0, 1),
            ruled(7, 0, 2),
            ruled(40, 0, 3),
        ],
        &r,
    )
    .unwrap();
    assert_eq!(
        a.targets,
        [
            Target::Probability(q(1, 2)),
            Target::Probability(q(1, 1)),
            Target::Probability(q(0, 1)),
            Target::Probability(q(1, 10)),
        ]
    );
    // The expected size is what the rates keep: 5 + 3 + 0 + 4.
    assert_eq!(a.total, q(12, 1));
    assert_eq!(
        a.warnings,
        [AllocWarning::ZeroAllocation { strata: vec![2] }]
    );
    // A stratum without a rule has no rate.
    let e = err(&[ruled(10, 0, 0), st(5, 0)], &r);
    assert_eq!(e, AllocError::NoRate { strata: vec![1] });
    assert!(e.to_string().contains("`else => rate P%`"));
    // count and share need a total.
    let r = Request {
        rules: vec![RuleAmount::Count(3)],
        ..req(Total::Rates)
    };
    assert!(matches!(
        err(&[ruled(10, 0, 0)], &r),
        AllocError::NotWithAbout { .. }
    ));
}

// ---------- splits and thresholds ----------

#[test]
fn split_sizes_worked_examples() {
    // N = 10, 80/10/10%, u = 1/2: T = 8, 9, 10 → B = 8, 9, 10 → 8, 1, 1.
    assert_eq!(
        split_sizes(10, &[q(4, 5), q(1, 10), q(1, 10)], 1 << 31),
        [8, 1, 1]
    );
    // N = 7 in thirds: T = 7/3, 14/3, 7.
    let thirds = [q(1, 3), q(1, 3), q(1, 3)];
    assert_eq!(split_sizes(7, &thirds, 0), [2, 2, 3]); // B = 2, 4
    assert_eq!(split_sizes(7, &thirds, 1 << 31), [2, 3, 2]); // B = floor(2.83), floor(5.17)
    assert_eq!(split_sizes(7, &thirds, u32::MAX), [3, 2, 2]); // B = 3, 5
    assert_eq!(split_sizes(0, &thirds, 123), [0, 0, 0]);
}

#[test]
fn thresholds() {
    assert_eq!(threshold(&q(1, 2)), Some(0x8000_0000_0000_0000));
    assert_eq!(threshold(&q(1, 3)), Some(0x5555_5555_5555_5555));
    assert_eq!(threshold(&q(1, 1)), None);
    assert_eq!(threshold(&q(0, 1)), Some(0));
    // 0.8 · 2^64 = 14757395258967641292.8, 0.9 · 2^64 = 16602069666338596454.4
    assert_eq!(
        about_thresholds(&[q(4, 5), q(1, 10), q(1, 10)]),
        [
            Some(14_757_395_258_967_641_292),
            Some(16_602_069_666_338_596_454)
        ]
    );
    assert_eq!(
        about_thresholds(&[q(1, 2), q(1, 2), q(0, 1)]),
        [Some(1 << 63), None]
    );
}

// ---------- properties ----------

fn arb_strata() -> impl Strategy<Value = Vec<StratumInput>> {
    prop::collection::vec(
        (0u64..200, any::<u32>(), prop::option::of(0.0f64..10.0)).prop_map(|(units, start, sd)| {
            StratumInput {
                units,
                start,
                sd,
                rule: None,
            }
        }),
        1..8,
    )
}

fn arb_method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Proportional),
        Just(Method::Equal),
        Just(Method::Neyman),
        (0i64..=100).prop_map(|k| Method::Power(q(k, 100))),
    ]
}

fn arb_bounds() -> impl Strategy<Value = (Option<u64>, Option<u64>)> {
    (prop::option::of(0u64..20), prop::option::of(0u64..100))
        .prop_filter("min <= max", |(lo, hi)| {
            lo.zip(*hi).is_none_or(|(lo, hi)| lo <= hi)
        })
}

fn arb_rule() -> impl Strategy<Value = RuleAmount> {
    prop_oneof![
        Just(RuleAmount::All),
        Just(RuleAmount::None),
        (0u64..50).prop_map(RuleAmount::Count),
        (0i64..=100).prop_map(|k| RuleAmount::Rate(q(k, 100))),
        (0i64..=40).prop_map(|k| RuleAmount::Share(q(k, 100))),
    ]
}

/// The method strata's real targets, recomputed from the internals.
fn real_targets(strata: &[StratumInput], r: &Request, rem: u64) -> (Vec<usize>, Vec<BigRational>) {
    let ids: Vec<usize> = (0..strata.len())
        .filter(|&h| strata[h].rule.is_none())
        .collect();
    let w = weights(strata, &ids, &r.method, &mut vec![]);
    let (lo, hi) = bounds(strata, &ids, r);
    let (_, x) = water_fill(&w, &lo, &hi, &rat(rem)).unwrap();
    (ids, x)
}

/// Checks the clamp form without trusting λ from `water_fill`: the strata strictly
/// inside their bounds share one ratio x/w, and it lies between the ratios of the
/// strata clamped at their upper bounds (below) and lower bounds (above).
fn assert_clamp_form(w: &[BigRational], lo: &[u64], hi: &[u64], x: &[BigRational]) {
    let (mut at_upper, mut at_lower, mut inside) = (vec![], vec![], vec![]);
    for i in 0..w.len() {
        let (l, u) = (rat(lo[i]), rat(hi[i]));
        assert!(l <= x[i] && x[i] <= u);
        if w[i].is_zero() {
            assert_eq!(x[i], l, "zero weight keeps the lower bound");
        } else if l == u {
        } else if x[i] == u {
            at_upper.push(&u / &w[i]);
        } else if x[i] == l {
            at_lower.push(&l / &w[i]);
        } else {
            inside.push(&x[i] / &w[i]);
        }
    }
    if let Some(lam) = inside.first() {
        assert!(inside.iter().all(|v| v == lam));
        assert!(at_upper.iter().all(|v| v <= lam) && at_lower.iter().all(|v| v >= lam));
    } else if let (Some(a), Some(b)) = (at_upper.iter().max(), at_lower.iter().min()) {
        assert!(a <= b);
    }
}

proptest! {
    #[test]
    fn method_only_allocation(
        strata in arb_strata(),
        method in arb_method(),
        (min, max) in arb_bounds(),
        permille in 0u64..=1000,
    ) {
        let take = strata.iter().map(|s| s.units).sum::<u64>() * permille / 1000;
        let r = Request { method, min, max, ..req(Total::Count(take)) };
        let Ok(a) = allocate(&strata, &r) else { return Ok(()) };
        prop_assert_eq!(allocate(&strata, &r), Ok(a.clone()), "deterministic");
        let n = sizes(&a);
        prop_assert_eq!(n.iter().sum::<u64>(), take);
        prop_assert_eq!(a.total.clone(), rat(take));
        let (ids, x) = real_targets(&strata, &r, take);
        let (lo, hi) = bounds(&strata, &ids, &r);
        for (i, &h) in ids.iter().enumerate() {
            prop_assert!(n[h] <= strata[h].units);
            prop_assert!(lo[i] <= n[h] && n[h] <= hi[i]);
            let diff = rat(n[h]) - &x[i];
            prop_assert!(diff.abs() < BigRational::one());
        }
        let w = weights(&strata, &ids, &r.method, &mut vec![]);
        assert_clamp_form(&w, &lo, &hi, &x);
    }

    #[test]
    fn rules_and_methods(
        strata in arb_strata(),
        matches in prop::collection::vec(prop::option::of(0usize..3), 8),
        rules in prop::collection::vec(arb_rule(), 3),
        method in arb_method(),
        (min, max) in arb_bounds(),
        total in prop_oneof![
            (0u64..1200).prop_map(Total::Count),
            (0i64..=1000).prop_map(|k| Total::Fraction(q(k, 1000))),
            Just(Total::All),
        ],
    ) {
        let strata: Vec<_> = strata.into_iter().zip(matches)
            .map(|(s, rule)| StratumInput { rule, ..s }).collect();
        let r = Request { total, rules, method, min, max };
        let Ok(a) = allocate(&strata, &r) else { return Ok(()) };
        prop_assert_eq!(allocate(&strata, &r), Ok(a.clone()), "deterministic");
        let n = sizes(&a);
        prop_assert_eq!(rat(n.iter().sum()), a.total.clone());
        let population: u64 = strata.iter().map(|s| s.units).sum();
        match &r.total {
            Total::Count(k) => prop_assert_eq!(a.total.clone(), rat(*k)),
            Total::Fraction(p) => prop_assert_eq!(
                a.total.clone(), BigRational::from_integer(round_half_up(&(p * rat(population))))),
            _ => {}
        }
        let ids: Vec<usize> = (0..strata.len()).filter(|&h| strata[h].rule.is_none()).collect();
        let (lo, hi) = bounds(&strata, &ids, &r);
        for (i, &h) in ids.iter().enumerate() {
            prop_assert!(lo[i] <= n[h] && n[h] <= hi[i]);
        }
        for (h, s) in strata.iter().enumerate() {
            prop_assert!(n[h] <= s.units);
        }
    }

    #[test]
    fn bernoulli_properties(
        strata in arb_strata(),
        method in arb_method(),
        (min, max) in arb_bounds(),
        p in 0i64..=100,
    ) {
        let p = q(p, 100);
        let plain = allocate(&strata, &req(Total::About(p.clone()))).unwrap();
        for (s, ph) in strata.iter().zip(probs(&plain)) {
            prop_assert_eq!(ph, if s.units > 0 { p.clone() } else { BigRational::zero() });
        }
        let r = Request { method, min, max, ..req(Total::About(p.clone())) };
        let Ok(a) = allocate(&strata, &r) else { return Ok(()) };
        let expected: BigRational =
            strata.iter().zip(probs(&a)).map(|(s, ph)| rat(s.units) * ph).sum();
        prop_assert_eq!(expected, a.total.clone());
        for ph in probs(&a) {
            prop_assert!(!ph.is_negative() && ph <= BigRational::one());
        }
    }

    #[test]
    fn split_sizes_are_floor_or_ceil(
        units in 0u64..10_000,
        parts in prop::collection::vec(0i64..20, 1..6),
        start in any::<u32>(),
    ) {
        let sum: i64 = parts.iter().sum();
        prop_assume!(sum > 0);
        let shares: Vec<_> = parts.iter().map(|&k| q(k, sum)).collect();
        let got = split_sizes(units, &shares, start);
        prop_assert_eq!(got.iter().sum::<u64>(), units);
        for (n, p) in got.iter().zip(&shares) {
            let ideal = p * rat(units);
            prop_assert!(rat(*n) == ideal.floor() || rat(*n) == ideal.ceil());
        }
    }
}

#[test]
fn every_error_message_is_what_then_fix() {
    let r = |n: i64| Box::new(q(n, 1));
    let all = [
        AllocError::OutOfRange {
            what: "a rate",
            value: r(2),
        },
        AllocError::MinAboveMax { min: 5, max: 3 },
        AllocError::TotalTooLarge {
            total: 10,
            population: 5,
        },
        AllocError::SharesOver100 { sum: r(2) },
        AllocError::ShareNeedsTotal { rule: 0 },
        AllocError::NotWithAbout {
            rule: 1,
            amount: "count",
        },
        AllocError::ShareQuotaTooLarge {
            rule: 0,
            quota: 9,
            available: 3,
        },
        AllocError::RemainderNegative {
            total: r(5),
            rules: r(7),
        },
        AllocError::NoMethodStrata { total: 9, rules: 4 },
        AllocError::Infeasible {
            remainder: r(5),
            lower_sum: 9,
            upper_sum: 20,
        },
        AllocError::Infeasible {
            remainder: r(50),
            lower_sum: 9,
            upper_sum: 20,
        },
        AllocError::ZeroWeightShortfall {
            remainder: r(50),
            reachable: r(20),
        },
    ];
    for e in all {
        let text = e.to_string();
        assert_eq!(text.matches("; ").count(), 1, "{text}");
        let (what, fix) = e.what_and_fix();
        assert_eq!(format!("{what}; {fix}"), text);
        assert!(!what.is_empty() && !fix.is_empty(), "{text}");
    }
}

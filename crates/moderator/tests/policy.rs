//! Statistical and reproducibility checks of the moderation policy with seeded generators.

use moderator::{decide, example_order, order_rng, Policy};
use orders::{Decision, REJECT_REASONS};
use rand::{rngs::StdRng, SeedableRng};
use std::collections::HashSet;

#[test]
fn default_policy_matches_the_seed_over_100k_decisions() {
    let policy = Policy::default();
    let order = example_order();
    let mut rng = StdRng::seed_from_u64(7);
    let n = 100_000;
    let (mut approved, mut lmp_sum) = (0u64, 0i64);
    let mut reasons = HashSet::new();
    for _ in 0..n {
        match decide(&policy, &order, &mut rng) {
            Decision::Approved { rt_lmp } => {
                approved += 1;
                lmp_sum += rt_lmp.scaled();
                assert!(
                    (3000..=5000).contains(&rt_lmp.scaled()),
                    "LMP {rt_lmp} outside [30, 50]"
                );
            }
            Decision::Rejected { reason } => {
                assert!(REJECT_REASONS.contains(&reason.as_str()), "{reason}");
                reasons.insert(reason);
            }
        }
    }
    let rate = approved as f64 / n as f64;
    assert!((rate - 0.7).abs() <= 0.01, "approval rate {rate}");
    let mean = lmp_sum as f64 / approved as f64 / 100.0;
    assert!((mean - 40.0).abs() <= 0.2, "mean LMP {mean}");
    assert_eq!(
        reasons.len(),
        REJECT_REASONS.len(),
        "every reason occurs: {reasons:?}"
    );
}

#[test]
fn probability_zero_and_one_are_absolute() {
    let order = example_order();
    let mut rng = StdRng::seed_from_u64(1);
    let never = Policy::new(0.0, 40.0, 10.0).expect("valid policy");
    let always = Policy::new(1.0, 40.0, 10.0).expect("valid policy");
    for _ in 0..10_000 {
        assert!(matches!(
            decide(&never, &order, &mut rng),
            Decision::Rejected { .. }
        ));
        assert!(matches!(
            decide(&always, &order, &mut rng),
            Decision::Approved { .. }
        ));
    }
}

#[test]
fn lmp_never_goes_below_one_cent() {
    let order = example_order();
    let policy = Policy::new(1.0, 0.5, 10.0).expect("valid policy");
    let mut rng = StdRng::seed_from_u64(3);
    let mut floored = 0;
    for _ in 0..10_000 {
        if let Decision::Approved { rt_lmp } = decide(&policy, &order, &mut rng) {
            assert!(rt_lmp.scaled() >= 1, "{rt_lmp}");
            floored += usize::from(rt_lmp.scaled() == 1);
        }
    }
    assert!(floored > 0, "the floor was exercised");
}

#[test]
fn same_seed_and_id_give_the_same_decision() {
    let policy = Policy::default();
    let mut order = example_order();
    let mut outcomes = HashSet::new();
    for i in 0..200 {
        order.id = format!("order-{i}");
        let a = decide(&policy, &order, &mut order_rng(99, &order.id));
        let b = decide(&policy, &order, &mut order_rng(99, &order.id));
        assert_eq!(a, b);
        outcomes.insert(format!("{a:?}"));
    }
    assert!(outcomes.len() > 50, "different ids give different outcomes");
    order.id = "fixed".into();
    let differs = (0..50u64)
        .map(|seed| {
            format!(
                "{:?}",
                decide(&policy, &order, &mut order_rng(seed, "fixed"))
            )
        })
        .collect::<HashSet<_>>();
    assert!(differs.len() > 10, "the seed changes outcomes");
}

#[test]
fn invalid_policies_are_refused() {
    for (p, b, v) in [
        (-0.1, 40.0, 10.0),
        (1.1, 40.0, 10.0),
        (f64::NAN, 40.0, 10.0),
    ] {
        assert!(Policy::new(p, b, v).is_err(), "{p}");
    }
    for (b, v) in [
        (-1.0, 10.0),
        (40.0, -1.0),
        (f64::INFINITY, 1.0),
        (40.0, f64::NAN),
        (40.001, 1.0),
    ] {
        assert!(Policy::new(0.5, b, v).is_err(), "{b} {v}");
    }
    assert!(Policy::new(0.5, 0.0, 0.0).is_ok());
}

//! Seeded decisions pinned to the values the moderator produced before policies and price
//! sources became pluggable, so a refactor cannot silently change a reproducible run.

use moderator::{decide, example_order, order_rng, Moderator, Policy};
use orders::Decision;

/// A decision as compact text: `A<cents>` or `R<reason>`.
fn text(d: &Decision) -> String {
    match d {
        Decision::Approved { rt_lmp } => format!("A{}", rt_lmp.scaled()),
        Decision::Rejected { reason } => format!("R{reason}"),
    }
}

/// FNV-1a over the texts of 10,000 seeded decisions (4 seeds × 2,500 ids).
fn digest(policy: &Policy, decide_one: impl Fn(&Policy, &orders::Order, u64) -> Decision) -> u64 {
    let mut order = example_order();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for seed in [0u64, 1, 42, u64::MAX] {
        for i in 0..2500 {
            order.id = format!("order-{i}");
            let s = text(&decide_one(policy, &order, seed));
            for b in s.bytes().chain(std::iter::once(b'|')) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    h
}

fn policies() -> [(Policy, u64, [&'static str; 6]); 3] {
    let valid = |p, b, v| Policy::new(p, b, v).unwrap_or_default();
    [
        (
            Policy::default(),
            0xe189_c59c_df7d_0185,
            [
                "A3320",
                "A4215",
                "RInsufficient market liquidity",
                "RInsufficient market liquidity",
                "A3243",
                "A3622",
            ],
        ),
        (
            valid(0.5, 0.5, 10.0),
            0x7571_c6e8_a40c_cc56,
            [
                "A1",
                "A265",
                "RInsufficient market liquidity",
                "RInsufficient market liquidity",
                "A1",
                "RInsufficient market liquidity",
            ],
        ),
        (
            valid(0.9, 123.45, 0.0),
            0x2021_1f7c_1a1b_0345,
            [
                "A12345",
                "A12345",
                "A12345",
                "RInsufficient market liquidity",
                "A12345",
                "A12345",
            ],
        ),
    ]
}

#[test]
fn decide_reproduces_the_pinned_decisions() {
    let mut order = example_order();
    for (policy, want_digest, first_six) in policies() {
        for (i, want) in first_six.iter().enumerate() {
            order.id = format!("order-{i}");
            let got = decide(&policy, &order, &mut order_rng(42, &order.id));
            assert_eq!(text(&got), *want, "{policy:?} order-{i}");
        }
        let got = digest(&policy, |p, o, seed| {
            decide(p, o, &mut order_rng(seed, &o.id))
        });
        assert_eq!(got, want_digest, "{policy:?}");
    }
}

#[test]
fn the_random_policy_over_simulated_prices_reproduces_them_too() {
    for (policy, want_digest, _) in policies() {
        let moderator = Moderator::new(policy.random_policy(), policy.simulated_prices());
        let got = digest(&policy, |_, o, seed| {
            moderator.decide(o, &mut order_rng(seed, &o.id)).into()
        });
        assert_eq!(got, want_digest, "{policy:?}");
    }
}

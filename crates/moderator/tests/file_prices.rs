//! The file price source against a fixture in PJM Data Miner 2's `rt_hrl_lmps` layout that the
//! test writes: three nodes × 48 hours around the end of daylight saving time in US Eastern
//! (2024-11-03, when `datetime_beginning_ept` shows 1:00 AM twice), one negative LMP, one
//! superseded row. Also bad rows, time formats, column mappings and configuration.

use chrono::{DateTime, Duration, TimeZone, Utc};
use moderator::{
    example_order, order_rng, ClearingPolicy, ColumnMap, ConfigError, FileError, FilePrices,
    ModerationConfig, Moderator, PolicyKind, PriceSource, PriceSourceSpec, RandomPolicy,
    SimulatedPrices, WithFallback,
};
use orders::{Decision, Price, Side};
use std::io::Write;

const NODES: [&str; 3] = ["PJM-RTO", "AECO", "BGE"];
const HEADER: &str = "datetime_beginning_utc,datetime_beginning_ept,pnode_id,pnode_name,voltage,equipment,type,zone,system_energy_price_rt,total_lmp_rt,congestion_price_rt,marginal_loss_price_rt,row_is_current,version_nbr";

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .unwrap_or_default()
}

/// First hour of the fixture: 2024-11-02 00:00 EDT.
fn start() -> DateTime<Utc> {
    utc(2024, 11, 2, 4)
}

/// The fixture's LMP in cents for node `n` at hour `h` (0..48), with one negative hour.
fn lmp(n: usize, h: i64) -> i64 {
    if n == 1 && h == 28 {
        -1235 // written as -12.345, rounded half away from zero
    } else {
        2000 + 137 * h + 1000 * n as i64
    }
}

/// Data Miner's time format: `11/3/2024 1:00:00 AM`.
fn data_miner(t: chrono::NaiveDateTime) -> String {
    t.format("%-m/%-d/%Y %-I:%M:%S %p").to_string()
}

fn fixture() -> String {
    let dst_end = utc(2024, 11, 3, 6);
    let mut out = format!("{HEADER}\n");
    for h in 0..48 {
        let t = start() + Duration::hours(h);
        let offset = if t < dst_end { 4 } else { 5 };
        let ept = data_miner((t - Duration::hours(offset)).naive_utc());
        for (n, node) in NODES.iter().enumerate() {
            let total = lmp(n, h);
            let text = if total == -1235 {
                "-12.345".to_string()
            } else {
                format!("{}.{:02}0000", total / 100, total % 100)
            };
            let (energy, loss) = (2000, 12);
            let congestion = total - energy - loss;
            let cents = |c: i64| format!("{:.2}", c as f64 / 100.0);
            out.push_str(&format!(
                "{},{ept},{},{node},500 KV,,ZONE,{node},{},{text},{},{},TRUE,1\n",
                data_miner(t.naive_utc()),
                5_000_000 + n,
                cents(energy),
                cents(congestion),
                cents(loss),
            ));
        }
    }
    // A superseded version of one price: skipped because row_is_current is FALSE.
    out.push_str(&format!(
        "{},x,1,PJM-RTO,,,ZONE,PJM-RTO,20,999.99,0,0,FALSE,0\n",
        data_miner(start().naive_utc())
    ));
    out
}

fn write_fixture() -> tempfile::TempPath {
    let mut file = tempfile::Builder::new()
        .prefix("rt_hrl_lmps")
        .suffix(".csv")
        .tempfile()
        .unwrap_or_else(|e| panic!("temp file: {e}"));
    file.write_all(fixture().as_bytes())
        .unwrap_or_else(|e| panic!("write: {e}"));
    file.into_temp_path()
}

fn load() -> (FilePrices, tempfile::TempPath) {
    let path = write_fixture();
    let prices = FilePrices::load(&path, &ColumnMap::default())
        .unwrap_or_else(|e| panic!("fixture loads: {e}"));
    (prices, path)
}

fn rng() -> rand_chacha::ChaCha8Rng {
    order_rng(0, "x")
}

fn lmp_at(prices: &dyn PriceSource, node: &str, at: DateTime<Utc>) -> Option<i64> {
    prices
        .price(node, at, &mut rng())
        .ok()
        .map(|q| q.price.lmp.scaled())
}

#[test]
fn the_fixture_loads_every_node_and_hour_and_names_the_file() {
    let (prices, path) = load();
    assert_eq!(prices.len(), 3 * 48);
    assert_eq!(prices.locations(), vec!["AECO", "BGE", "PJM-RTO"]);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(prices.name(), format!("FILE:{file_name}"));
    for h in 0..48 {
        for (n, node) in NODES.iter().enumerate() {
            let t = start() + Duration::hours(h);
            assert_eq!(lmp_at(&prices, node, t), Some(lmp(n, h)), "{node} {t}");
        }
    }
}

#[test]
fn the_repeated_local_hour_does_not_confuse_the_utc_column() {
    // The fixture really does repeat the local hour.
    let repeated = fixture()
        .lines()
        .filter(|l| l.contains(",11/3/2024 1:00:00 AM,5000000,PJM-RTO,"))
        .count();
    assert_eq!(repeated, 2);
    let (prices, _path) = load();
    // 1:00 AM EDT and 1:00 AM EST: 05:00Z and 06:00Z, two hours, two prices.
    let edt = lmp_at(&prices, "PJM-RTO", utc(2024, 11, 3, 5));
    let est = lmp_at(&prices, "PJM-RTO", utc(2024, 11, 3, 6));
    assert_eq!(edt, Some(lmp(0, 25)));
    assert_eq!(est, Some(lmp(0, 26)));
    assert_ne!(edt, est);
}

#[test]
fn an_order_is_priced_by_the_hour_containing_its_due_time() {
    let (prices, _path) = load();
    let at = utc(2024, 11, 3, 5) + Duration::minutes(59) + Duration::seconds(59);
    let q = prices.price("BGE", at, &mut rng());
    let q = q.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(q.price.interval_start_utc, utc(2024, 11, 3, 5));
    assert_eq!(q.price.lmp.scaled(), lmp(2, 25));
    // Components come from their columns; energy + congestion + loss = LMP in this fixture.
    assert_eq!(q.price.energy, Some(Price::from_scaled(2000)));
    assert_eq!(q.price.loss, Some(Price::from_scaled(12)));
    assert_eq!(
        q.price.congestion,
        Some(Price::from_scaled(lmp(2, 25) - 2012))
    );
}

#[test]
fn a_negative_lmp_is_kept_and_rounded_half_away_from_zero() {
    let (prices, _path) = load();
    let at = start() + Duration::hours(28);
    assert_eq!(lmp_at(&prices, "AECO", at), Some(-1235));
    // A BUY at -12.35 clears, one at -12.36 does not.
    let m = Moderator::new(ClearingPolicy::default(), prices);
    let mut o = example_order();
    o.location = "AECO".into();
    o.hour_start_utc = at;
    o.side = Side::Buy;
    o.limit_price = Price::from_scaled(-1235);
    let d = m.decide(&o, &mut order_rng(0, &o.id));
    assert_eq!(
        d.decision,
        Decision::Approved {
            rt_lmp: Price::from_scaled(-1235)
        }
    );
    o.limit_price = Price::from_scaled(-1236);
    assert!(matches!(
        m.decide(&o, &mut order_rng(0, &o.id)).decision,
        Decision::Rejected { .. }
    ));
}

#[test]
fn the_superseded_row_is_skipped() {
    let (prices, _path) = load();
    assert_eq!(lmp_at(&prices, "PJM-RTO", start()), Some(lmp(0, 0)));
}

#[test]
fn a_missing_price_rejects_or_falls_back_to_the_simulated_model() {
    let (prices, _path) = load();
    let before = start() - Duration::minutes(1);
    let err = prices.price("PJM-RTO", before, &mut rng());
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err("No real-time price for PJM-RTO at 2024-11-02T03:00:00.000Z".to_string())
    );
    assert!(prices.price("NOWHERE", start(), &mut rng()).is_err());
    let after = start() + Duration::hours(48);
    assert!(prices.price("PJM-RTO", after, &mut rng()).is_err());

    let both = WithFallback::new(prices, SimulatedPrices::default());
    let q = both.price("NOWHERE", start(), &mut rng());
    assert_eq!(
        q.map(|q| q.source.to_string()).ok().as_deref(),
        Some("SIMULATED_RT")
    );
    let q = both.price("AECO", start(), &mut rng());
    assert!(q.map(|q| q.source.starts_with("FILE:")).unwrap_or(false));
}

#[test]
fn range_queries_answer_in_time_order() {
    let (prices, _path) = load();
    let (from, to) = (utc(2024, 11, 3, 4), utc(2024, 11, 3, 8));
    let r = prices.range("PJM-RTO", from, to);
    let starts: Vec<_> = r.iter().map(|p| p.interval_start_utc).collect();
    assert_eq!(
        starts,
        (4..8).map(|h| utc(2024, 11, 3, h)).collect::<Vec<_>>()
    );
    assert_eq!(
        r.iter().map(|p| p.lmp.scaled()).collect::<Vec<_>>(),
        (24..28).map(|h| lmp(0, h)).collect::<Vec<_>>()
    );
    assert!(prices.range("PJM-RTO", to, from).is_empty());
    assert!(prices.range("NOWHERE", from, to).is_empty());
    assert_eq!(
        prices
            .range(
                "BGE",
                start() - Duration::days(9),
                start() + Duration::days(9)
            )
            .len(),
        48
    );

    let half_past = utc(2024, 11, 3, 5) + Duration::minutes(30);
    let latest = prices.latest_at_or_before("AECO", half_past);
    assert_eq!(
        latest.map(|p| p.interval_start_utc),
        Some(utc(2024, 11, 3, 5))
    );
    let long_after = start() + Duration::days(30);
    let last = prices.latest_at_or_before("AECO", long_after);
    assert_eq!(
        last.map(|p| p.interval_start_utc),
        Some(start() + Duration::hours(47))
    );
    assert_eq!(
        prices.latest_at_or_before("AECO", start() - Duration::seconds(1)),
        None
    );
}

#[test]
fn simulated_range_queries_are_seeded_ordered_and_consistent() {
    let sim = SimulatedPrices::default().with_seed(9);
    let (from, to) = (utc(2024, 1, 1, 0), utc(2024, 1, 1, 1));
    let r = sim.range("PJM-RTO", from, to);
    assert_eq!(r.len(), 12);
    assert_eq!(r, sim.range("PJM-RTO", from, to));
    assert_ne!(
        r,
        SimulatedPrices::default()
            .with_seed(10)
            .range("PJM-RTO", from, to)
    );
    for (i, p) in r.iter().enumerate() {
        assert_eq!(p.interval_start_utc, from + Duration::minutes(5 * i as i64));
        assert!((3000..=5000).contains(&p.lmp.scaled()));
        let parts = [p.energy, p.congestion, p.loss].map(|c| c.map_or(0, |c| c.scaled()));
        assert_eq!(parts.iter().sum::<i64>(), p.lmp.scaled());
    }
    let latest = sim.latest_at_or_before("PJM-RTO", from + Duration::minutes(7));
    assert_eq!(latest, Some(r[1]));
    let huge = sim.range("PJM-RTO", from, from + Duration::days(365));
    assert_eq!(huge.len(), moderator::price::MAX_SIMULATED_RANGE);
}

fn parse(text: &str) -> Result<FilePrices, FileError> {
    FilePrices::from_reader(text.as_bytes(), &ColumnMap::default(), "FILE:t.csv")
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(p) => format!("loaded {} prices", p.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_rows_are_refused_naming_their_line() {
    let head = "datetime_beginning_utc,pnode_name,total_lmp_rt\n";
    let good = "1/1/2024 5:00:00 AM,PJM-RTO,41.23\n";
    let cases = [
        (
            "1/1/2024 5:00:00 AM,PJM-RTO,abc\n",
            "line 3",
            "'abc' is not a price",
        ),
        (
            "1/1/2024 5:00:00 AM,PJM-RTO,\n",
            "line 3",
            "'' is not a price",
        ),
        ("13/45/2024 5:00:00 AM,PJM-RTO,1\n", "line 3", "not a time"),
        (
            "1/1/2024 5:00:00 AM,,1\n",
            "line 3",
            "'pnode_name' is empty",
        ),
        (
            "1/1/2024 5:00:00 AM,PJM-RTO,41.24\n",
            "line 3",
            "first on line 2",
        ),
        ("1/1/2024 6:00:00 AM,PJM-RTO\n", "line 3", ""),
    ];
    for (row, line, what) in cases {
        let e = error_of(&format!("{head}{good}{row}"));
        assert!(e.contains(line) && e.contains(what), "{row:?}: {e}");
    }
    // The same price twice is harmless.
    assert_eq!(error_of(&format!("{head}{good}{good}")), "loaded 1 prices");
    assert_eq!(error_of(head), "price file holds no prices");
    // A byte-order mark before the header (as spreadsheet tools write) is not part of a name.
    assert_eq!(
        error_of(&format!("\u{feff}{head}{good}")),
        "loaded 1 prices"
    );
    let e = error_of("datetime_beginning_ept,pnode_name,total_lmp_rt\n");
    assert!(e.contains("no column 'datetime_beginning_utc'"), "{e}");
    let e = FilePrices::load(
        std::path::Path::new("/nonexistent/lmps.csv"),
        &ColumnMap::default(),
    );
    assert!(matches!(e, Err(FileError::Io { .. })), "{e:?}");
}

#[test]
fn data_miner_and_iso_8601_times_are_read_as_utc() {
    let five = Some(utc(2024, 1, 1, 5));
    for text in [
        "1/1/2024 5:00:00 AM",
        "01/01/2024 05:00:00 AM",
        "1/1/2024 5:00 AM",
        "2024-01-01T05:00:00Z",
        "2024-01-01T05:00:00.000Z",
        "2024-01-01T00:00:00-05:00",
        "2024-01-01 05:00:00",
        "2024-01-01T05:00:00",
        "2024-01-01T05:00",
        "2024-01-01 00:00:00-05:00",
    ] {
        assert_eq!(moderator::price::file::parse_time(text), five, "{text}");
    }
    let p = moderator::price::file::parse_time;
    assert_eq!(p("1/1/2024 12:00:00 AM"), Some(utc(2024, 1, 1, 0)));
    assert_eq!(p("1/1/2024 12:00:00 PM"), Some(utc(2024, 1, 1, 12)));
    assert_eq!(p("1/1/2024 5:00:00 PM"), Some(utc(2024, 1, 1, 17)));
    for bad in ["", "yesterday", "2024-13-01T00:00:00Z", "1/1/2024"] {
        assert_eq!(p(bad), None, "{bad}");
    }
}

#[test]
fn another_isos_columns_can_be_mapped() {
    let csv = "IntervalStartUTC,Node,LMP,Energy\n2024-01-01T05:00:00Z,HB_NORTH,22.5,20\n2024-01-01T06:00:00Z,HB_NORTH,-3.456,20\n";
    let map = ColumnMap::parse("time=IntervalStartUTC, location=Node,lmp=LMP,energy=Energy")
        .unwrap_or_else(|e| panic!("{e}"));
    let prices = FilePrices::from_reader(csv.as_bytes(), &map, "FILE:ercot.csv")
        .unwrap_or_else(|e| panic!("{e}"));
    let at = utc(2024, 1, 1, 6);
    let q = prices
        .price("HB_NORTH", at, &mut rng())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (q.price.lmp.scaled(), q.price.energy, q.price.loss),
        (-346, Some(Price::from_scaled(2000)), None)
    );
    // Unmapped, the default names are not found.
    assert!(matches!(
        FilePrices::from_reader(csv.as_bytes(), &ColumnMap::default(), "x"),
        Err(FileError::MissingColumn { role: "time", .. })
    ));
    for bad in ["time", "colour=red", "lmp="] {
        assert!(ColumnMap::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(ColumnMap::parse("").ok(), Some(ColumnMap::default()));
}

#[test]
fn configuration_builds_policy_and_source_from_flag_values() {
    let path = write_fixture();
    let spec: PriceSourceSpec = format!("file:{}", path.display())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let config = ModerationConfig {
        policy: "clearing".parse().unwrap_or_else(|e| panic!("{e}")),
        price_source: spec.clone(),
        ..ModerationConfig::default()
    };
    let m = config.build().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        m.describe()
            .starts_with("clearing(rejection_rate=0) over FILE:rt_hrl_lmps"),
        "{}",
        m.describe()
    );
    let mut o = example_order();
    o.hour_start_utc = start() + Duration::hours(3);
    o.limit_price = Price::from_scaled(lmp(0, 3));
    let out = m.decide(&o, &mut order_rng(0, &o.id));
    assert_eq!(
        out.decision,
        Decision::Approved {
            rt_lmp: Price::from_scaled(lmp(0, 3))
        }
    );
    assert_eq!(out.rt_interval_start_utc(), Some(o.hour_start_utc));
    assert!(out
        .rt_source()
        .is_some_and(|s| s.starts_with("FILE:rt_hrl_lmps")));

    // Without a price: rejected, or simulated when configured to fall back.
    o.location = "NOWHERE".into();
    assert!(matches!(
        m.decide(&o, &mut order_rng(0, &o.id)).decision,
        Decision::Rejected { .. }
    ));
    let fallback = ModerationConfig {
        fallback_to_simulated: true,
        policy: PolicyKind::Random,
        random: moderator::Policy::new(1.0, 40.0, 10.0).unwrap_or_default(),
        ..config.clone()
    };
    let m = fallback.build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.decide(&o, &mut order_rng(0, &o.id)).rt_source(),
        Some("SIMULATED_RT")
    );

    assert_eq!(spec.to_string(), format!("file:{}", path.display()));
    assert_eq!(
        "SIMULATED".parse::<PriceSourceSpec>().ok(),
        Some(PriceSourceSpec::Simulated)
    );
    for bad in ["file:", "http://x", "", "files:/a"] {
        assert!(bad.parse::<PriceSourceSpec>().is_err(), "{bad}");
    }
    assert!("greedy".parse::<PolicyKind>().is_err());
    let missing = ModerationConfig {
        price_source: PriceSourceSpec::File("/nonexistent/x.csv".into()),
        ..ModerationConfig::default()
    };
    assert!(matches!(
        missing.build(),
        Err(ConfigError::File(FileError::Io { .. }))
    ));
    let bad_rate = ModerationConfig {
        clearing_rejection_rate: 2.0,
        ..config
    };
    assert!(matches!(bad_rate.build(), Err(ConfigError::Policy(_))));
    // The defaults are the original's.
    let d = ModerationConfig::default()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.describe(), Moderator::default().describe());
    assert_eq!(
        d.describe(),
        format!(
            "{} over SIMULATED_RT",
            moderator::ModerationPolicy::describe(&RandomPolicy::default())
        )
    );
}

//! Recorded real-time prices from a CSV file, loaded once into memory.
//!
//! The file is header-driven: columns are found by name, in any order, among any others. The
//! default names are those of PJM Data Miner 2's hourly real-time LMP export, `rt_hrl_lmps`
//! ([`ColumnMap::default`]); [`ColumnMap::parse`] maps other ISOs' names. Times are read as the
//! Data Miner export writes them (`1/1/2024 5:00:00 AM`) or as ISO 8601 (`2024-01-01T05:00:00Z`,
//! an offset, or none); a time without an offset is taken as UTC, which is why the default time
//! column is `datetime_beginning_utc` and not the local `datetime_beginning_ept`, whose
//! 1:00 AM repeats on the day daylight saving time ends. Prices are read exactly into cents
//! (see [`super::cents`]); negative prices are normal and kept.
//!
//! Loading ([`FilePrices::load`], [`FilePrices::from_reader`]) is the only IO; it fails with a
//! [`FileError`] naming the line of the first bad row. Lookups afterwards are pure.

use super::{cents::parse_cents, NoPrice, PriceSource, Quote, RtPrice};
use chrono::{DateTime, NaiveDateTime, Utc};
use orders::Price;
use rand::Rng;
use std::{
    collections::{BTreeMap, HashMap},
    io,
    path::Path,
    sync::Arc,
};

/// Why a price file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened or read.
    #[error("cannot read price file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// The CSV itself is malformed (unbalanced quotes, a row of the wrong width, bad UTF-8).
    #[error("price file, line {line}: {message}")]
    Csv {
        /// Line of the bad record (1 is the header).
        line: u64,
        /// What the CSV reader said.
        message: String,
    },
    /// The header lacks a required column.
    #[error("price file: no column '{column}' for the {role} (header: {header})")]
    MissingColumn {
        /// `time`, `location` or `lmp`.
        role: &'static str,
        /// The name looked for.
        column: String,
        /// The header as read.
        header: String,
    },
    /// A time that is neither Data Miner's format nor ISO 8601.
    #[error("price file, line {line}: column '{column}': '{value}' is not a time like '1/1/2024 5:00:00 AM' or '2024-01-01T05:00:00Z'")]
    BadTime {
        /// Line of the row.
        line: u64,
        /// The column.
        column: String,
        /// The text found.
        value: String,
    },
    /// A price that is not a decimal number.
    #[error("price file, line {line}: column '{column}': '{value}' is not a price ({reason})")]
    BadPrice {
        /// Line of the row.
        line: u64,
        /// The column.
        column: String,
        /// The text found.
        value: String,
        /// Why.
        reason: super::cents::CentsError,
    },
    /// A row without a location.
    #[error("price file, line {line}: column '{column}' is empty")]
    EmptyLocation {
        /// Line of the row.
        line: u64,
        /// The column.
        column: String,
    },
    /// Two current rows give different prices for one location and interval.
    #[error("price file, line {line}: a second, different price for {location} at {interval} (first on line {first_line})")]
    Conflict {
        /// Line of the second row.
        line: u64,
        /// The location.
        location: String,
        /// The interval start, as the API writes times.
        interval: String,
        /// Line of the first row.
        first_line: u64,
    },
    /// The file holds no current price at all (only a header, say): most likely the wrong
    /// export or filter, and every order would be rejected.
    #[error("price file holds no prices")]
    Empty,
    /// A column mapping that cannot be understood.
    #[error("price column mapping '{0}': expected comma-separated ROLE=COLUMN with ROLE one of time, location, lmp, energy, congestion, loss, current")]
    Mapping(String),
}

/// Which CSV column holds what. The defaults are PJM Data Miner 2's `rt_hrl_lmps` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    /// Interval start, in UTC or with an offset (`datetime_beginning_utc`).
    pub time: String,
    /// Pricing node or zone (`pnode_name`).
    pub location: String,
    /// Total LMP, $/MWh (`total_lmp_rt`).
    pub lmp: String,
    /// Energy component, used when present (`system_energy_price_rt`).
    pub energy: String,
    /// Congestion component, used when present (`congestion_price_rt`).
    pub congestion: String,
    /// Marginal loss component, used when present (`marginal_loss_price_rt`).
    pub loss: String,
    /// When present, rows whose value here is `FALSE` are superseded versions and skipped
    /// (`row_is_current`).
    pub current: String,
}

impl Default for ColumnMap {
    fn default() -> Self {
        Self {
            time: "datetime_beginning_utc".into(),
            location: "pnode_name".into(),
            lmp: "total_lmp_rt".into(),
            energy: "system_energy_price_rt".into(),
            congestion: "congestion_price_rt".into(),
            loss: "marginal_loss_price_rt".into(),
            current: "row_is_current".into(),
        }
    }
}

impl ColumnMap {
    /// The defaults overridden by `ROLE=COLUMN` pairs separated by commas, such as
    /// `time=INTERVAL_START_UTC,location=NODE,lmp=LMP` (roles: `time`, `location`, `lmp`,
    /// `energy`, `congestion`, `loss`, `current`). An empty text keeps the defaults.
    pub fn parse(text: &str) -> Result<Self, FileError> {
        let mut map = Self::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || FileError::Mapping(text.to_string());
            let (role, column) = pair.split_once('=').ok_or_else(bad)?;
            let column = column.trim();
            if column.is_empty() {
                return Err(bad());
            }
            let slot = match role.trim() {
                "time" => &mut map.time,
                "location" => &mut map.location,
                "lmp" => &mut map.lmp,
                "energy" => &mut map.energy,
                "congestion" => &mut map.congestion,
                "loss" => &mut map.loss,
                "current" => &mut map.current,
                _ => return Err(bad()),
            };
            *slot = column.to_string();
        }
        Ok(map)
    }
}

/// Length of an interval in the file, in seconds: `rt_hrl_lmps` is hourly.
pub const FILE_INTERVAL_SECS: i64 = 3600;

/// One stored price and the line it came from (to name both lines of a conflict).
#[derive(Debug, Clone, Copy)]
struct Row {
    price: RtPrice,
    line: u64,
}

/// Hourly real-time prices read from a CSV file, by location then interval start.
#[derive(Debug, Clone)]
pub struct FilePrices {
    name: Arc<str>,
    by_location: HashMap<String, BTreeMap<DateTime<Utc>, Row>>,
    rows: usize,
}

impl FilePrices {
    /// Reads the file at `path` with `columns`; named `FILE:<file name>`.
    pub fn load(path: &Path, columns: &ColumnMap) -> Result<Self, FileError> {
        let file = std::fs::File::open(path).map_err(|source| FileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let file_name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self::from_reader(
            io::BufReader::new(file),
            columns,
            &format!("FILE:{file_name}"),
        )
    }

    /// Reads CSV text from `reader` with `columns`; `name` is what quotes will record as their
    /// source.
    pub fn from_reader<R: io::Read>(
        reader: R,
        columns: &ColumnMap,
        name: &str,
    ) -> Result<Self, FileError> {
        let mut csv = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(reader);
        let csv_error = |e: csv::Error| FileError::Csv {
            line: e.position().map_or(1, csv::Position::line),
            message: e.to_string(),
        };
        let header = csv.headers().map_err(csv_error)?.clone();
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}') == name)
        };
        let required = |role, name: &String| {
            find(name).ok_or_else(|| FileError::MissingColumn {
                role,
                column: name.clone(),
                header: header.iter().collect::<Vec<_>>().join(","),
            })
        };
        let time_col = required("time", &columns.time)?;
        let location_col = required("location", &columns.location)?;
        let lmp_col = required("lmp", &columns.lmp)?;
        let components = [
            find(&columns.energy).map(|i| (i, &columns.energy)),
            find(&columns.congestion).map(|i| (i, &columns.congestion)),
            find(&columns.loss).map(|i| (i, &columns.loss)),
        ];
        let current_col = find(&columns.current);

        let mut by_location: HashMap<String, BTreeMap<DateTime<Utc>, Row>> = HashMap::new();
        let mut rows = 0;
        let mut record = csv::StringRecord::new();
        while csv.read_record(&mut record).map_err(csv_error)? {
            let line = record.position().map_or(0, csv::Position::line);
            let field = |i: usize| record.get(i).unwrap_or("");
            if current_col.is_some_and(|i| field(i).eq_ignore_ascii_case("false")) {
                continue;
            }
            let location = field(location_col);
            if location.is_empty() {
                return Err(FileError::EmptyLocation {
                    line,
                    column: columns.location.clone(),
                });
            }
            let time_text = field(time_col);
            let interval_start_utc = parse_time(time_text).ok_or_else(|| FileError::BadTime {
                line,
                column: columns.time.clone(),
                value: time_text.to_string(),
            })?;
            let price = |i: usize, column: &String| {
                parse_cents(field(i))
                    .map(Price::from_scaled)
                    .map_err(|reason| FileError::BadPrice {
                        line,
                        column: column.clone(),
                        value: field(i).to_string(),
                        reason,
                    })
            };
            // An empty component is unknown; an empty LMP is an error.
            let component = |c: Option<(usize, &String)>| match c {
                Some((i, column)) if !field(i).is_empty() => price(i, column).map(Some),
                _ => Ok(None),
            };
            let row = Row {
                price: RtPrice {
                    interval_start_utc,
                    lmp: price(lmp_col, &columns.lmp)?,
                    energy: component(components[0])?,
                    congestion: component(components[1])?,
                    loss: component(components[2])?,
                },
                line,
            };
            let series = by_location.entry(location.to_string()).or_default();
            match series.get(&interval_start_utc) {
                Some(first) if first.price != row.price => {
                    return Err(FileError::Conflict {
                        line,
                        location: location.to_string(),
                        interval: orders::format_ms(&interval_start_utc),
                        first_line: first.line,
                    })
                }
                Some(_) => {}
                None => {
                    series.insert(interval_start_utc, row);
                    rows += 1;
                }
            }
        }
        if rows == 0 {
            return Err(FileError::Empty);
        }
        Ok(Self {
            name: Arc::from(name),
            by_location,
            rows,
        })
    }

    /// Number of distinct (location, interval) prices held.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Always false: a file without prices is refused when loading ([`FileError::Empty`]).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The locations priced, sorted.
    pub fn locations(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_location.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The interval containing `at`: the last one starting at or before it, if `at` falls
    /// within its hour.
    fn containing(&self, location: &str, at: DateTime<Utc>) -> Option<&RtPrice> {
        let (start, row) = self.by_location.get(location)?.range(..=at).next_back()?;
        (at < *start + chrono::Duration::seconds(FILE_INTERVAL_SECS)).then_some(&row.price)
    }
}

/// Start of the hour containing `at` (UTC hours: every ISO's hourly intervals start on them).
fn hour_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let secs = at.timestamp().div_euclid(FILE_INTERVAL_SECS) * FILE_INTERVAL_SECS;
    DateTime::from_timestamp(secs, 0).unwrap_or(at)
}

impl PriceSource for FilePrices {
    /// `FILE:<file name>`.
    fn name(&self) -> &str {
        &self.name
    }

    fn price(
        &self,
        location: &str,
        at: DateTime<Utc>,
        _rng: &mut dyn Rng,
    ) -> Result<Quote, NoPrice> {
        match self.containing(location, at) {
            Some(price) => Ok(Quote {
                source: Arc::clone(&self.name),
                price: *price,
            }),
            None => Err(NoPrice {
                location: location.to_string(),
                interval_start_utc: hour_start(at),
            }),
        }
    }

    fn latest_at_or_before(&self, location: &str, at: DateTime<Utc>) -> Option<RtPrice> {
        let series = self.by_location.get(location)?;
        series.range(..=at).next_back().map(|(_, row)| row.price)
    }

    fn range(&self, location: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<RtPrice> {
        match self.by_location.get(location) {
            Some(series) if start < end => series.range(start..end).map(|(_, r)| r.price).collect(),
            _ => Vec::new(),
        }
    }
}

/// Reads a time as Data Miner writes it (`1/1/2024 5:00:00 AM`, also without seconds) or as
/// ISO 8601 (`2024-01-01T05:00:00Z`, `2024-01-01T00:00:00-05:00`, `2024-01-01 05:00:00`).
/// Without an offset the time is UTC. Fractions of a second are dropped, never rounded.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    const WITH_OFFSET: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"];
    const NAIVE: [&str; 7] = [
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %I:%M %p",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ];
    let text = text.trim();
    let t = DateTime::parse_from_rfc3339(text)
        .ok()
        .or_else(|| {
            WITH_OFFSET
                .iter()
                .find_map(|f| DateTime::parse_from_str(text, f).ok())
        })
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            NAIVE
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .map(|t| t.and_utc())
        })?;
    DateTime::from_timestamp(t.timestamp(), 0)
}

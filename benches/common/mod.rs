//! Shared by the benchmarks: their settings from the environment and a realistic generated
//! roster.

// Each benchmark is its own crate and uses only part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A benchmark setting from the environment variable `name`, `default` when unset or unreadable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The rostersync binary measured: ROSTERSYNC_BIN, else the one built with this benchmark.
pub fn binary() -> PathBuf {
    std::env::var_os("ROSTERSYNC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rostersync")))
}

/// A realistic roster: names, emails, two clients, 1-2 locations, 1-3 content items.
/// `changed` rows (every users/changed-th) get another last name.
pub fn generate_roster(path: &Path, users: usize, changed: usize) {
    let night = Night {
        renamed: changed,
        ..Night::default()
    };
    generate_night(path, users, night);
}

/// How a later night's roster differs from the first one's: each field names every how
/// many rows of the first roster it happens to (0: never).
#[derive(Debug, Clone, Copy, Default)]
pub struct Night {
    /// Every `renamed`-th row has another last name (an update).
    pub renamed: usize,
    /// Every `recontent`-th row (from row `recontent / 2`) has another content list (an
    /// enrolment and a removal).
    pub recontent: usize,
    /// Every `removed`-th row (from row `removed / 4`) is gone (a deactivation).
    pub removed: usize,
    /// After every `added`-th row (from row `3 * added / 4`), a new person with a new key
    /// (a create).
    pub added: usize,
}

impl Night {
    /// The next-night roster of issue 11: 1% of rows changed (half renamed, half with other
    /// content), 0.5% removed and 0.5% added.
    pub const NEXT: Night = Night {
        renamed: 200,
        recontent: 200,
        removed: 200,
        added: 200,
    };

    fn hits(every: usize, offset: usize, i: usize) -> bool {
        every > 0 && i % every == offset % every
    }
}

/// The roster of `users` people (see [`generate_roster`]) as it is on `night`.
pub fn generate_night(path: &Path, users: usize, night: Night) {
    let catalog = rostersync::samples::catalog();
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer
        .write_record(rostersync::ingest::roster::COLUMNS)
        .unwrap();
    let mut hired = users;
    for i in 0..users {
        if !Night::hits(night.removed, night.removed / 4, i) {
            let renamed = Night::hits(night.renamed, 0, i);
            let recontent = Night::hits(night.recontent, night.recontent / 2, i);
            writer
                .write_record(person(&catalog, i, i, renamed, recontent))
                .unwrap();
        }
        if Night::hits(night.added, 3 * night.added / 4, i) {
            // A new hire: a new key, the other cells as any other person's.
            writer
                .write_record(person(&catalog, hired, i, false, false))
                .unwrap();
            hired += 1;
        }
    }
    writer.flush().unwrap();
}

/// Person `id`'s row, its cells picked by `i`.
fn person(
    catalog: &rostersync::ingest::catalog::Catalog,
    id: usize,
    i: usize,
    renamed: bool,
    recontent: bool,
) -> [String; 11] {
    let first = [
        "Ana", "Ben", "Chloé", "David", "Elif", "Farah", "George", "Hana", "Ivan", "Jonas", "Kemi",
        "Liam",
    ];
    let last = [
        "Smith", "García", "Nguyen", "O'Brien", "Müller", "Kowalski", "Haddad", "Okafor", "Rossi",
        "Tanaka",
    ];
    let client = &catalog.clients[i % 2];
    let locations: Vec<&str> = catalog
        .locations
        .iter()
        .filter(|l| l.client.as_deref().is_none_or(|c| c == client.uuid))
        .map(|l| l.name.as_str())
        .collect();
    let location = if i.is_multiple_of(3) {
        format!(
            "{};{}",
            locations[i % locations.len()],
            locations[(i + 1) % locations.len()]
        )
    } else {
        locations[i % locations.len()].to_owned()
    };
    // Other content: the list of the next person along (another first item, one more or
    // fewer).
    let c = if recontent { i + 1 } else { i };
    let content: Vec<&str> = (0..1 + c % 3)
        .map(|k| {
            catalog.content[(c + k * 5) % catalog.content.len()]
                .sku
                .as_str()
        })
        .collect();
    let last_name = if renamed {
        "Changed"
    } else {
        last[i % last.len()]
    };
    [
        format!("EMP{id:07}"),
        first[i % first.len()].to_owned(),
        last_name.to_owned(),
        format!("person{id}@example.com"),
        if i.is_multiple_of(10) {
            "Supervisor"
        } else {
            "Learner"
        }
        .to_owned(),
        "active".to_owned(),
        client.name.clone(),
        location,
        "Counselor".to_owned(),
        "day camp".to_owned(),
        content.join(";"),
    ]
}

//! Shared by the benchmarks: their settings from the environment and a realistic generated
//! roster.

// Each benchmark is its own crate and uses only part of this.
#![allow(dead_code)]

use std::path::Path;

/// A benchmark setting from the environment variable `name`, `default` when unset or unreadable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A realistic roster: names, emails, two clients, 1-2 locations, 1-3 content items.
/// `changed` rows (every users/changed-th) get another last name.
pub fn generate_roster(path: &Path, users: usize, changed: usize) {
    let catalog = rostersync::samples::catalog();
    let first = [
        "Ana", "Ben", "Chloé", "David", "Elif", "Farah", "George", "Hana", "Ivan", "Jonas", "Kemi",
        "Liam",
    ];
    let last = [
        "Smith", "García", "Nguyen", "O'Brien", "Müller", "Kowalski", "Haddad", "Okafor", "Rossi",
        "Tanaka",
    ];
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer
        .write_record(rostersync::ingest::roster::COLUMNS)
        .unwrap();
    for i in 0..users {
        let client = &catalog.clients[i % 2];
        let locations: Vec<&str> = catalog
            .locations
            .iter()
            .filter(|l| l.client.as_deref().is_none_or(|c| c == client.uuid))
            .map(|l| l.name.as_str())
            .collect();
        let location = if i % 3 == 0 {
            format!(
                "{};{}",
                locations[i % locations.len()],
                locations[(i + 1) % locations.len()]
            )
        } else {
            locations[i % locations.len()].to_owned()
        };
        let content: Vec<&str> = (0..1 + i % 3)
            .map(|k| {
                catalog.content[(i + k * 5) % catalog.content.len()]
                    .sku
                    .as_str()
            })
            .collect();
        let last_name = if changed > 0 && i % changed == 0 {
            "Changed"
        } else {
            last[i % last.len()]
        };
        writer
            .write_record([
                format!("EMP{i:07}"),
                first[i % first.len()].to_owned(),
                last_name.to_owned(),
                format!("person{i}@example.com"),
                if i % 10 == 0 { "Supervisor" } else { "Learner" }.to_owned(),
                "active".to_owned(),
                client.name.clone(),
                location,
                "Counselor".to_owned(),
                "day camp".to_owned(),
                content.join(";"),
            ])
            .unwrap();
    }
    writer.flush().unwrap();
}

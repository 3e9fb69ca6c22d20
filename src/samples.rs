//! The sample catalogs shipped in `samples/`, compiled in so that `rostersync sim` and
//! `rostersync demo` work from any folder with nothing to install.

use crate::ingest::catalog::{Catalog, Source};

pub const CLIENTS_CSV: &str = include_str!("../samples/clients.csv");
pub const LOCATIONS_CSV: &str = include_str!("../samples/locations.csv");
pub const CONTENT_CSV: &str = include_str!("../samples/content.csv");
pub const ROSTER_CSV: &str = include_str!("../samples/roster.csv");
pub const ROSTER_NIGHT2_CSV: &str = include_str!("../samples/roster-night2.csv");
pub const DEMO_TOML: &str = include_str!("../samples/demo.toml");

/// The data files of samples/, by file name.
pub const FILES: [(&str, &str); 5] = [
    ("clients.csv", CLIENTS_CSV),
    ("locations.csv", LOCATIONS_CSV),
    ("content.csv", CONTENT_CSV),
    ("roster.csv", ROSTER_CSV),
    ("roster-night2.csv", ROSTER_NIGHT2_CSV),
];

/// The built-in sample catalog, with the roles of the target the samples are for.
pub fn catalog() -> Catalog {
    let source = |label: &str, text: &'static str| Source {
        label: format!("(built-in) samples/{label}"),
        reader: text.as_bytes(),
    };
    Catalog::from_sources(
        source("clients.csv", CLIENTS_CSV),
        source("locations.csv", LOCATIONS_CSV),
        source("content.csv", CONTENT_CSV),
    )
    // The samples are checked by a unit test; a broken one must not ship.
    .expect("the built-in sample catalogs are valid")
    .with_roles(crate::targets::Kind::Praesidium.capabilities().roles)
}

#[cfg(test)]
mod tests {
    #[test]
    fn built_in_samples_load() {
        let catalog = super::catalog();
        assert_eq!(catalog.clients.len(), 2);
        assert!(catalog.locations.len() >= 10);
        assert!(catalog.content.len() >= 15);
    }
}

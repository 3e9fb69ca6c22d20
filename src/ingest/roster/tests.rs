use super::*;

fn read(text: &str) -> Roster {
    read_with(text, &HashMap::new()).unwrap()
}

fn read_with(text: &str, columns: &HashMap<String, String>) -> Result<Roster> {
    let defaults = Defaults {
        client: "Northwind Camps".into(),
        role: "Learner".into(),
    };
    read_roster_from(
        "roster.csv",
        std::io::Cursor::new(text.as_bytes().to_vec()),
        &crate::samples::catalog(),
        &defaults,
        columns,
    )
}

const HEADER: &str = "external_id,first_name,last_name,email,role,status,client,locations,position,program_type,content\n";

#[test]
fn a_roster_without_groups_keeps_the_context_of_the_release_before_them() {
    // The release before the `groups` column hashed the positions of the 11 columns as
    // an array; its ledgers' row memos stay valid only if this is the same text.
    let catalog = crate::samples::catalog();
    let defaults = Defaults {
        client: "Northwind Camps".into(),
        role: "Learner".into(),
    };
    let columns = HashMap::new();
    let reader = RosterReader::new(
        "roster.csv",
        std::io::Cursor::new(HEADER.as_bytes().to_vec()),
        &catalog,
        &defaults,
        &columns,
    )
    .unwrap();
    let before: [Option<usize>; 11] = std::array::from_fn(Some);
    let expected = xxhash_rust::xxh3::xxh3_64(
        format!(
            "{ROW_MEMO_VERSION}|{}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}",
            env!("CARGO_PKG_VERSION"),
            catalog.clients,
            catalog.locations,
            catalog.content,
            before,
            11,
            defaults.client,
            defaults.role,
        )
        .as_bytes(),
    );
    assert_eq!(reader.context, expected);
    // A groups roster is another context.
    let groups = Catalog::of_groups();
    let with_groups = RosterReader::new(
        "roster.csv",
        std::io::Cursor::new(b"external_id,first_name,last_name,email,groups\n".to_vec()),
        &groups,
        &defaults,
        &columns,
    )
    .unwrap();
    assert_ne!(with_groups.context, expected);
}

#[test]
fn valid_rows_are_normalized_and_resolved() {
    let roster = read(&format!(
        "{HEADER}E1, Ana ,Lima,ANA@Example.com,supervisor,,,Lakeside Camp;head office;lakeside camp,Lead,day,SAFE-101;lp-onboard;SAFE-101\n"
    ));
    assert!(roster.rejects.is_empty(), "{:?}", roster.rejects);
    let user = &roster.users[0];
    assert_eq!(
        (user.first_name.as_str(), user.email.as_str(), user.role),
        ("Ana", "ana@example.com", "Supervisor")
    );
    assert!(user.active);
    assert_eq!(user.locations.len(), 2);
    assert_eq!(user.content.len(), 2);
    assert!(user.content.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(user.line, 2);
}

#[test]
fn each_kind_of_bad_row_is_rejected_with_line_and_column() {
    let roster = read(&format!(
        "{HEADER}\
         E1,Ana,Lima,ana@example.com,,,,,,,\n\
         E2,,Lima,b@example.com,,,,,,,\n\
         E3,Bo,Li,not-an-email,,,,,,,\n\
         E4,Bo,Li,e4@example.com,Wizard,,,,,,\n\
         E5,Bo,Li,e5@example.com,,retired,,,,,\n\
         E6,Bo,Li,e6@example.com,,,Nowhere Inc,,,,\n\
         E7,Bo,Li,e7@example.com,,,,Atlantis,,,\n\
         E8,Bo,Li,e8@example.com,,,,,,,NOPE-1\n\
         E9,Bo,Li,e9@example.com\n"
    ));
    assert_eq!(roster.users.len(), 1);
    let got: Vec<(u64, &str)> = roster
        .rejects
        .iter()
        .map(|r| (r.line, r.column.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, "first_name"),
            (4, "email"),
            (5, "role"),
            (6, "status"),
            (7, "client"),
            (8, "locations"),
            (9, "content"),
            (10, "(row)")
        ]
    );
    assert_eq!(roster.rejects[0].key.as_deref(), Some("E2"));
    assert!(
        roster.rejects[7]
            .reason
            .contains("expected 11 fields, found 4")
    );
}

#[test]
fn duplicate_keys_and_shared_emails_reject_every_row_involved() {
    let roster = read(&format!(
        "{HEADER}\
         E1,A,A,a@example.com,,,,,,,\n\
         E1,A,A,a2@example.com,,,,,,,\n\
         E2,B,B,shared@example.com,,,,,,,\n\
         E3,C,C,SHARED@example.com,,,,,,,\n\
         E4,D,D,d@example.com,,,,,,,\n"
    ));
    assert_eq!(
        roster
            .users
            .iter()
            .map(|u| u.key.as_str())
            .collect::<Vec<_>>(),
        vec!["E4"]
    );
    assert_eq!(
        roster.rejects.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
    assert!(roster.rejects[0].reason.contains("lines 2, 3"));
    assert!(
        roster.rejects[2].reason.contains("E2, E3"),
        "{}",
        roster.rejects[2].reason
    );
    assert!(
        roster.rejects[0].original.contains("a@example.com"),
        "the original row is kept"
    );
}

#[test]
fn long_fields_and_invalid_utf8_are_rejected_not_fatal() {
    let long = "x".repeat(MAX_FIELD_BYTES + 1);
    // A UTF-8 file (its accents are UTF-8) with one row that is not.
    let mut bytes =
        format!("{HEADER}E1,A,{long},a@example.com,,,,,,,\nE0,Zoë,Brontë,z@example.com,,,,,,,\n")
            .into_bytes();
    bytes.extend_from_slice(b"E2,Jos\xe9,B,b@example.com,,,,,,,\nE3,C,C,c@example.com,,,,,,,\n");
    let roster = read_bytes(bytes);
    assert_eq!(roster.users.len(), 2);
    assert_eq!(roster.rejects[0].column, "last_name");
    assert!(roster.rejects[0].reason.contains("bytes long"));
    assert_eq!(
        (roster.rejects[1].line, roster.rejects[1].column.as_str()),
        (4, "first_name")
    );
    assert!(roster.rejects[1].reason.contains("not valid UTF-8"));
    assert_eq!(roster.rejects[1].key.as_deref(), Some("E2"));
    assert_eq!(
        roster.rejects[1].original,
        "E2,Jos\u{FFFD},B,b@example.com,,,,,,,"
    );
}

fn read_bytes(bytes: Vec<u8>) -> Roster {
    read_roster_from(
        "r.csv",
        std::io::Cursor::new(bytes),
        &crate::samples::catalog(),
        &Defaults {
            client: "Northwind Camps".into(),
            role: "Learner".into(),
        },
        &HashMap::new(),
    )
    .unwrap()
}

#[test]
fn a_windows_1252_file_is_read_whole() {
    let roster = read_bytes(
        format!(
            "{HEADER}E2,Jos\u{e9},B,b@example.com,,,,,,,\nE3,Ren\u{e9}e,C,c@example.com,,,,,,,\n"
        )
        .chars()
        .map(|c| c as u32 as u8)
        .collect(),
    );
    assert!(roster.rejects.is_empty(), "{:?}", roster.rejects);
    assert_eq!(roster.users[0].first_name, "José");
    assert_eq!(roster.users[1].first_name, "Renée");
}

#[test]
fn spreadsheet_errors_and_undecodable_characters_are_refused() {
    let roster = read(&format!(
        "{HEADER}E1,#N/A,B,b@example.com,,,,,,,\nE2,Ann,B\u{FFFD},c@example.com,,,,,,,\nE3,Ann,#ok,d@example.com,,,,,,,\n"
    ));
    let got: Vec<(u64, &str)> = roster
        .rejects
        .iter()
        .map(|r| (r.line, r.column.as_str()))
        .collect();
    assert_eq!(got, vec![(2, "first_name"), (3, "last_name")]);
    assert!(roster.rejects[0].reason.contains("spreadsheet error"));
    assert!(roster.rejects[1].reason.contains("U+FFFD"));
    assert_eq!(roster.users.len(), 1);
}

#[test]
fn spreadsheet_exports_and_mapped_headers_are_read() {
    let text = "\u{feff}Employee ID,First Name,LAST_NAME,E-mail,Locations\r\n\
                7,\"Zoë\",\"O'Neil, Jr.\",zoe@example.com,\"Lakeside Camp;\r\nHead Office\"\r\n";
    let columns = HashMap::from([
        ("Employee ID".to_owned(), "external_id".to_owned()),
        ("E-mail".to_owned(), "email".to_owned()),
    ]);
    let roster = read_with(text, &columns).unwrap();
    assert!(roster.rejects.is_empty(), "{:?}", roster.rejects);
    let user = &roster.users[0];
    assert_eq!(
        (
            user.key.as_str(),
            user.first_name.as_str(),
            user.last_name.as_str()
        ),
        ("7", "Zoë", "O'Neil, Jr.")
    );
    assert_eq!(user.locations.len(), 2);
}

#[test]
fn structurally_broken_files_are_fatal() {
    assert!(format!("{:#}", read_with("", &HashMap::new()).unwrap_err()).contains("empty"));
    let err = read_with("id,name\n1,x\n", &HashMap::new()).unwrap_err();
    assert!(
        format!("{err:#}").contains("missing required column(s) external_id"),
        "{err:#}"
    );
}

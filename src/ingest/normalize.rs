//! Value normalization shared by every reader of operator-supplied text.
//!
//! Owns the rules that make two spellings of the same thing compare equal: trimming,
//! Unicode NFC, case folding for names and emails, and the shape checks (email, UUID).
//! Pure functions only: nothing here reads files or knows about rows.

use unicode_normalization::UnicodeNormalization;

/// Trims surrounding white space and puts the text in Unicode NFC, so that "é" typed as one
/// code point and as "e" + combining accent are the same value.
pub fn clean(raw: &str) -> String {
    let trimmed = raw.trim();
    // Most exports are ASCII; skipping the NFC pass for them keeps ingest fast.
    if trimmed.is_ascii() {
        trimmed.to_owned()
    } else {
        trimmed.nfc().collect()
    }
}

/// The form used to match names (clients, locations, content, roles) and emails:
/// cleaned and lower-cased.
pub fn fold(raw: &str) -> String {
    let cleaned = clean(raw);
    if cleaned.is_ascii() {
        cleaned.to_ascii_lowercase()
    } else {
        cleaned.to_lowercase()
    }
}

/// The form used to match CSV headers: case, spaces, underscores and hyphens do not matter,
/// so "Employee ID", "employee_id" and "EmployeeId" all become "employeeid".
pub fn header_key(raw: &str) -> String {
    fold(raw.trim_start_matches('\u{feff}'))
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .collect()
}

/// A deliberately plain email check: one `@`, a non-empty local part, a domain with a dot
/// and no empty labels, and no white space or control characters. It accepts what mail
/// servers accept in practice and rejects the typos spreadsheets produce.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') || email.len() > 254 {
        return false;
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>' | '"'))
    {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
}

/// Whether a value has the shape of a Praesidium UUID: hex groups separated by dashes.
/// The provider's own documents show identifiers whose last group is 11 digits long, so the
/// check is on the alphabet and the grouping, not on RFC 4122 lengths.
pub fn looks_like_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .all(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_hexdigit()))
        && (32..=40).contains(&value.len())
}

/// Splits a `;`-separated multi-value cell into cleaned, non-empty values, sorted and
/// without duplicates (compared case-insensitively, keeping the first spelling).
pub fn split_multi(raw: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut values: Vec<String> = raw
        .split(';')
        .map(clean)
        .filter(|v| !v.is_empty())
        .filter(|v| seen.insert(fold(v)))
        .collect();
    values.sort_by_key(|v| fold(v));
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_trims_and_composes() {
        assert_eq!(clean("  Ana "), "Ana");
        // "e" followed by U+0301 COMBINING ACUTE ACCENT composes to U+00E9.
        assert_eq!(clean("Jose\u{0301}"), "Jos\u{e9}");
    }

    #[test]
    fn fold_ignores_case_including_non_ascii() {
        assert_eq!(fold(" Zoë@Example.COM "), "zoë@example.com");
        assert_eq!(fold("ÅSA"), "åsa");
    }

    #[test]
    fn header_keys_ignore_case_spaces_underscores_and_bom() {
        assert_eq!(header_key("Employee ID"), "employeeid");
        assert_eq!(header_key("employee_id"), "employeeid");
        assert_eq!(header_key("\u{feff}External_Id"), "externalid");
        assert_eq!(header_key("Program-Type"), "programtype");
    }

    #[test]
    fn email_check_accepts_real_addresses_and_rejects_typos() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "zoë@exämple.com",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@.b.com",
            ".a@b.com",
            "a..b@c.com",
            "a@b.com;c@d.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn uuid_shape_accepts_provider_ids() {
        assert!(looks_like_uuid("aaaaaaaa-bbbb-cccc-dddd-5ce2287baaa"));
        assert!(looks_like_uuid("3f2b8c1e-9a4d-4e2f-8b1a-0c9d8e7f6a5b"));
        assert!(!looks_like_uuid("Main Office"));
        assert!(!looks_like_uuid("aaaaaaaa-bbbb-cccc-dddd"));
        assert!(!looks_like_uuid("gggggggg-bbbb-cccc-dddd-5ce2287baaaa"));
    }

    #[test]
    fn multi_values_are_sorted_and_deduped() {
        assert_eq!(split_multi(" b ; a;;B; c "), vec!["a", "b", "c"]);
        assert!(split_multi(" ; ").is_empty());
    }
}

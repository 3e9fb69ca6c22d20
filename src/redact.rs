//! Scrubbing of secrets and tokens from text that is about to leave the process.
//!
//! Owns the list of values that must never be printed or stored (the client secret, every
//! token a server has issued, and their usual encodings) and the scrubbing of any text: those
//! values, plus whatever *looks* like a credential even when we never saw it before (a
//! `"refresh_token": "..."` field in an answer, `Bearer ...`, an `Authorization: ...` header
//! echoed back by a server). Platform-neutral: it knows nothing of any API.
//!
//! Must never panic on any input, never return more than the cap asked for, and never hand a
//! registered value back in any form it knows.

use std::sync::RwLock;

use base64::Engine as _;

/// What a scrubbed value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Field names whose values are credentials wherever they appear (JSON, form or header
/// style). Compared case-insensitively and as whole words, so `tokens_left` is not one.
const CREDENTIAL_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "client_secret",
    "secret",
    "password",
    "api_key",
    "apikey",
];

/// Schemes of the `Authorization` header whose credential follows after a space.
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "token", "digest"];

/// The scrubber. Cheap to share behind an `Arc`; values are added as they become known.
#[derive(Default)]
pub struct Redactor {
    /// Every registered value and its encodings, lower-cased (matching ignores ASCII case).
    known: RwLock<Vec<String>>,
    /// The values themselves (lower-cased), looked for in decoded views of a text.
    raw: RwLock<Vec<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(***)")
    }
}

impl Redactor {
    /// A scrubber that already knows `values` (e.g. the client secret).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let redactor = Redactor::default();
        for value in values {
            redactor.add(value);
        }
        redactor
    }

    /// Registers a value (a secret, a token) and the encodings in which a server or a library
    /// might echo it: base64 (both alphabets, as in Basic auth, and wherever the value sits in
    /// the encoded text), hex, percent-encoded (a form body, or every byte), JSON-escaped (a
    /// JSON echo). Matching ignores ASCII case, so upper- or lower-cased echoes are caught.
    pub fn add(&self, value: &str) {
        if value.is_empty() {
            return;
        }
        {
            let mut raw = self.raw.write().unwrap_or_else(|p| p.into_inner());
            let lower = value.to_ascii_lowercase();
            if !raw.contains(&lower) {
                raw.push(lower);
            }
        }
        let mut forms = vec![value.to_owned()];
        forms.push(base64::engine::general_purpose::STANDARD.encode(value));
        forms.push(base64::engine::general_purpose::STANDARD_NO_PAD.encode(value));
        forms.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value));
        forms.extend(base64_cores(value.as_bytes()));
        let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
        forms.push(value.bytes().map(|b| format!("%{b:02x}")).collect());
        forms.push(hex);
        forms.push(form_urlencoded::byte_serialize(value.as_bytes()).collect());
        if let Ok(json) = serde_json::to_string(value) {
            let inner = json.strip_prefix('"').and_then(|j| j.strip_suffix('"'));
            forms.extend(inner.map(str::to_owned));
        }
        // A poisoned lock only means another thread panicked while pushing; the list is
        // still a valid Vec, so keep using it rather than lose the scrubbing.
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        for form in forms {
            // Lower-cased once here: every match ignores ASCII case.
            let form = form.to_ascii_lowercase();
            if !form.is_empty() && !known.contains(&form) {
                known.push(form);
            }
        }
        // Longest first, so a value that contains another is replaced whole.
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }

    /// `text` with every registered value and everything that looks like a credential
    /// replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        {
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            for value in known.iter() {
                out = replace_ignoring_ascii_case(&out, value);
            }
        }
        // Encodings with no fixed form (escapes of every character, base64 broken into MIME
        // lines, quoted-printable, ...) are found by decoding: if a decoded view of what is
        // left still holds a value, nothing of the text can be kept.
        if self.quotes_a_value(&out) {
            return QUOTED.to_owned();
        }
        let out = scrub_keyed_values(&out);
        scrub_auth_schemes(&out)
    }

    /// Whether a decoded view of (the head of) `text` holds a registered value.
    fn quotes_a_value(&self, text: &str) -> bool {
        let raw = self.raw.read().unwrap_or_else(|p| p.into_inner());
        if raw.is_empty() {
            return false;
        }
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        let head = &text[..floor_char_boundary(text, VIEWED)];
        decoded_views(head).iter().any(|view| {
            let view = view.to_ascii_lowercase();
            raw.iter().any(|value| view.contains(value.as_str()))
                // Base64 and hex of a value, once MIME line breaks or separators are gone.
                || known
                    .iter()
                    .filter(|form| form.len() >= 8)
                    .any(|form| view.contains(form.as_str()))
        })
    }

    /// [`Redactor::scrub`], then cut to at most `max_chars` characters (marked with `…`).
    /// Scrubbing comes first so that a cut can never leave the head of a secret behind.
    pub fn scrub_capped(&self, text: &str, max_chars: usize) -> String {
        cap(&self.scrub(text), max_chars)
    }
}

/// The part of a value's base64 that is the same wherever the value sits in the encoded text:
/// a value after 0, 1 or 2 other bytes is encoded with other 6-bit boundaries, so an echo of
/// `client_id:secret` or `{"client_secret": ...}` as base64 holds one of these three, whatever
/// comes before. Too short a core is left out: it would match ordinary words.
fn base64_cores(value: &[u8]) -> Vec<String> {
    const SHORTEST: usize = 8;
    let mut cores = Vec::new();
    for offset in 1..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(value);
        // Characters carrying bits of the leading bytes, and the last one, which carries bits
        // of whatever follows the value, depend on the neighbours: only those between are fixed.
        let first = (8 * offset).div_ceil(6);
        let last = 8 * padded.len() / 6;
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let encoded = engine.encode(&padded);
            if let Some(core) = encoded.get(first..last).filter(|c| c.len() >= SHORTEST) {
                cores.push(core.to_owned());
            }
        }
    }
    cores
}

/// What a text is replaced with when a decoded view of it quotes a secret or a token.
pub const QUOTED: &str = "[redacted: the text quoted a credential in an encoded form]";

/// How much of a text is decoded to look for values: more than is ever kept of a message
/// (a few hundred characters), so a value straddling the cut is seen whole.
const VIEWED: usize = 16 * 1024;

fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// Decodings of `text` in which an echoed value would reappear: JSON and C escapes (`\uXXXX`,
/// `\/`, `\xHH`), HTML character references, percent-encoding, quoted-printable, and the text
/// without whitespace or separators (base64 broken into lines, hex in spaced or colon pairs).
fn decoded_views(text: &str) -> Vec<String> {
    let unescaped = unescape(text);
    let percent: String = percent_decode(&text.replace('+', " "));
    let quoted_printable = qp_decode(text);
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let hex_only: String = text.chars().filter(char::is_ascii_hexdigit).collect();
    let unescaped_compact: String = unescaped.chars().filter(|c| !c.is_whitespace()).collect();
    vec![
        unescaped,
        percent,
        quoted_printable,
        compact,
        hex_only,
        unescaped_compact,
    ]
}

/// Decodes `\uXXXX`, `\xHH`, `\/`, `\\`, `&#NN;`, `&#xHH;` and a few named references; anything
/// else is kept as it is.
fn unescape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let hex_at = |from: usize, len: usize| -> Option<u32> {
        let digits: String = chars.get(from..from + len)?.iter().collect();
        u32::from_str_radix(&digits, 16).ok()
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            match chars[i + 1] {
                'u' | 'U' => {
                    if let Some(ch) = hex_at(i + 2, 4).and_then(char::from_u32) {
                        out.push(ch);
                        i += 6;
                        continue;
                    }
                }
                'x' | 'X' => {
                    if let Some(ch) = hex_at(i + 2, 2).and_then(char::from_u32) {
                        out.push(ch);
                        i += 4;
                        continue;
                    }
                }
                other @ ('/' | '\\' | '"' | '\'') => {
                    out.push(other);
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        if c == '&'
            && let Some(end) = chars[i..].iter().take(12).position(|&c| c == ';')
        {
            let entity: String = chars[i + 1..i + end].iter().collect();
            let decoded = match entity.as_str() {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            if let Some(ch) = decoded {
                out.push(ch);
                i += end + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Decodes every `%HH` (bytes that do not form UTF-8 are replaced).
fn percent_decode(text: &str) -> String {
    decode_marked_hex(text.as_bytes(), b'%', false)
}

/// Quoted-printable: soft line breaks (`=` at a line end) removed, `=HH` decoded.
fn qp_decode(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    decode_marked_hex(joined.as_bytes(), b'=', true)
}

fn decode_marked_hex(bytes: &[u8], mark: u8, upper_only: bool) -> String {
    let hex = |b: u8| -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'A'..=b'F' => Some(b - b'A' + 10),
            b'a'..=b'f' if !upper_only => Some(b - b'a' + 10),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == mark
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(high << 4 | low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every occurrence of `needle`, in any ASCII case, replaced by [`REDACTED`].
fn replace_ignoring_ascii_case(text: &str, needle: &str) -> String {
    if needle.is_empty() || needle.len() > text.len() {
        return text.to_owned();
    }
    // ASCII lowercasing keeps every byte offset, so a match found in the lowered copies is
    // at the same place in `text`; a match of a UTF-8 needle starts and ends on boundaries.
    let lower_text = text.to_ascii_lowercase();
    let lower_needle = needle.to_ascii_lowercase();
    if !lower_text.contains(&lower_needle) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in lower_text.match_indices(&lower_needle) {
        if at < copied {
            continue;
        }
        out.push_str(&text[copied..at]);
        out.push_str(REDACTED);
        copied = at + needle.len();
    }
    out.push_str(&text[copied..]);
    out
}

/// At most `max_chars` characters of `text`, with `…` in place of the rest.
pub fn cap(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// Whether `byte` may be part of a word (field names, tokens).
fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Replaces the value following any credential-named field: `"token": "v"`, `token=v`,
/// `Authorization: Bearer v` (the whole header value, up to the end of the line or quote).
fn scrub_keyed_values(text: &str) -> String {
    // ASCII lowercase keeps every byte offset, so positions found in `lower` are valid in
    // `text`, and all the bytes matched below are ASCII, so slices fall on char boundaries.
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let Some((key_end, whole_line)) = key_at(&lower, at) else {
            at += 1;
            continue;
        };
        // After the key: an optional closing quote, spaces, then `:` or `=`.
        let mut i = key_end;
        if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() || !(bytes[i] == b':' || bytes[i] == b'=') {
            at = key_end;
            continue;
        }
        i += 1;
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        let (start, end) = value_span(bytes, i, whole_line);
        // Already replaced as a known value: `[redacted]` must not be cut at its `]`.
        let end = if text[start..].starts_with(REDACTED) {
            start + REDACTED.len()
        } else {
            end
        };
        if end > start && &text[start..end] != REDACTED {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = end;
        }
        at = end.max(key_end);
    }
    out.push_str(&text[copied..]);
    out
}

/// The end of a credential key starting exactly at `at` (on a word boundary), and whether its
/// value runs to the end of the line (a header).
fn key_at(lower: &str, at: usize) -> Option<(usize, bool)> {
    let bytes = lower.as_bytes();
    if at > 0 && is_word(bytes[at - 1]) {
        return None;
    }
    let rest = &bytes[at..];
    let keys = CREDENTIAL_KEYS
        .iter()
        .map(|k| (*k, false))
        .chain([("authorization", true), ("proxy-authorization", true)]);
    for (key, whole_line) in keys {
        if rest.starts_with(key.as_bytes()) {
            let end = at + key.len();
            if end < bytes.len() && is_word(bytes[end]) {
                continue;
            }
            return Some((end, whole_line));
        }
    }
    None
}

/// The span of a value starting at `i`: a quoted string (to its unescaped closing quote), or
/// a bare word; for a header, the rest of the line.
fn value_span(bytes: &[u8], i: usize, whole_line: bool) -> (usize, usize) {
    if i >= bytes.len() {
        return (i, i);
    }
    let quote = bytes[i];
    if quote == b'"' || quote == b'\'' {
        let start = i + 1;
        let mut j = start;
        while j < bytes.len() && bytes[j] != quote && bytes[j] != b'\n' {
            if bytes[j] == b'\\' && j + 1 < bytes.len() && bytes[j + 1] == quote {
                j += 1;
            }
            j += 1;
        }
        return (start, j.min(bytes.len()));
    }
    let stop: &[u8] = if whole_line {
        b"\r\n\"'"
    } else {
        b" \t\r\n&,;}]\"')<>"
    };
    let mut j = i;
    while j < bytes.len() && !stop.contains(&bytes[j]) {
        j += 1;
    }
    // Keep the cut on a character boundary: a stop byte is ASCII, and the end of the
    // text is always a boundary.
    (i, j)
}

/// Replaces the credential after an authorization scheme: `Bearer abc.def` → `Bearer
/// [redacted]`, wherever it appears (a log line, a message that quotes a header).
fn scrub_auth_schemes(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let boundary = at == 0 || !is_word(bytes[at - 1]);
        let scheme = boundary
            .then(|| {
                AUTH_SCHEMES
                    .iter()
                    .find(|s| lower.as_bytes()[at..].starts_with(s.as_bytes()))
            })
            .flatten();
        let Some(scheme) = scheme else {
            at += 1;
            continue;
        };
        let mut i = at + scheme.len();
        if i >= bytes.len() || bytes[i] != b' ' {
            at = i;
            continue;
        }
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        // Token characters of RFC 6750 (b64token) and of Basic/Digest values.
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || b"-._~+/=:".contains(&bytes[i]))
        {
            i += 1;
        }
        let value = &text[start..i];
        // A prose word after "token " ("token expired") is not a credential: redact only
        // what has the look of one (long enough, or not all letters).
        let credential = value.len() >= 8 || value.bytes().any(|b| !b.is_ascii_alphabetic());
        if !value.is_empty() && credential {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = i;
        }
        at = i.max(at + 1);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t+/=&\"x";

    #[test]
    fn known_values_and_their_encodings_are_replaced() {
        let r = Redactor::new([SECRET]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
        let pct: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
        let json = serde_json::to_string(&serde_json::json!({ "echo": SECRET })).unwrap();
        for text in [
            format!("got {SECRET} here"),
            format!("b64 {b64}"),
            format!("form a={pct}"),
            json,
        ] {
            let scrubbed = r.scrub(&text);
            assert!(!scrubbed.contains(SECRET), "{scrubbed}");
            assert!(!scrubbed.contains(&b64), "{scrubbed}");
            assert!(!scrubbed.contains(&pct), "{scrubbed}");
            assert!(scrubbed.contains(REDACTED), "{scrubbed}");
        }
        r.add("tok-later");
        assert_eq!(r.scrub("x tok-later y"), "x [redacted] y");
        assert_eq!(r.scrub("x TOK-LATER y"), "x [redacted] y");
        // Issue 9: encodings a hostile server echoed the secret in.
        let hex: String = SECRET.bytes().map(|b| format!("{b:02X}")).collect();
        let every_byte: String = SECRET.bytes().map(|b| format!("%{b:02X}")).collect();
        let engine = &base64::engine::general_purpose::STANDARD;
        for text in [
            SECRET.to_uppercase(),
            hex,
            every_byte,
            engine.encode(format!(
                "{{\"client_id\":\"xyz_client\",\"client_secret\":\"{SECRET}\"}}"
            )),
            engine.encode(format!("x{SECRET}")),
            engine.encode(format!("xy{SECRET}")),
            engine.encode(format!("xyz{SECRET}tail")),
        ] {
            let scrubbed = r.scrub(&text);
            assert!(scrubbed.contains(REDACTED), "{text} -> {scrubbed}");
            // What is left of a base64 echo cannot be decoded back to the secret.
            assert!(
                !scrubbed.contains(&SECRET.to_uppercase())
                    && scrubbed.len() < text.len() + REDACTED.len(),
                "{text} -> {scrubbed}"
            );
        }
        r.add("");
        assert_eq!(r.scrub("nothing"), "nothing");
    }

    #[test]
    fn encodings_with_no_fixed_form_are_found_by_decoding() {
        let secret = "Zq8/wX+k~9Lm=pR*7sT!";
        let r = Redactor::new([secret]);
        let body = format!("{{\"client_id\":\"xyz_client\",\"client_secret\":\"{secret}\"}}");
        let mime: String = base64::engine::general_purpose::STANDARD
            .encode(format!("{body}{body}"))
            .as_bytes()
            .chunks(76)
            .map(|line| format!("{}\r\n", String::from_utf8_lossy(line)))
            .collect();
        let every_char: String = secret
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let php = secret.replace('/', "\\/");
        let rfc3986: String = secret
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let qp = secret.replace('=', "=3D");
        let entities: String = secret
            .chars()
            .map(|c| format!("&#x{:x};", c as u32))
            .collect();
        let spaced_hex: String = secret.bytes().map(|b| format!("{b:02x} ")).collect();
        for text in [mime, every_char, php, rfc3986, qp, entities, spaced_hex] {
            let scrubbed = r.scrub(&format!("error: {text} end"));
            assert_eq!(scrubbed, QUOTED, "{text}");
        }
        assert_eq!(r.scrub("an ordinary message"), "an ordinary message");
        assert_eq!(
            r.scrub(&format!("client_secret={secret}")),
            "client_secret=[redacted]"
        );
    }

    #[test]
    fn credential_fields_are_replaced_even_when_unknown() {
        let r = Redactor::default();
        let cases = [
            (
                r#"{"access_token":"abc","expires_in":900}"#,
                r#"{"access_token":"[redacted]","expires_in":900}"#,
            ),
            (
                r#"{"refresh_token" : "r\"1", "token":"t"}"#,
                r#"{"refresh_token" : "[redacted]", "token":"[redacted]"}"#,
            ),
            (
                "a=1&client_secret=xyz&b=2",
                "a=1&client_secret=[redacted]&b=2",
            ),
            (
                "Authorization: Bearer abc.def\nHost: x",
                "Authorization: [redacted]\nHost: x",
            ),
            (
                r#"{"authorization": "Basic dXNlcjpwYXNz"}"#,
                r#"{"authorization": "[redacted]"}"#,
            ),
            ("sent Bearer eyJhbGciOi.x.y", "sent Bearer [redacted]"),
            ("the token expired", "the token expired"),
            ("tokens_left: 3", "tokens_left: 3"),
        ];
        for (input, expected) in cases {
            assert_eq!(r.scrub(input), expected, "{input}");
        }
    }

    #[test]
    fn never_panics_and_caps_by_characters() {
        let r = Redactor::new(["é"]);
        for text in [
            "",
            "token",
            "token=",
            "token:\"",
            "Bearer ",
            "bearer",
            "\"token\"",
            "ééé token=é",
        ] {
            let _ = r.scrub(text);
        }
        assert_eq!(cap("ééé", 2), "éé…");
        assert_eq!(cap("abc", 3), "abc");
        assert_eq!(r.scrub_capped(&"é".repeat(1000), 5).chars().count(), 6);
    }
}

//! Which character encoding an input file is in, and turning it into UTF-8 for the parser.
//!
//! Owns the detection rule, made once per file: a byte order mark decides (UTF-8, UTF-16 LE
//! or BE); without one, a file whose bytes are UTF-8 is UTF-8, a file whose non-ASCII bytes
//! are not is Windows-1252 (Excel's "CSV" on Windows), and a file that is mostly UTF-8 with a
//! few bad bytes stays UTF-8, so that only the rows holding them are refused. `[files]
//! encoding` overrides the guess (a byte order mark still wins: it cannot be wrong). Decoding
//! is encoding_rs's (the WHATWG tables browsers use).
//!
//! It must never decode a UTF-8 file (the common case: it is parsed as it is, without a
//! copy), never let a byte that does not decode pass as text (it becomes U+FFFD, which the
//! roster refuses), and never hold more than one chunk of a file in memory.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result, bail};
use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// How the encoding was settled, said beside it in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// A byte order mark at the start of the file.
    Bom,
    /// `[files] encoding`.
    Configured,
    /// Every byte is UTF-8 (or ASCII).
    Valid,
    /// Read from the bytes: the counts that decided it.
    Guessed {
        /// Byte sequences that are not UTF-8.
        not_utf8: u64,
        /// Multi-byte UTF-8 characters.
        utf8: u64,
    },
    /// Every other byte is zero: UTF-16 without a byte order mark.
    ZeroBytes,
}

/// A file's encoding and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub encoding: &'static Encoding,
    pub basis: Basis,
    /// Length of the byte order mark to skip.
    pub bom_len: u64,
}

impl Detected {
    /// The encoding's name as summary.json gives it ("UTF-8", "windows-1252", "UTF-16LE").
    pub fn name(&self) -> &'static str {
        self.encoding.name()
    }

    /// Whether the file is parsed as it is (UTF-8) or decoded into a copy first.
    pub fn is_utf8(&self) -> bool {
        self.encoding == UTF_8
    }
}

impl fmt::Display for Detected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.encoding.name();
        match self.basis {
            Basis::Bom => write!(f, "{name} (byte order mark)"),
            Basis::Configured => write!(f, "{name} (as [files] encoding says)"),
            Basis::Valid => write!(f, "{name}"),
            Basis::Guessed { not_utf8, utf8 } if self.encoding == UTF_8 => write!(
                f,
                "{name} (detected: {utf8} UTF-8 characters, {not_utf8} invalid byte sequence(s): their rows are refused)"
            ),
            Basis::Guessed { not_utf8, utf8 } => write!(
                f,
                "{name} (detected: {not_utf8} byte(s) that are not UTF-8{}; set [files] encoding if it is another)",
                if utf8 > 0 {
                    format!(", {utf8} that are")
                } else {
                    String::new()
                }
            ),
            Basis::ZeroBytes => write!(
                f,
                "{name} (detected: no byte order mark, every other byte zero)"
            ),
        }
    }
}

/// Parses `[files] encoding`: "auto" (or nothing) detects; any WHATWG label names one
/// ("utf-8", "windows-1252", "latin1", "utf-16le", "iso-8859-15", ...).
pub fn parse_label(label: &str) -> Result<Option<&'static Encoding>> {
    let label = label.trim();
    if label.is_empty() || label.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    match Encoding::for_label(label.as_bytes()) {
        // "replacement" is a WHATWG trick label that decodes everything to U+FFFD.
        Some(encoding) if encoding != encoding_rs::REPLACEMENT => Ok(Some(encoding)),
        _ => bail!(
            "expected \"auto\" or an encoding name such as \"utf-8\", \"windows-1252\" or \"utf-16le\", found {label:?}"
        ),
    }
}

/// The byte order mark at the start of `head`, if any.
fn bom(head: &[u8]) -> Option<(&'static Encoding, u64)> {
    Encoding::for_bom(head).map(|(encoding, len)| (encoding, len as u64))
}

/// How much is read at a time, when scanning and decoding.
const CHUNK: usize = 256 * 1024;
/// How much of the start of a file tells UTF-16 without a byte order mark.
const SNIFF: usize = 4096;

/// Settles the encoding of `file` (read from its start; left at an unknown place).
/// `configured` is `[files] encoding`.
pub fn detect(
    file: &mut (impl Read + Seek),
    configured: Option<&'static Encoding>,
) -> io::Result<Detected> {
    file.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(SNIFF);
    file.by_ref().take(SNIFF as u64).read_to_end(&mut head)?;
    if let Some((encoding, bom_len)) = bom(&head) {
        return Ok(Detected {
            encoding,
            basis: Basis::Bom,
            bom_len,
        });
    }
    if let Some(encoding) = configured {
        return Ok(Detected {
            encoding,
            basis: Basis::Configured,
            bom_len: 0,
        });
    }
    if let Some(encoding) = utf16_without_bom(&head) {
        return Ok(Detected {
            encoding,
            basis: Basis::ZeroBytes,
            bom_len: 0,
        });
    }
    file.seek(SeekFrom::Start(0))?;
    let counts = scan_utf8(file)?;
    Ok(Detected {
        encoding: if counts.not_utf8 == 0 || counts.utf8 >= counts.not_utf8 {
            UTF_8
        } else {
            WINDOWS_1252
        },
        basis: if counts.not_utf8 == 0 {
            Basis::Valid
        } else {
            Basis::Guessed {
                not_utf8: counts.not_utf8,
                utf8: counts.utf8,
            }
        },
        bom_len: 0,
    })
}

/// UTF-16 written without a byte order mark: text whose every other byte is zero (ASCII
/// characters are most of any roster). Needs a few dozen characters to say so.
fn utf16_without_bom(head: &[u8]) -> Option<&'static Encoding> {
    let pairs = head.len() / 2;
    if pairs < 16 {
        return None;
    }
    let zero_at = |parity: usize| {
        head.chunks_exact(2)
            .filter(|pair| pair[parity] == 0 && pair[1 - parity] != 0)
            .count()
    };
    // 90%: a few non-Latin characters do not hide it; a NUL-padded binary is not text.
    if zero_at(1) * 10 >= pairs * 9 {
        Some(UTF_16LE)
    } else if zero_at(0) * 10 >= pairs * 9 {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// What a pass over the bytes found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Utf8Counts {
    not_utf8: u64,
    utf8: u64,
}

/// Counts the byte sequences that are not UTF-8 and the multi-byte characters that are.
fn scan_utf8(source: &mut impl Read) -> io::Result<Utf8Counts> {
    let mut counts = Utf8Counts::default();
    let mut buf = vec![0u8; CHUNK + 4];
    // Bytes of a character cut by the end of the previous read.
    let mut carried = 0;
    loop {
        let read = read_full(source, &mut buf[carried..carried + CHUNK])?;
        let filled = carried + read;
        let at_end = read == 0;
        let mut rest = &buf[..filled];
        carried = 0;
        while !rest.is_empty() {
            // simdutf8's `compat` checker reports what std's does (the valid prefix, the
            // length of the bad sequence) and validates a roster's accented text several
            // times faster: this scan of the whole file comes before anything else.
            match simdutf8::compat::from_utf8(rest) {
                Ok(text) => {
                    counts.utf8 += multibyte(text.as_bytes());
                    rest = &[];
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    counts.utf8 += multibyte(valid);
                    match e.error_len() {
                        Some(bad) => {
                            counts.not_utf8 += 1;
                            rest = &after[bad..];
                        }
                        // A character cut by the end of the buffer: read on, unless the
                        // file ends there.
                        None if !at_end => {
                            carried = after.len();
                            let start = filled - carried;
                            buf.copy_within(start..filled, 0);
                            rest = &[];
                        }
                        None => {
                            counts.not_utf8 += 1;
                            rest = &[];
                        }
                    }
                }
            }
        }
        if at_end {
            return Ok(counts);
        }
    }
}

/// Multi-byte characters in valid UTF-8: their lead bytes.
fn multibyte(valid: &[u8]) -> u64 {
    if valid.is_ascii() {
        return 0;
    }
    // Counted in bytes, 255 at most at a time, so that the compiler compares and adds 32
    // bytes an instruction (a count in a usize took four times as many).
    valid
        .chunks(255)
        .map(|chunk| {
            let leads = chunk
                .iter()
                .fold(0u8, |n, &b| n.wrapping_add(u8::from(b >= 0xC0)));
            u64::from(leads)
        })
        .sum()
}

fn read_full(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decodes `source` (from its start, byte order mark included: it is removed) into a new
/// anonymous temporary file holding the same text in UTF-8, which the parser then reads
/// and seeks in. The copy lives only as long as the returned handle: it has no name, so a
/// killed run leaves nothing behind, and it is readable by this user only.
pub fn decode_to_temp(
    source: &mut (impl Read + Seek),
    encoding: &'static Encoding,
) -> Result<File> {
    source
        .seek(SeekFrom::Start(0))
        .context("cannot read it again to decode it")?;
    let file = tempfile::tempfile().context("cannot create a temporary file to decode it into")?;
    // Whatever the umask: the copy holds the same personal data as the file.
    crate::fsmode::restrict_file(&file);
    let mut out = BufWriter::with_capacity(CHUNK, file);
    if encoding == WINDOWS_1252 {
        copy_1252(source, &mut out)?;
    } else {
        copy_decoded(source, encoding, &mut out)?;
    }
    let mut file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .context("cannot write the decoded copy")?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Decodes `source` with [`decode_1252`], one chunk at a time.
fn copy_1252(source: &mut impl Read, out: &mut impl Write) -> Result<()> {
    let mut input = vec![0u8; CHUNK + 4];
    let mut output = Vec::with_capacity(CHUNK * 3 + 16);
    // Bytes of a sequence cut by the end of the previous read.
    let mut carried = 0;
    loop {
        let read = read_full(source, &mut input[carried..carried + CHUNK])?;
        let filled = carried + read;
        output.clear();
        let used = decode_1252(&input[..filled], read == 0, &mut output);
        out.write_all(&output)
            .context("cannot write the decoded copy")?;
        carried = filled - used;
        input.copy_within(used..filled, 0);
        if read == 0 {
            return Ok(());
        }
    }
}

/// Decodes `source` with encoding_rs, one chunk at a time (a byte order mark is dropped).
fn copy_decoded(
    source: &mut impl Read,
    encoding: &'static Encoding,
    out: &mut impl Write,
) -> Result<()> {
    let mut decoder = encoding.new_decoder_with_bom_removal();
    let mut input = vec![0u8; CHUNK];
    let mut output = vec![0u8; CHUNK * 3 + 16];
    loop {
        let read = read_full(source, &mut input)?;
        let last = read == 0;
        let mut from = &input[..read];
        loop {
            let (result, used, written, _) = decoder.decode_to_utf8(from, &mut output, last);
            out.write_all(&output[..written])
                .context("cannot write the decoded copy")?;
            from = &from[used..];
            if result == encoding_rs::CoderResult::InputEmpty {
                break;
            }
        }
        if last {
            return Ok(());
        }
    }
}

/// Windows-1252, except that a byte sequence that is valid multi-byte UTF-8 becomes U+FFFD:
/// such a row was pasted in from a UTF-8 file, and decoding it as 1252 would send "ZoÃ«"
/// for "Zoë". In real Windows-1252 text these pairs ("Ã«") do not occur. Returns how much of
/// `input` was used: a sequence cut by the end of it waits for the next call, unless `last`.
fn decode_1252(input: &[u8], last: bool, out: &mut Vec<u8>) -> usize {
    static TABLE: std::sync::OnceLock<[char; 128]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = ['\u{FFFD}'; 128];
        for (i, slot) in table.iter_mut().enumerate() {
            let byte = [0x80 + i as u8];
            let (text, _) = WINDOWS_1252.decode_without_bom_handling(&byte);
            *slot = text.chars().next().unwrap_or('\u{FFFD}');
        }
        table
    });
    let mut i = 0;
    while i < input.len() {
        let ascii = input[i..]
            .iter()
            .position(|b| !b.is_ascii())
            .unwrap_or(input.len() - i);
        out.extend_from_slice(&input[i..i + ascii]);
        i += ascii;
        let Some(&byte) = input.get(i) else { break };
        let len = match byte {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        if len > 1 {
            if i + len > input.len() && !last {
                return i;
            }
            if input
                .get(i..i + len)
                .is_some_and(|seq| std::str::from_utf8(seq).is_ok())
            {
                out.extend_from_slice("\u{FFFD}".as_bytes());
                i += len;
                continue;
            }
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(
            table[usize::from(byte - 0x80)]
                .encode_utf8(&mut buf)
                .as_bytes(),
        );
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_bytes(bytes: &[u8]) -> Detected {
        detect(&mut io::Cursor::new(bytes.to_vec()), None).unwrap()
    }

    fn utf16le(text: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xFF, 0xFE] } else { vec![] };
        out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        out
    }

    /// What the scan must find, counted the plain way: std's checker over the whole text.
    fn counted_plainly(mut rest: &[u8]) -> Utf8Counts {
        let mut counts = Utf8Counts::default();
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    counts.utf8 += text.chars().filter(|c| c.len_utf8() > 1).count() as u64;
                    return counts;
                }
                Err(e) => {
                    let valid = std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap();
                    counts.utf8 += valid.chars().filter(|c| c.len_utf8() > 1).count() as u64;
                    counts.not_utf8 += 1;
                    match e.error_len() {
                        Some(bad) => rest = &rest[e.valid_up_to() + bad..],
                        None => return counts,
                    }
                }
            }
        }
    }

    #[test]
    fn the_scan_counts_as_std_does_across_its_reads() {
        // Text of every kind, with stray and cut sequences, over several of the scan's reads
        // so that characters and bad sequences fall across their ends.
        let pieces: [&[u8]; 9] = [
            b"Zo\xC3\xAB,",
            "日本;".as_bytes(),
            "🎉".as_bytes(),
            b"plain,ascii\n",
            b"\xE9t\xE9",
            b"\xF0\x9F\x8E",
            b"\xC3",
            b"\xFF\xFE",
            b"\xED\xA0\x80",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut bytes = Vec::new();
        while bytes.len() < 3 * CHUNK + 1000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.extend_from_slice(pieces[(seed % 9) as usize]);
        }
        for end in [bytes.len(), CHUNK - 1, CHUNK + 1, 2 * CHUNK + 2] {
            let text = &bytes[..end];
            let scanned = scan_utf8(&mut io::Cursor::new(text.to_vec())).unwrap();
            assert_eq!(scanned, counted_plainly(text), "first {end} bytes");
        }
    }

    #[test]
    fn multi_byte_characters_are_counted_in_any_length_of_text() {
        for (text, n) in [("", 0), ("plain ascii", 0), ("Zoë Ñúñez, 日本, 🎉", 7)] {
            assert_eq!(multibyte(text.as_bytes()), n, "{text}");
        }
        // Far over the 255 bytes counted at a time, and over 255 characters.
        let long = "Zoë,Renée;".repeat(1000);
        assert_eq!(multibyte(long.as_bytes()), 2000);
        let wide = "日".repeat(700);
        assert_eq!(multibyte(wide.as_bytes()), 700);
    }

    #[test]
    fn a_byte_order_mark_decides() {
        let d = detect_bytes(b"\xEF\xBB\xBFid,name\n1,Zo\xC3\xAB\n");
        assert_eq!((d.encoding, d.basis, d.bom_len), (UTF_8, Basis::Bom, 3));
        let d = detect_bytes(&utf16le("id\tname\n", true));
        assert_eq!((d.encoding, d.bom_len), (UTF_16LE, 2));
        let d = detect_bytes(b"\xFE\xFF\x00i\x00d");
        assert_eq!(d.encoding, UTF_16BE);
        // Even against the configuration.
        let d = detect(
            &mut io::Cursor::new(b"\xEF\xBB\xBFx".to_vec()),
            Some(WINDOWS_1252),
        )
        .unwrap();
        assert_eq!(d.encoding, UTF_8);
    }

    #[test]
    fn windows_1252_is_told_from_utf8_by_its_bytes() {
        let d = detect_bytes(b"id,name\n1,Zo\xEB\n2,Ren\xE9e\n");
        assert_eq!(d.encoding, WINDOWS_1252);
        assert_eq!(
            d.basis,
            Basis::Guessed {
                not_utf8: 2,
                utf8: 0
            }
        );
        let d = detect_bytes("id,name\n1,Zoë\n".as_bytes());
        assert_eq!((d.encoding, d.basis), (UTF_8, Basis::Valid));
        let d = detect_bytes(b"id,name\n1,Bob\n");
        assert_eq!((d.encoding, d.basis), (UTF_8, Basis::Valid));
    }

    #[test]
    fn a_mostly_utf8_file_with_a_few_bad_bytes_stays_utf8() {
        let mut text = "id,name\n".to_owned();
        for i in 0..50 {
            text.push_str(&format!("{i},Zoë Brontë\n"));
        }
        let mut bytes = text.into_bytes();
        bytes.extend(b"99,Ren\xE9e\n");
        let d = detect_bytes(&bytes);
        assert_eq!(d.encoding, UTF_8);
        assert_eq!(
            d.basis,
            Basis::Guessed {
                not_utf8: 1,
                utf8: 100
            }
        );
    }

    #[test]
    fn a_character_cut_by_a_chunk_boundary_is_one_character() {
        let mut bytes = vec![b'a'; CHUNK - 1];
        bytes.extend("é\n".as_bytes());
        let counts = scan_utf8(&mut io::Cursor::new(bytes)).unwrap();
        assert_eq!(
            counts,
            Utf8Counts {
                not_utf8: 0,
                utf8: 1
            }
        );
        // Cut by the end of the file: not UTF-8.
        let counts = scan_utf8(&mut io::Cursor::new(b"ab\xC3".to_vec())).unwrap();
        assert_eq!(counts.not_utf8, 1);
    }

    #[test]
    fn utf16_without_a_byte_order_mark_is_seen_by_its_zero_bytes() {
        let text = "Employee ID\tFirst Name\tLast Name\n1\tZoë\tBrontë\n";
        assert_eq!(detect_bytes(&utf16le(text, false)).encoding, UTF_16LE);
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(detect_bytes(&be).encoding, UTF_16BE);
    }

    #[test]
    fn decoding_gives_utf8_without_the_mark_and_marks_bad_bytes() {
        let mut source = io::Cursor::new(utf16le("id\tname\r\n1\tZoë\r\n", true));
        let mut file = decode_to_temp(&mut source, UTF_16LE).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "id\tname\r\n1\tZoë\r\n");
        let mut source = io::Cursor::new(b"1,Ren\xE9e \x80\n".to_vec());
        let mut file = decode_to_temp(&mut source, WINDOWS_1252).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "1,Renée €\n");
        // A lone surrogate is not text.
        let mut source = io::Cursor::new(vec![0xFF, 0xFE, 0x00, 0xD8, b'a', 0]);
        let mut file = decode_to_temp(&mut source, UTF_16LE).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "\u{FFFD}a");
    }

    #[test]
    fn utf8_pasted_into_windows_1252_is_not_turned_into_mojibake() {
        let mut out = Vec::new();
        let used = decode_1252(b"Ren\xE9e,Zo\xC3\xAB,\x80,caf\xC3", false, &mut out);
        // The last byte may start a UTF-8 sequence: it waits for more.
        assert_eq!(used, 16);
        assert_eq!(String::from_utf8(out).unwrap(), "Renée,Zo\u{FFFD},€,caf");
        let mut out = Vec::new();
        decode_1252(b"caf\xC3", true, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "cafÃ");
        // Across chunk boundaries, through the temporary copy.
        let mut bytes = vec![b'a'; CHUNK - 1];
        bytes.extend(b"\xC3\xAB \xE9\n");
        let mut file = decode_to_temp(&mut io::Cursor::new(bytes), WINDOWS_1252).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert!(
            text.ends_with("a\u{FFFD} é\n"),
            "{:?}",
            &text[text.len() - 10..]
        );
    }

    #[test]
    fn labels_are_whatwg_names_or_auto() {
        assert_eq!(parse_label("auto").unwrap(), None);
        assert_eq!(parse_label("cp1252").unwrap(), Some(WINDOWS_1252));
        assert_eq!(parse_label("latin1").unwrap(), Some(WINDOWS_1252));
        assert_eq!(parse_label("UTF-16").unwrap(), Some(UTF_16LE));
        assert!(parse_label("klingon").is_err());
        assert!(parse_label("replacement").is_err());
    }
}

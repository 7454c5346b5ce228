//! Reading NDJSON files of records, validating all of them before any applies.

use crate::decode::{DecodeError, Decoder, Record, Warning};
use std::io::BufRead;

/// An error or warning with the file it came from.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub file: String,
    pub item: T,
}

impl<T: std::fmt::Display> std::fmt::Display for Located<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.item)
    }
}

/// Everything decoded from a set of files.
#[derive(Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    /// The accepted records' text, in order, when asked for (to log them).
    pub lines: Vec<String>,
    pub errors: Vec<Located<DecodeError>>,
    pub warnings: Vec<Located<Warning>>,
}

impl Loaded {
    /// Decodes line `number` of `source` (a blank line is skipped); an invalid
    /// record is kept as an error naming the source, the line and the field.
    pub fn decode(&mut self, decoder: &Decoder, source: &str, number: usize, line: &str, keep_text: bool) {
        if line.trim().is_empty() {
            return;
        }
        let mut warnings = Vec::new();
        match decoder.decode_line(line, number, &mut warnings) {
            Ok(r) => {
                self.records.push(r);
                if keep_text {
                    self.lines.push(line.to_string());
                }
            }
            Err(e) => self.errors.push(Located { file: source.to_string(), item: e }),
        }
        self.warnings.extend(warnings.into_iter().map(|w| Located { file: source.to_string(), item: w }));
    }
}

/// Decodes every line of every file. Errors do not stop the reading: every
/// invalid record is reported. `keep_text` also keeps each accepted line.
pub fn load_files(decoder: &Decoder, paths: &[String], keep_text: bool) -> std::io::Result<Loaded> {
    let mut loaded = Loaded::default();
    for path in paths {
        let file =
            std::fs::File::open(path).map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| std::io::Error::new(e.kind(), format!("{path}:{}: {e}", i + 1)))?;
            loaded.decode(decoder, path, i + 1, &line, keep_text);
        }
    }
    Ok(loaded)
}

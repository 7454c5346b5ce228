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
    pub errors: Vec<Located<DecodeError>>,
    pub warnings: Vec<Located<Warning>>,
}

/// Decodes every line of every file (blank lines are skipped). Errors do not
/// stop the reading: every invalid record is reported.
pub fn load_files(decoder: &Decoder, paths: &[String]) -> std::io::Result<Loaded> {
    let mut loaded = Loaded::default();
    for path in paths {
        let file =
            std::fs::File::open(path).map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut warnings = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| std::io::Error::new(e.kind(), format!("{path}:{}: {e}", i + 1)))?;
            if line.trim().is_empty() {
                continue;
            }
            match decoder.decode_line(&line, i + 1, &mut warnings) {
                Ok(r) => loaded.records.push(r),
                Err(e) => loaded.errors.push(Located { file: path.clone(), item: e }),
            }
        }
        loaded.warnings.extend(warnings.into_iter().map(|w| Located { file: path.clone(), item: w }));
    }
    Ok(loaded)
}

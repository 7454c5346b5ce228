//! Rendering diagnostics as text: `file:line:col`, the source line, a caret.
//!
//! Several files compile as one program; their texts are joined into one
//! buffer (see [`SourceMap`]) so that spans stay plain byte ranges, and each
//! span is mapped back to its file only here, at the edge.

use codespan_reporting::diagnostic::{Diagnostic as Report, Label, Severity as ReportSeverity};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor::Buffer, Config};
use segflow_grammar::{Diagnostic, Severity, Span};

/// The files of one program, joined into one text with a newline between files.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<(String, String, usize)>,
    text: String,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) {
        let mut text = text.into();
        // A UTF-8 byte order mark is not part of the program; blank it (same length).
        if text.starts_with('\u{feff}') {
            text.replace_range(..3, "   ");
        }
        let base = self.text.len();
        self.text.push_str(&text);
        self.text.push('\n');
        self.files.push((name.into(), text, base));
    }
    /// All files as one text; spans index into it.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The file holding `offset`, and the offset within it.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let i = self.files.iter().rposition(|(_, _, base)| *base <= offset).unwrap_or(0);
        let (_, text, base) = &self.files[i];
        (i, (offset - base).min(text.len()))
    }
    /// `file:line:col` (1-based) of an offset.
    pub fn position(&self, offset: usize) -> String {
        let (i, local) = self.locate(offset);
        let (name, text, _) = &self.files[i];
        let before = &text[..floor_char_boundary(text, local)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{name}:{line}:{col}")
    }

    /// Renders diagnostics in the style of rustc, without colour.
    pub fn render(&self, diagnostics: &[Diagnostic]) -> String {
        let mut files = SimpleFiles::new();
        let ids: Vec<usize> = self.files.iter().map(|(n, t, _)| files.add(n.clone(), t.clone())).collect();
        let config = Config {
            start_context_lines: 0,
            end_context_lines: 0,
            before_label_lines: 0,
            after_label_lines: 0,
            ..Config::default()
        };
        let mut buffer = Buffer::no_color();
        for d in diagnostics {
            let report = self.report(d, &ids);
            let _ = term::emit(&mut buffer, &config, &files, &report);
        }
        String::from_utf8_lossy(buffer.as_slice()).into_owned()
    }

    fn label(&self, span: Span, ids: &[usize], primary: bool) -> Option<Label<usize>> {
        if self.files.is_empty() {
            return None;
        }
        let (file, start) = self.locate(span.start);
        let (_, end) = self.locate(span.end.max(span.start));
        let text = &self.files[file].1;
        let start = floor_char_boundary(text, start);
        let end = floor_char_boundary(text, end.max(start));
        Some(if primary { Label::primary(ids[file], start..end) } else { Label::secondary(ids[file], start..end) })
    }

    fn report(&self, d: &Diagnostic, ids: &[usize]) -> Report<usize> {
        let severity = match d.severity {
            Severity::Error => ReportSeverity::Error,
            Severity::Warning => ReportSeverity::Warning,
        };
        let mut labels = Vec::new();
        if let Some(l) = self.label(d.span, ids, true) {
            labels.push(l.with_message(d.label.clone().unwrap_or_default()));
        }
        for s in &d.secondary {
            if let Some(l) = self.label(s.span, ids, false) {
                labels.push(l.with_message(s.message.clone()));
            }
        }
        let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
        if let Some(h) = &d.help {
            notes.push(format!("help: {h}"));
        }
        Report::new(severity).with_message(&d.message).with_labels(labels).with_notes(notes)
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

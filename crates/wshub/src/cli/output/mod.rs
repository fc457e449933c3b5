//! What the client commands print, and where. Stdout carries what the hub sent — events, and with
//! `--verbose` its control messages — in the chosen format; stderr carries the command's own news
//! (connected, denied, reconnecting, heartbeats). Colour is used where a stream is a terminal.

pub mod render;

use crate::args::ColorWhen;
use anstream::{AutoStream, ColorChoice};
use anyhow::{Context, Result};
use render::{Palette, paint};
use serde_json::Value;
use std::fmt::Display;
use std::fs::File;
use std::io::{self, Stderr, Stdout, Write};
use std::path::{Path, PathBuf};

/// How messages are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Time, topic, offset, event type and payload, readable and coloured.
    Human,
    /// One short line per message.
    Compact,
    /// Each message exactly as the hub sent it, one per line.
    Json,
}

/// The terminal (or pipes) the command writes to.
pub struct Screen {
    format: Format,
    stdout: AutoStream<Stdout>,
    stderr: AutoStream<Stderr>,
    palette: Palette,
}

impl Screen {
    pub fn new(format: Format, color: ColorWhen) -> Screen {
        let choice = match color {
            ColorWhen::Auto => ColorChoice::Auto,
            ColorWhen::Always => ColorChoice::Always,
            ColorWhen::Never => ColorChoice::Never,
        };
        Screen {
            format,
            stdout: AutoStream::new(io::stdout(), choice),
            stderr: AutoStream::new(io::stderr(), choice),
            palette: Palette::default(),
        }
    }

    /// An event, `text` being the frame as received. An error means stdout is gone (a closed pipe).
    pub fn event(&mut self, text: &str, event: &Value) -> io::Result<()> {
        let line = match self.format {
            Format::Human => render::human_event(text, event, &self.palette),
            Format::Compact => render::compact_event(text, event, &self.palette),
            Format::Json => render::json_line(text),
        };
        self.out(&line)
    }

    /// A reply or notice from the hub (shown with `--verbose`).
    pub fn control(&mut self, text: &str, message: &Value) -> io::Result<()> {
        let line = match self.format {
            Format::Human => render::human_control(text, message, &self.palette, false),
            Format::Compact => render::human_control(text, message, &self.palette, true),
            Format::Json => render::json_line(text),
        };
        self.out(&line)
    }

    /// A binary event: its JSON form (the one `history` replies use) and a one-line summary.
    pub fn binary(&mut self, as_json: &Value, summary: &str) -> io::Result<()> {
        let line = match self.format {
            Format::Json => as_json.to_string(),
            Format::Human | Format::Compact => {
                let with_millis = self.format == Format::Human;
                format!(
                    "{}{}{}",
                    paint(
                        self.palette.time,
                        &render::clock(as_json["timestamp"].as_i64(), with_millis)
                    ),
                    if with_millis { "  " } else { " " },
                    summary
                )
            }
        };
        self.out(&line)
    }

    /// A single reply, for `wshub send`: indented JSON, or the frame as sent with `--json`.
    pub fn reply(&mut self, text: &str) -> io::Result<()> {
        let shown = match self.format {
            Format::Json => render::json_line(text),
            Format::Human | Format::Compact => render::pretty_json(text, &self.palette),
        };
        self.out(&shown)
    }

    /// A plain line on stdout (offsets printed by `publish`).
    pub fn result(&mut self, line: &str) -> io::Result<()> {
        self.out(line)
    }

    /// A message this command sent (with `--verbose`): `→ subscribe {"topics": ["news"]}`.
    pub fn sent(&mut self, message: &Value) {
        let kind = message["type"].as_str().unwrap_or("?");
        let fields = render::one_line_json(&message.to_string(), Some(&self.palette));
        let line = format!(
            "{}  {}  {fields}",
            paint(self.palette.time, &render::clock(None, true)),
            paint(self.palette.control, &format!("→ {kind}"))
        );
        self.err(&line);
    }

    /// News about the connection: connected, subscribed, reconnecting.
    pub fn note(&mut self, text: impl Display) {
        self.err(&text.to_string());
    }

    /// Something the user should know that does not stop the command.
    pub fn warn(&mut self, text: impl Display) {
        self.err(&format!("{} {text}", paint(self.palette.warning, "warning:")));
    }

    /// A failure that the command reports and goes on from (a bad input line).
    pub fn problem(&mut self, text: impl Display) {
        self.err(&format!("{} {text}", paint(self.palette.error, "error:")));
    }

    /// Low-level detail for `--verbose`: the handshake, heartbeats.
    pub fn detail(&mut self, text: impl Display) {
        let line = format!(
            "{}  {}",
            paint(self.palette.time, &render::clock(None, true)),
            paint(self.palette.detail, &text.to_string())
        );
        self.err(&line);
    }

    fn out(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.stdout, "{line}")?;
        // One line at a time, so `| jq` and `| tee` see each event as it arrives.
        self.stdout.flush()
    }

    fn err(&mut self, line: &str) {
        // Nothing sensible is left to do when stderr itself is gone.
        let _ = writeln!(self.stderr, "{line}");
        let _ = self.stderr.flush();
    }
}

/// `--output FILE`: every message the hub sends, appended as JSON lines.
pub struct LogFile {
    file: File,
    path: PathBuf,
}

impl LogFile {
    pub fn open(path: &Path) -> Result<LogFile> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the log file {}", path.display()))?;
        Ok(LogFile {
            file,
            path: path.to_owned(),
        })
    }

    /// Appends one message (made a single line) and its newline in one write, so a line is
    /// never split even if the file is shared.
    pub fn append(&mut self, text: &str) -> Result<()> {
        let mut line = render::json_line(text);
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("cannot write to the log file {}", self.path.display()))
    }
}

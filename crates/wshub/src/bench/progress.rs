//! Progress on stderr while a scenario runs: a bar on a terminal, else one plain line a second
//! (logs and CI keep a readable trail). Never on stdout, which carries the figures.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often plain progress lines are printed.
const PLAIN_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Progress {
    /// On a terminal: the bar of the current phase.
    bar: Option<ProgressBar>,
    terminal: bool,
    phase: String,
    last_line: Option<Instant>,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            bar: None,
            terminal: std::io::stderr().is_terminal(),
            phase: String::new(),
            last_line: None,
        }
    }

    /// Starts a phase (`connecting`, `measuring`) of `length` units.
    pub fn start(&mut self, phase: &str, length: u64) {
        self.done();
        self.phase = phase.to_owned();
        self.last_line = None;
        if self.terminal {
            let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr_with_hz(4))
                .with_style(style)
                .with_prefix(phase.to_owned());
            self.bar = Some(bar);
        }
    }

    /// Where the phase is, and what to say about it.
    pub fn update(&mut self, position: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
        self.say(message);
    }

    /// What to say about the phase, its position unchanged.
    pub fn say(&mut self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_owned());
            return;
        }
        if self.terminal {
            return;
        }
        let now = Instant::now();
        if self
            .last_line
            .is_none_or(|last| now.duration_since(last) >= PLAIN_EVERY)
        {
            self.last_line = Some(now);
            eprintln!("{}: {message}", self.phase);
        }
    }

    /// Ends the phase: the bar is cleared (its figures are in the report).
    pub fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// A line for the user, above the bar when there is one.
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done();
    }
}

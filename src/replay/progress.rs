//! Progress display: a bar with rate and ETA on a terminal, plain periodic lines otherwise.
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Auto,
    Bar,
    Lines,
    None,
}

/// Stateful progress printer (to stderr, so stdout stays machine-readable).
pub struct Progress {
    mode: Mode,
    last: Option<Duration>,
    drew_bar: bool,
}

impl Progress {
    pub fn new(mode: Mode) -> Self {
        let mode = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
            Mode::Auto => Mode::Lines,
            m => m,
        };
        Progress {
            mode,
            last: None,
            drew_bar: false,
        }
    }

    /// Called often; draws at most every 100 ms (bar) or 5 s (lines).
    pub fn update(&mut self, done: u64, total: u64, elapsed: Duration) {
        let every = match self.mode {
            Mode::Bar => Duration::from_millis(100),
            Mode::Lines => Duration::from_secs(5),
            _ => return,
        };
        if self.last.is_some_and(|l| elapsed < l + every) && done < total {
            return;
        }
        self.last = Some(elapsed);
        let line = render(done, total, elapsed);
        let mut err = std::io::stderr().lock();
        if self.mode == Mode::Bar {
            let _ = write!(err, "\r{line}\x1b[K");
            self.drew_bar = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    pub fn finish(&mut self) {
        if self.drew_bar {
            eprintln!();
        }
    }
}

/// `[#####-----]  50.0%  1000/2000 events  12345 ev/s  ETA 1s`
pub fn render(done: u64, total: u64, elapsed: Duration) -> String {
    let frac = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let width = 30;
    let filled = (frac * width as f64).round() as usize;
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    let eta = if rate > 0.0 {
        (total.saturating_sub(done)) as f64 / rate
    } else {
        f64::INFINITY
    };
    let eta = if eta.is_finite() {
        format!("{:.0}s", eta.ceil())
    } else {
        "?".into()
    };
    format!(
        "[{}{}] {:5.1}%  {done}/{total} events  {:.0} ev/s  ETA {eta}",
        "#".repeat(filled),
        "-".repeat(width - filled),
        frac * 100.0,
        rate
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rate_and_eta() {
        let s = render(500, 1000, Duration::from_secs(1));
        assert!(s.contains(" 50.0%"), "{s}");
        assert!(s.contains("500 ev/s"), "{s}");
        assert!(s.contains("ETA 1s"), "{s}");
        assert!(render(0, 0, Duration::ZERO).contains("100.0%"));
    }
}

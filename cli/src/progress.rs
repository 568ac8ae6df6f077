//! Progress on stderr for long work, drawn only when stderr is a terminal.
//!
//! Spinners for work the engine does in one call (defrag, snapshot save and restore, check)
//! appear only once the work has taken a second, so quick runs print nothing extra.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long one-call work runs before its spinner appears.
const SPINNER_DELAY: Duration = Duration::from_secs(1);

/// True if progress should be drawn at all.
fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// What a bar counts.
#[derive(Clone, Copy)]
enum Units {
    /// Items: shown as done/total.
    Count,
    /// Bytes: shown in KiB, MiB, ...
    Bytes,
    /// Units of work with no meaning of their own: shown as a percentage.
    Share,
}

/// A bar over `total` units (bytes when `bytes`), or a hidden one off a terminal.
pub fn bar(total: u64, bytes: bool, message: &str) -> ProgressBar {
    styled_bar(
        total,
        if bytes { Units::Bytes } else { Units::Count },
        message,
    )
}

fn styled_bar(total: u64, units: Units, message: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let template = match units {
        Units::Count => "{msg} [{bar:40}] {pos}/{len} ({eta})",
        Units::Bytes => "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})",
        Units::Share => "{msg} [{bar:40}] {percent}% ({eta})",
    };
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(message.to_string());
    pb
}

/// Runs `work`, showing a spinner with `message` on a terminal if it takes over a second.
pub fn spin<T>(message: &str, work: impl FnOnce() -> T) -> T {
    if !enabled() {
        return work();
    }
    let pb = ProgressBar::hidden();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.set_message(message.to_string());
    let shown = pb.clone();
    // Detached on purpose: it sleeps at most SPINNER_DELAY and then only touches the bar,
    // which is finished (and so left hidden) if the work was quick.
    std::thread::spawn(move || {
        std::thread::sleep(SPINNER_DELAY);
        if !shown.is_finished() {
            shown.set_draw_target(ProgressDrawTarget::stderr());
            shown.enable_steady_tick(Duration::from_millis(120));
        }
    });
    let out = work();
    pb.finish_and_clear();
    out
}

/// Runs `work`, handing it a `(done, total)` callback that drives a bar with `message` on a
/// terminal, shown only once the work has taken a second (as [`spin`]). For work that reports
/// its own progress in units of work, such as `Store::check_with_progress`; the bar shows a
/// percentage.
pub fn counted<T>(message: &str, work: impl FnOnce(&mut dyn FnMut(u64, u64)) -> T) -> T {
    if !enabled() {
        return work(&mut |_, _| {});
    }
    let start = std::time::Instant::now();
    let mut pb: Option<ProgressBar> = None;
    let out = work(&mut |done, total| {
        if pb.is_none() && start.elapsed() >= SPINNER_DELAY {
            pb = Some(styled_bar(total, Units::Share, message));
        }
        if let Some(pb) = &pb {
            pb.set_length(total);
            pb.set_position(done);
        }
    });
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    out
}

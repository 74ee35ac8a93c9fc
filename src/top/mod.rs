//! `pymemspy top`: a live view of a process's memory by type, refreshed every interval.
//!
//! One `Session`, one census per interval; between censuses the loop waits for keys with a
//! timeout (so the sample age keeps ticking). The terminal is put in raw mode on the alternate
//! screen and restored on every way out: return, error, Ctrl-C (a key in raw mode) and panic.

pub mod model;

use crate::analysis::session::{Session, SnapshotOptions};
use crate::error::Error;
use crate::process::smaps::RssParts;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, style, terminal};
use model::{Model, Sample, SortBy};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Longest wait for a key before the screen is redrawn (the sample age is shown in tenths).
const REDRAW: Duration = Duration::from_millis(200);
/// Census failures in a row (with the target alive) after which the view gives up.
const MAX_FAILURES_IN_A_ROW: u32 = 10;

pub struct TopOptions {
    pub source: crate::record::Source,
    pub interval: Duration,
    pub snapshot: SnapshotOptions,
}

/// Run the live view until the person quits or the target goes away.
pub fn run(opts: TopOptions) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        return Err(Error::Usage(
            "top needs a terminal on standard output; use `pymemspy record` or `snapshot` instead"
                .into(),
        )
        .into());
    }
    // A program started for the view lives as long as `_child`: it is stopped when top quits.
    let (_child, mut session) =
        crate::record::launch::open_source(&opts.source, &opts.snapshot, &[])?;
    let mut model = Model::new(
        session.target.pid,
        session.python_info().version,
        opts.interval.as_secs_f64(),
    );
    let guard = TerminalGuard::enter()?;
    let outcome = event_loop(&mut session, &mut model, &opts);
    drop(guard);
    outcome
}

fn event_loop(session: &mut Session, model: &mut Model, opts: &TopOptions) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let start = Instant::now();
    // When the latest census finished, and when the next one is due (None: now).
    let mut sampled_at: Option<Instant> = None;
    let mut next_due = Instant::now();
    let mut failures = 0;
    loop {
        if !model.paused && Instant::now() >= next_due {
            sample(session, model, start, &mut failures)?;
            sampled_at = Some(Instant::now());
            next_due = Instant::now() + opts.interval;
        }
        // Paused, no census notices the target going away.
        if model.paused && !session.target.is_alive() {
            return Err(Error::Exited(session.target.pid).into());
        }
        draw(&mut out, model, sampled_at)?;
        let wait = next_due
            .saturating_duration_since(Instant::now())
            .min(REDRAW);
        if event::poll(wait)? {
            if let Event::Key(key) = event::read()? {
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
                    && matches!(key.code, KeyCode::Char('c'));
                match key.code {
                    _ if ctrl_c => return Ok(()),
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('b') => model.sort = SortBy::Bytes,
                    KeyCode::Char('g') => model.sort = SortBy::Growth,
                    KeyCode::Char('c') => model.sort = SortBy::Count,
                    KeyCode::Char('s') => model.suspects_only = !model.suspects_only,
                    KeyCode::Char('p') => {
                        model.paused = !model.paused;
                        // Resuming takes a census at once rather than showing a stale one.
                        next_due = Instant::now();
                    }
                    _ => {}
                }
            }
        }
    }
}

/// One census into the model. A failed census is shown as a warning and retried at the next
/// interval; the view ends when the target is gone or censuses keep failing.
fn sample(
    session: &mut Session,
    model: &mut Model,
    start: Instant,
    failures: &mut u32,
) -> anyhow::Result<()> {
    let pid = session.target.pid;
    if !session.target.is_alive() {
        return Err(Error::Exited(pid).into());
    }
    // Arenas and heap mappings come and go while the target runs: objects in mappings the
    // session does not know would be unreadable and the GC lists would look broken.
    let mut map_warning = None;
    if let Err(e) = session.target.refresh_maps() {
        map_warning = Some(format!("could not re-read the memory map: {e}"));
    }
    let t = start.elapsed().as_secs_f64();
    match session.census() {
        Ok(r) => {
            *failures = 0;
            let (census, coverage, mut warnings) = (r.census, r.coverage, r.warnings);
            warnings.extend(map_warning);
            let rss = r
                .memory
                .as_ref()
                .map(|m| m.rss.rss)
                .or_else(|| RssParts::read(pid).map(|r| r.rss));
            model.push(
                Sample::from_census(t, &census, rss),
                coverage.complete,
                warnings,
            );
            Ok(())
        }
        Err(_) if !session.target.is_alive() => Err(Error::Exited(pid).into()),
        Err(e) => {
            *failures += 1;
            if *failures >= MAX_FAILURES_IN_A_ROW {
                return Err(e.into());
            }
            model.warnings = vec![format!("a census failed (showing the previous one): {e}")];
            Ok(())
        }
    }
}

fn draw(out: &mut impl Write, model: &Model, sampled_at: Option<Instant>) -> std::io::Result<()> {
    let (w, h) = terminal::size().unwrap_or((80, 24));
    let age = sampled_at.map(|s| s.elapsed().as_secs_f64());
    let lines = model.screen(w as usize, h as usize, age);
    queue!(out, terminal::Clear(terminal::ClearType::All))?;
    for (row, line) in lines.iter().enumerate() {
        let row = u16::try_from(row).unwrap_or(u16::MAX);
        queue!(out, cursor::MoveTo(0, row), style::Print(line))?;
    }
    out.flush()
}

/// Raw mode + alternate screen for as long as it lives; restores the terminal when dropped and
/// when the program panics (before the panic message is printed, so it is readable).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> std::io::Result<TerminalGuard> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        let guard = TerminalGuard;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Best effort: nothing more can be done if the terminal is gone.
fn restore() {
    let _ = execute!(
        std::io::stdout(),
        cursor::Show,
        terminal::LeaveAlternateScreen
    );
    let _ = terminal::disable_raw_mode();
}

//! `edgenvr store init|fsck|ls`: argument types and the commands' logic, callable from tests.
//! Prints to the writers it is given (stdout for results, stderr for progress); returns the exit
//! code, or an error with context for the binary's edge to print.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::{
    fsck, init_store, CameraRecordings, CameraTotals, InitOptions, InitOutcome, InitProgress, Store,
};
use crate::media::TIMESCALE_90K;

/// Arguments of `edgenvr store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// What to do with the store.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// The `store` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Provision a store: preallocated, zero-filled slot files and a marker. Resumes an
    /// interrupted init; refuses a non-empty directory that is not a store.
    Init {
        /// The store directory (created if missing).
        dir: PathBuf,
        /// Total size of the slot files, e.g. 512MiB, 8GiB.
        #[arg(long, value_parser = parse_size_arg)]
        size: u64,
        /// Size of each slot (default 16MiB, smaller for stores under 128MiB).
        #[arg(long, value_parser = parse_size_arg, conflicts_with = "slots")]
        slot_size: Option<u64>,
        /// Number of slots instead of a slot size.
        #[arg(long)]
        slots: Option<u32>,
    },
    /// Check every fragment's checksum, repair what can be repaired, report. Exit 0 when the store
    /// is usable afterwards, 1 when it is not.
    Fsck {
        /// The store directory.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List recordings per camera as time ranges with the gaps between them. Works while a
    /// recorder has the store open.
    Ls {
        /// The store directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_size_arg(text: &str) -> Result<u64, String> {
    crate::config::parse_size(text)
}

/// Runs a `store` subcommand, writing results to `out` and progress to `progress_out`.
pub fn run(
    args: StoreArgs,
    out: &mut dyn Write,
    progress_out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match args.command {
        StoreCommand::Init {
            dir,
            size,
            slot_size,
            slots,
        } => {
            let options = InitOptions {
                size_bytes: size,
                slot_bytes: slot_size,
                slot_count: slots,
            };
            let mut display = ProgressDisplay::new(progress_out);
            let (layout, outcome) = init_store(&dir, &options, &mut |p| display.update(p))
                .with_context(|| format!("initialising store {}", dir.display()))?;
            display.finish();
            let what = match outcome {
                InitOutcome::Created => "initialised",
                InitOutcome::Resumed => "finished initialising",
                InitOutcome::AlreadyInitialised => "already initialised",
            };
            writeln!(
                out,
                "{what} store {}: {} slots × {}",
                dir.display(),
                layout.slot_count,
                human_bytes(layout.slot_bytes)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Fsck { dir, json } => match fsck(&dir) {
            Ok(report) => {
                if json {
                    serde_json::to_writer_pretty(&mut *out, &report)?;
                    writeln!(out)?;
                } else {
                    for path in &report.refilled_slots {
                        writeln!(out, "refilled missing/short slot file {}", path.display())?;
                    }
                    for finding in &report.findings {
                        writeln!(out, "slot {}: {}", finding.slot, finding.problem)?;
                        if let Some(repair) = &finding.repair {
                            writeln!(out, "  repaired: {repair}")?;
                        }
                    }
                    writeln!(
                        out,
                        "store {} usable: {} segments, {} intact fragments, {} of {} slots in use; \
                         {} written, {} syncs since provisioning",
                        dir.display(),
                        report.segments,
                        report.fragments,
                        report.stats.slots_in_use,
                        report.stats.layout.slot_count,
                        human_bytes(report.stats.totals.bytes_written),
                        report.stats.totals.syncs
                    )?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => {
                writeln!(out, "store {} is not usable: {error}", dir.display())?;
                Ok(ExitCode::FAILURE)
            }
        },
        StoreCommand::Ls { dir, json } => {
            let store = Store::open_read_only(&dir)
                .with_context(|| format!("opening store {}", dir.display()))?;
            let listing = Listing::of(&store);
            if json {
                serde_json::to_writer_pretty(&mut *out, &listing)?;
                writeln!(out)?;
            } else {
                print_listing(&listing, &dir, out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `store ls` prints: per camera its ranges, events and fragment totals.
#[derive(Debug, serde::Serialize)]
struct Listing {
    cameras: Vec<CameraListing>,
}

#[derive(Debug, serde::Serialize)]
struct CameraListing {
    #[serde(flatten)]
    recordings: CameraRecordings,
    totals: CameraTotals,
}

impl Listing {
    fn of(store: &Store) -> Listing {
        let mut recordings = store.recordings();
        let cameras = store
            .camera_totals()
            .into_iter()
            .map(|totals| {
                let recordings = match recordings.iter().position(|r| r.camera == totals.camera) {
                    Some(at) => recordings.remove(at),
                    None => CameraRecordings {
                        camera: totals.camera.clone(),
                        ranges: Vec::new(),
                        events: Vec::new(),
                    },
                };
                CameraListing { recordings, totals }
            })
            .collect();
        Listing { cameras }
    }
}

fn print_listing(
    listing: &Listing,
    dir: &std::path::Path,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if listing
        .cameras
        .iter()
        .all(|c| c.recordings.ranges.is_empty())
    {
        writeln!(out, "no recordings in {}", dir.display())?;
    }
    for CameraListing { recordings, totals } in &listing.cameras {
        let media_90k: u64 = recordings.ranges.iter().map(|r| r.media_duration_90k).sum();
        writeln!(
            out,
            "{}: {} recorded in {} range(s), {} event(s); fragments: {} written, {} listed, {} \
             wrapped over",
            recordings.camera,
            human_duration_90k(media_90k),
            recordings.ranges.len(),
            recordings.events.len(),
            totals.fragments_written,
            totals.fragments_listed,
            totals.fragments_overwritten,
        )?;
        for range in &recordings.ranges {
            if let Some(gap_ms) = range.gap_before_ms {
                if range.clock_jump_before {
                    writeln!(
                        out,
                        "  -- wall clock stepped {}{} (not a gap) --",
                        if gap_ms < 0 { "back " } else { "forward " },
                        human_duration_ms(gap_ms.unsigned_abs())
                    )?;
                } else {
                    writeln!(out, "  -- gap {} --", human_duration_ms(gap_ms as u64))?;
                }
            }
            writeln!(
                out,
                "  {} .. {}  {}  {} segment(s), {} frames, {}",
                format_wall_ms(range.start_wall_ms),
                format_wall_ms(range.end_wall_ms),
                human_duration_90k(range.media_duration_90k),
                range.segments,
                range.frames,
                human_bytes(range.bytes)
            )?;
        }
        for event in &recordings.events {
            writeln!(
                out,
                "  event {}: {} .. {}  sensors: {}  video {} .. {} ({})",
                event.id,
                format_wall_ms(event.start_wall_ms),
                event
                    .end_wall_ms
                    .map_or_else(|| "(no end recorded)".to_owned(), format_wall_ms),
                event.sensors.join(", "),
                format_wall_ms(event.video_start_wall_ms),
                format_wall_ms(event.video_end_wall_ms),
                human_duration_90k(event.media_duration_90k)
            )?;
        }
    }
    Ok(())
}

/// Progress of `store init`: a self-updating line on a terminal, a line per 10 % otherwise.
struct ProgressDisplay<'a> {
    out: &'a mut dyn Write,
    terminal: bool,
    last_percent: Option<u64>,
}

impl<'a> ProgressDisplay<'a> {
    fn new(out: &'a mut dyn Write) -> Self {
        ProgressDisplay {
            out,
            terminal: std::io::stderr().is_terminal(),
            last_percent: None,
        }
    }

    fn update(&mut self, progress: InitProgress) {
        let percent = progress.bytes_done * 100 / progress.bytes_total.max(1);
        let step = if self.terminal { 1 } else { 10 };
        if self
            .last_percent
            .is_some_and(|last| percent / step == last / step)
        {
            return;
        }
        self.last_percent = Some(percent);
        let line = format!(
            "zero-filling slots: {percent:3}% ({} of {})",
            human_bytes(progress.bytes_done),
            human_bytes(progress.bytes_total)
        );
        // Progress output is best effort: a closed stderr must not fail the init.
        let _ = if self.terminal {
            write!(self.out, "\r{line}").and_then(|()| self.out.flush())
        } else {
            writeln!(self.out, "{line}")
        };
    }

    fn finish(&mut self) {
        if self.terminal && self.last_percent.is_some() {
            let _ = writeln!(self.out);
        }
    }
}

/// Unix ms as RFC 3339 UTC with milliseconds.
pub fn format_wall_ms(wall_ms: i64) -> String {
    let time = if wall_ms >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(wall_ms as u64))
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_millis(wall_ms.unsigned_abs()))
    };
    match time {
        Some(time) if wall_ms >= 0 => humantime::format_rfc3339_millis(time).to_string(),
        _ => format!("{wall_ms}ms-since-epoch"),
    }
}

fn human_duration_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

fn human_duration_90k(ticks: u64) -> String {
    human_duration_ms(ticks * 1000 / u64::from(TIMESCALE_90K))
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"B"))
    }
}

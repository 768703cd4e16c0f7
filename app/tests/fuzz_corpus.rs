//! Replays the fuzz corpus of the image intake through `media::process`, the function
//! the upload path (`images::ingest`) runs on untrusted bytes: every input must come back
//! as `Ok` or a clean `MediaError`, never a panic, and an accepted image must have
//! bounded dimensions and a small, valid thumbnail.
//!
//! The corpus is `fuzz/corpus/intake/` (minimised inputs from `fuzz/run`) plus
//! `fuzz/regressions/intake/` (inputs that once failed). A missing or empty corpus fails
//! the test rather than passing with nothing checked.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use gallery::media::{process, Kind, MediaError, THUMB_EDGE};

/// The limit `fuzz/src/lib.rs` (`FUZZ_MAX_PIXELS`) fuzzes with; keep the two equal.
const FUZZ_MAX_PIXELS: u64 = 4_000_000;

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read corpus dir").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// What must hold for one input at one pixel limit; `Err` describes a violation.
fn check(bytes: &[u8], max_pixels: u64) -> Result<&'static str, String> {
    match process(std::io::Cursor::new(bytes), max_pixels) {
        Ok(p) => {
            let pixels = u64::from(p.width) * u64::from(p.height);
            if pixels == 0 || pixels > max_pixels {
                return Err(format!(
                    "accepted {}x{} with limit {max_pixels}",
                    p.width, p.height
                ));
            }
            if Kind::sniff(bytes) != Some(p.kind) {
                return Err(format!("kind {:?} differs from sniffing", p.kind));
            }
            if !matches!(p.thumb_kind, Kind::Jpeg | Kind::Png)
                || Kind::sniff(&p.thumb) != Some(p.thumb_kind)
            {
                return Err(format!("thumbnail is not the {:?} it claims", p.thumb_kind));
            }
            if p.thumb.len() > 2 << 20 {
                return Err(format!("thumbnail of {} bytes", p.thumb.len()));
            }
            let thumb = image::load_from_memory(&p.thumb)
                .map_err(|e| format!("thumbnail does not decode: {e}"))?;
            let (w, h) = (thumb.width(), thumb.height());
            if w == 0 || h == 0 || w > THUMB_EDGE || h > THUMB_EDGE {
                return Err(format!("thumbnail {w}x{h} for {}x{}", p.width, p.height));
            }
            Ok("accepted")
        }
        Err(MediaError::Unsupported) if Kind::sniff(bytes).is_none() => Ok("unsupported"),
        Err(MediaError::Unsupported) => {
            Err("sniffed as an image but refused as unsupported".into())
        }
        Err(MediaError::TooManyPixels { limit, .. }) if limit == max_pixels => {
            Ok("too many pixels")
        }
        Err(e @ MediaError::TooManyPixels { .. }) => Err(format!("wrong limit reported: {e}")),
        Err(MediaError::Corrupt(msg)) if !msg.is_empty() => Ok("corrupt"),
        Err(MediaError::Corrupt(_)) => Err("corrupt without a reason".into()),
        Err(MediaError::Io(e)) => Err(format!("reading bytes in memory failed: {e}")),
    }
}

#[test]
fn every_fuzz_input_is_accepted_or_refused_cleanly() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = files_in(&fuzz.join("corpus/intake"));
    assert!(
        !corpus.is_empty(),
        "no inputs in {}: the corpus must be committed (see fuzz/run)",
        fuzz.join("corpus/intake").display()
    );
    let inputs: Vec<PathBuf> = corpus
        .into_iter()
        .chain(files_in(&fuzz.join("regressions/intake")))
        .collect();

    // Quiet the default hook while replaying; panics are collected and reported below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for path in &inputs {
        let bytes = std::fs::read(path).expect("read corpus file");
        // The fuzzer's limit, and a tiny one that refuses all but the smallest images.
        for limit in [FUZZ_MAX_PIXELS, 64] {
            match catch_unwind(AssertUnwindSafe(|| check(&bytes, limit))) {
                Ok(Ok(outcome)) => *outcomes.entry(outcome).or_default() += 1,
                Ok(Err(why)) => failures.push(format!("{} (limit {limit}): {why}", path.display())),
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("non-string panic");
                    failures.push(format!("{} (limit {limit}): PANIC: {msg}", path.display()));
                }
            }
        }
    }
    std::panic::set_hook(hook);
    eprintln!("{} inputs replayed: {outcomes:?}", inputs.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // A corpus that never gets past the checks would not be exercising decode or thumbnailing.
    assert!(
        outcomes.get("accepted").copied().unwrap_or(0) > 0,
        "no input was accepted: {outcomes:?}"
    );
}

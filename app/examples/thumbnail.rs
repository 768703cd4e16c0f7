//! Benchmark helper: run the upload intake path (sniff, header check, decode, orient,
//! thumbnail, encode) on one file and print wall time per run and the peak RSS. The file
//! is read as the server reads a received upload: from disk through a buffer, never whole.
//! `cargo run --release -p gallery --example thumbnail -- FILE [RUNS]`

use std::time::Instant;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: thumbnail FILE [RUNS]"))?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let file = std::io::BufReader::with_capacity(64 << 10, std::fs::File::open(&path)?);
        let out = gallery::media::process(file, 50_000_000).map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        last = Some(out);
    }
    times.sort_by(f64::total_cmp);
    let out = last.ok_or_else(|| anyhow::anyhow!("no runs"))?;
    println!(
        "thumbnail file={path} image={}x{} thumb_bytes={} runs={runs} median_ms={:.1} min_ms={:.1} peak_rss_mib={:.1}",
        out.width,
        out.height,
        out.thumb.len(),
        times[times.len() / 2],
        times[0],
        peak_rss_kib() as f64 / 1024.0
    );
    Ok(())
}

//! Aggregates a run into the printed and JSON report (sans-IO).

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use serde::Serialize;

use crate::{
    analysis::Missing,
    run::{RunResult, Sample},
    script::Turn,
    stats::{Summary, describe},
};

/// What the run was asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Gateway base URL.
    pub base_url: String,
    /// The recording every caller plays.
    pub wav: String,
    /// Its turns (from the VAD or `--turns`).
    pub turns: Vec<Turn>,
    /// Audio played per call, ms (recording, possibly cut by `--duration`).
    pub audio_ms: u64,
    /// Silence after it, ms.
    pub tail_ms: u64,
    /// Calls live at once.
    pub concurrency: usize,
    /// Calls placed in all.
    pub total: usize,
    /// Ramp of the first wave, ms.
    pub ramp_ms: u64,
}

/// Outcome counts.
#[derive(Debug, Clone, Serialize)]
pub struct Calls {
    /// Calls placed.
    pub placed: usize,
    /// Calls that connected, played the script and hung up cleanly.
    pub ok: usize,
    /// The others.
    pub failed: usize,
    /// Failures by reason.
    pub failures: BTreeMap<String, usize>,
    /// POST -> connected with `events` open.
    pub setup_ms: Option<Summary>,
}

/// One turn of the script across all successful calls.
#[derive(Debug, Clone, Serialize)]
pub struct TurnStats {
    /// 1-based.
    pub turn: usize,
    /// Speech end -> first audible reply packet.
    pub first_audio_ms: Option<Summary>,
    /// Calls where this turn got no reply latency, by reason.
    pub missing: BTreeMap<Missing, usize>,
    /// Calls where an answer was playing when this turn began.
    pub barge_ins: usize,
    /// Speech start -> last packet of the interrupted answer.
    pub barge_in_stop_ms: Option<Summary>,
}

/// Packet counts over all calls.
#[derive(Debug, Clone, Serialize)]
pub struct Packets {
    /// Microphone frames sent.
    pub out: u64,
    /// Reply packets received.
    pub r#in: u64,
    /// Reply packets missing from the sequence ranges.
    pub lost: u64,
    /// `lost / (in + lost)`, percent.
    pub loss_percent: f64,
    /// Reply packets that did not decode.
    pub corrupt: u64,
}

/// The gateway process over the run.
#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    /// CPU seconds used during the run.
    pub cpu_s: f64,
    /// Sum of the calls' connected time.
    pub call_s: f64,
    /// `cpu_s / call_s`: share of a core one call costs on average.
    pub cpu_per_call_s: f64,
    /// Most calls connected at once (as sampled).
    pub peak_concurrency: usize,
    /// Cores used while `peak_concurrency` calls were connected.
    pub cores_at_peak: Option<f64>,
    /// `cores_at_peak / peak_concurrency`.
    pub cpu_per_concurrent_call: Option<f64>,
    /// RSS at the start, KiB.
    pub rss_before_kib: u64,
    /// Largest sampled RSS, KiB.
    pub rss_peak_kib: u64,
    /// RSS after the calls ended (2 s settle), KiB.
    pub rss_after_kib: Option<u64>,
}

/// Voice-session lines in the gateway's log (only when this tool started the gateway).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct SessionLog {
    /// `voice session started` lines.
    pub started: u64,
    /// `voice session ended` lines.
    pub ended: u64,
    /// Sum of their `lost` fields (caller packets the gateway's jitter buffer never got).
    pub lost: u64,
    /// Sum of `late` (arrived after their playout time).
    pub late: u64,
    /// Sum of `frames_dropped` (reply frames the gateway could not send).
    pub frames_dropped: u64,
    /// Warnings and errors logged.
    pub warnings: u64,
}

impl SessionLog {
    /// Sessions still open (should be 0 after a run).
    #[must_use]
    pub fn open(&self) -> i64 {
        self.started as i64 - self.ended as i64
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was asked.
    pub setup: Setup,
    /// Outcomes.
    pub calls: Calls,
    /// Per turn.
    pub turns: Vec<TurnStats>,
    /// All turns together.
    pub first_audio_ms: Option<Summary>,
    /// All barge-ins together.
    pub barge_in_stop_ms: Option<Summary>,
    /// Packets.
    pub packets: Packets,
    /// Per call, the largest delay of a microphone frame behind schedule.
    pub send_lag_ms: Option<Summary>,
    /// `events` messages by type, all calls.
    pub events: BTreeMap<String, u64>,
    /// The gateway process, when measured.
    pub gateway: Option<Gateway>,
    /// The gateway's log, when this tool started it.
    pub session_log: Option<SessionLog>,
    /// This generator's CPU seconds.
    pub client_cpu_s: Option<f64>,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// Whether the hard timeout cut the run short.
    pub timed_out: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Builds the report.
#[must_use]
pub fn build(setup: Setup, run: &RunResult, session_log: Option<SessionLog>) -> Report {
    let ok: Vec<_> = run.calls.iter().filter(|c| c.failure.is_none()).collect();
    let mut failures = BTreeMap::new();
    for c in &run.calls {
        if let Some(f) = &c.failure {
            *failures.entry(f.clone()).or_insert(0) += 1;
        }
    }
    let setups: Vec<f64> = run.calls.iter().filter_map(|c| c.setup.map(ms)).collect();
    let calls = Calls {
        placed: run.calls.len(),
        ok: ok.len(),
        failed: run.calls.len() - ok.len(),
        failures,
        setup_ms: Summary::of(&setups),
    };

    let (mut all_first, mut all_stop) = (Vec::new(), Vec::new());
    let turns = (0..setup.turns.len())
        .map(|t| {
            let results: Vec<_> = ok.iter().filter_map(|c| c.turns.get(t)).collect();
            let first: Vec<f64> = results
                .iter()
                .filter_map(|r| r.first_audio.map(ms))
                .collect();
            let stop: Vec<f64> = results
                .iter()
                .filter_map(|r| r.barge_in_stop.map(ms))
                .collect();
            let mut missing = BTreeMap::new();
            for m in results.iter().filter_map(|r| r.missing) {
                *missing.entry(m).or_insert(0) += 1;
            }
            all_first.extend(&first);
            all_stop.extend(&stop);
            TurnStats {
                turn: t + 1,
                first_audio_ms: Summary::of(&first),
                missing,
                barge_ins: results.iter().filter(|r| r.barged_in).count(),
                barge_in_stop_ms: Summary::of(&stop),
            }
        })
        .collect();

    let (out, r#in, lost, corrupt) = run.calls.iter().fold((0, 0, 0, 0), |a, c| {
        (
            a.0 + c.frames_out,
            a.1 + c.packets_in,
            a.2 + c.lost_in,
            a.3 + c.corrupt_in,
        )
    });
    let packets = Packets {
        out,
        r#in,
        lost,
        loss_percent: if r#in + lost == 0 {
            0.0
        } else {
            100.0 * lost as f64 / (r#in + lost) as f64
        },
        corrupt,
    };
    let lags: Vec<f64> = ok.iter().map(|c| ms(c.max_send_lag)).collect();
    let mut events = BTreeMap::new();
    for c in &run.calls {
        for (k, v) in &c.events {
            *events.entry(k.clone()).or_insert(0) += v;
        }
    }
    let call_s: f64 = run
        .calls
        .iter()
        .map(|c| c.connected_for.as_secs_f64())
        .sum();
    Report {
        setup,
        calls,
        turns,
        first_audio_ms: Summary::of(&all_first),
        barge_in_stop_ms: Summary::of(&all_stop),
        packets,
        send_lag_ms: Summary::of(&lags),
        events,
        gateway: gateway_usage(&run.samples, call_s, run.rss_after_kib),
        session_log,
        client_cpu_s: run.client_cpu.map(|d| d.as_secs_f64()),
        wall_s: run.wall.as_secs_f64(),
        timed_out: run.timed_out,
    }
}

/// CPU and memory from the samples. The per-concurrent-call figure uses only the stretches
/// where the peak number of calls was connected at both ends, so ramp-up and hang-up do not
/// dilute it.
#[must_use]
pub fn gateway_usage(
    samples: &[Sample],
    call_s: f64,
    rss_after_kib: Option<u64>,
) -> Option<Gateway> {
    let (first, last) = (samples.first()?, samples.last()?);
    let cpu_s = last.cpu.saturating_sub(first.cpu).as_secs_f64();
    let peak = samples.iter().map(|s| s.connected).max().unwrap_or(0);
    let (mut cpu, mut wall) = (0.0, 0.0);
    for w in samples.windows(2) {
        if peak > 0 && w[0].connected == peak && w[1].connected == peak {
            cpu += w[1].cpu.saturating_sub(w[0].cpu).as_secs_f64();
            wall += w[1].at.saturating_sub(w[0].at).as_secs_f64();
        }
    }
    let cores_at_peak = (wall > 0.0).then(|| cpu / wall);
    Some(Gateway {
        cpu_s,
        call_s,
        cpu_per_call_s: if call_s > 0.0 { cpu_s / call_s } else { 0.0 },
        peak_concurrency: peak,
        cores_at_peak,
        cpu_per_concurrent_call: cores_at_peak.map(|c| c / peak as f64),
        rss_before_kib: first.rss_kib,
        rss_peak_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        rss_after_kib,
    })
}

/// The human-readable report.
#[must_use]
pub fn human(r: &Report) -> String {
    let mut s = String::new();
    let st = &r.setup;
    let turns: Vec<String> = st
        .turns
        .iter()
        .map(|t| format!("{:.2}-{:.2} s", t.start.as_secs_f64(), t.end.as_secs_f64()))
        .collect();
    let _ = writeln!(
        s,
        "voice-calls: {} calls ({} at once, ramp {} ms) to {}\n  playing {} ({} ms + {} ms tail), turns {}",
        st.total,
        st.concurrency,
        st.ramp_ms,
        st.base_url,
        st.wav,
        st.audio_ms,
        st.tail_ms,
        turns.join(", ")
    );
    let c = &r.calls;
    let _ = writeln!(
        s,
        "calls: {} ok, {} failed of {} placed in {:.1} s{}",
        c.ok,
        c.failed,
        c.placed,
        r.wall_s,
        if r.timed_out {
            " (HARD TIMEOUT HIT)"
        } else {
            ""
        }
    );
    for (reason, n) in &c.failures {
        let _ = writeln!(s, "  {n} x {reason}");
    }
    let _ = writeln!(
        s,
        "call setup (POST -> connected): {}",
        describe(c.setup_ms.as_ref())
    );
    for t in &r.turns {
        let _ = writeln!(
            s,
            "turn {}: speech end -> first reply audio: {}",
            t.turn,
            describe(t.first_audio_ms.as_ref())
        );
        for (m, n) in &t.missing {
            let _ = writeln!(s, "  {n} call(s) without a reply latency: {m:?}");
        }
        if t.barge_ins > 0 {
            let _ = writeln!(
                s,
                "  barge-in ({} calls): speech start -> interrupted answer's last packet: {}",
                t.barge_ins,
                describe(t.barge_in_stop_ms.as_ref())
            );
        }
    }
    let _ = writeln!(s, "all turns: {}", describe(r.first_audio_ms.as_ref()));
    if r.barge_in_stop_ms.is_some() {
        let _ = writeln!(
            s,
            "barge-in stop: {}",
            describe(r.barge_in_stop_ms.as_ref())
        );
    }
    let p = &r.packets;
    let _ = writeln!(
        s,
        "packets: {} out, {} in, {} lost ({:.2} %), {} undecodable",
        p.out, p.r#in, p.lost, p.loss_percent, p.corrupt
    );
    let _ = writeln!(
        s,
        "generator send lag (worst per call): {}; generator CPU {:.1} s",
        describe(r.send_lag_ms.as_ref()),
        r.client_cpu_s.unwrap_or(0.0)
    );
    if let Some(g) = &r.gateway {
        let _ = writeln!(
            s,
            "gateway CPU: {:.1} s over {:.1} call-seconds = {:.2} % of a core per call",
            g.cpu_s,
            g.call_s,
            100.0 * g.cpu_per_call_s
        );
        if let (Some(cores), Some(per)) = (g.cores_at_peak, g.cpu_per_concurrent_call) {
            let _ = writeln!(
                s,
                "  with {} calls connected: {:.2} cores = {:.2} % of a core per concurrent call",
                g.peak_concurrency,
                cores,
                100.0 * per
            );
        }
        let _ = writeln!(
            s,
            "gateway RSS: {:.1} MiB before, {:.1} MiB peak, {} after",
            g.rss_before_kib as f64 / 1024.0,
            g.rss_peak_kib as f64 / 1024.0,
            g.rss_after_kib
                .map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        );
    }
    if let Some(l) = &r.session_log {
        let _ = writeln!(
            s,
            "gateway log: {} sessions started, {} ended ({} still open); caller packets lost {}, late {}; reply frames dropped {}; {} warnings",
            l.started,
            l.ended,
            l.open(),
            l.lost,
            l.late,
            l.frames_dropped,
            l.warnings
        );
    }
    let events: Vec<String> = r.events.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "events: {}", events.join(", "));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, cpu_ms: u64, connected: usize) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            cpu: Duration::from_millis(cpu_ms),
            rss_kib: 1000 + at_ms,
            connected,
        }
    }

    #[test]
    fn cpu_per_concurrent_call_counts_only_the_peak_stretch() {
        let samples = [
            sample(0, 0, 0),
            sample(1000, 100, 5),
            sample(2000, 400, 10),
            sample(3000, 900, 10),
            sample(4000, 1400, 10),
            sample(5000, 1500, 2),
        ];
        let g = gateway_usage(&samples, 50.0, Some(1200)).unwrap();
        assert_eq!(g.peak_concurrency, 10);
        assert!((g.cpu_s - 1.5).abs() < 1e-9);
        assert!((g.cpu_per_call_s - 0.03).abs() < 1e-9);
        assert!((g.cores_at_peak.unwrap() - 0.5).abs() < 1e-9);
        assert!((g.cpu_per_concurrent_call.unwrap() - 0.05).abs() < 1e-9);
        assert_eq!((g.rss_before_kib, g.rss_peak_kib), (1000, 6000));
    }

    #[test]
    fn no_samples_no_gateway_figures() {
        assert!(gateway_usage(&[], 1.0, None).is_none());
        let g = gateway_usage(&[sample(0, 0, 0)], 0.0, None).unwrap();
        assert_eq!(g.cores_at_peak, None);
        assert_eq!(g.cpu_per_call_s, 0.0);
    }
}

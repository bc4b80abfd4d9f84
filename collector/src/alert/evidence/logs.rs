//! The tail of a container's logs since its last start, read within the
//! evidence's time and byte budgets and redacted line by line.

use bollard::{
    container::LogOutput,
    models::{ContainerInspectResponse, ContainerState},
    query_parameters::LogsOptionsBuilder,
};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use hemostat_protocol::{
    evidence::{LogEvidence, LogLine, LogStream, LogsSkipped},
    stack,
};
use tokio::time::Instant;

use super::{
    Gatherer, MAX_JOINED_BYTES, MAX_LINE_BYTES, MAX_READ_BYTES, MAX_STREAM_BYTES, START_SLACK, cut, parse_time,
};
use crate::{alert::redact::LineRedactor, docker};

/// Lines asked of Docker per line kept, when the lines kept begin inside a
/// stack trace: room for its frames, which go before the lines around
/// them. Bounded by [`MAX_STREAM_BYTES`].
const READ_FACTOR: u32 = 8;

impl Gatherer {
    pub(super) async fn logs(
        &self,
        inspect: &ContainerInspectResponse,
        deadline: Instant,
        redactions: &mut u32,
        truncated: &mut bool,
    ) -> LogEvidence {
        let tail = self.settings.lines;
        let Some(id) = inspect.id.as_deref() else {
            return LogEvidence { tail, skipped: Some(LogsSkipped::Unavailable), ..Default::default() };
        };
        let since = inspect.state.as_ref().and_then(run_start);
        let (mut reader, mut skipped) = self.read(id, since, tail, deadline).await;
        // The oldest line read is a stack frame: the trace began further
        // back, with the line that usually names the failure. Read again,
        // further back: the frames go first (see `finish`). Only then, so
        // an alert without a long trace reads no more than it keeps.
        if skipped.is_none() && !reader.cut_short && reader.lines.len() >= tail as usize && reader.starts_in_a_trace() {
            let (further, further_skipped) = self.read(id, since, tail.saturating_mul(READ_FACTOR), deadline).await;
            if further_skipped.is_none() {
                (reader, skipped) = (further, None);
            }
        }
        *truncated |= reader.cut_short;
        let raw = reader.finish(since, tail as usize);
        // What was read before a failure or timeout is kept, marked.
        let skipped = match skipped {
            Some(_) if !raw.is_empty() => {
                *truncated = true;
                None
            }
            other => other,
        };
        let mut redactor = self.redactor.lines();
        let lines: Vec<LogLine> = raw.into_iter().map(|r| r.into_line(&mut redactor, redactions)).collect();
        LogEvidence {
            count: u32::try_from(lines.len()).unwrap_or(u32::MAX),
            lines,
            since: since.map(|s| s.to_rfc3339_opts(SecondsFormat::Millis, true)),
            tail,
            skipped,
        }
    }

    /// The newest `asked` lines since `since` (Docker's `since` is whole
    /// seconds; `finish` filters to the exact time), until `deadline`.
    async fn read(
        &self,
        id: &str,
        since: Option<DateTime<Utc>>,
        asked: u32,
        deadline: Instant,
    ) -> (Reader, Option<LogsSkipped>) {
        let mut options =
            LogsOptionsBuilder::default().stdout(true).stderr(true).timestamps(true).tail(&asked.to_string());
        if let Some(seconds) = since.and_then(|s| i32::try_from(s.timestamp()).ok()) {
            options = options.since(seconds);
        }
        let mut stream = self.docker.logs(id, Some(options.build()));
        let mut reader = Reader::default();
        let read = tokio::time::timeout_at(deadline, async {
            while let Some(item) = stream.next().await {
                if !reader.push(item?) {
                    break;
                }
            }
            Ok::<(), bollard::errors::Error>(())
        })
        .await;
        let skipped = match read {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                tracing::debug!(container = %docker::short(id), error = %e, "reading logs for evidence failed");
                Some(LogsSkipped::Unavailable)
            }
            Err(_) => {
                tracing::debug!(container = %docker::short(id), "reading logs for evidence timed out");
                Some(LogsSkipped::Timeout)
            }
        };
        (reader, skipped)
    }
}

/// The lines a sequence of the logs API's frames (`(stderr, bytes)`) makes,
/// as [`Gatherer::logs`] turns them into evidence (read, ordered, filtered,
/// redacted, cut), and whether reading was cut short: what `hemostat-fuzz`
/// feeds with hostile output.
#[cfg(feature = "fuzzing")]
pub(crate) fn lines_of(
    frames: &[(bool, Vec<u8>)],
    since: Option<DateTime<Utc>>,
    tail: usize,
    redactor: &crate::alert::redact::Redactor,
) -> (Vec<LogLine>, bool, u32) {
    let mut reader = Reader::default();
    for (stderr, bytes) in frames {
        let message = bytes.clone().into();
        let frame = if *stderr { LogOutput::StdErr { message } } else { LogOutput::StdOut { message } };
        if !reader.push(frame) {
            break;
        }
    }
    let cut_short = reader.cut_short;
    let mut redactions = 0;
    let mut lines = redactor.lines();
    let lines = reader.finish(since, tail).into_iter().map(|r| r.into_line(&mut lines, &mut redactions)).collect();
    (lines, cut_short, redactions)
}

/// Where the last run's output begins: its start less [`START_SLACK`],
/// or, for a container running again after an exit, that exit (whichever
/// is later). `None` for a container that never started.
fn run_start(state: &ContainerState) -> Option<DateTime<Utc>> {
    let started = parse_time(state.started_at.as_deref()?)?;
    let mut from = started - START_SLACK;
    // While running (not between two runs), `FinishedAt` is the previous
    // run's end: nothing of this run is older.
    if state.running.unwrap_or(false)
        && !state.restarting.unwrap_or(false)
        && let Some(finished) = state.finished_at.as_deref().and_then(parse_time)
        && finished < started
        && finished > from
    {
        from = finished;
    }
    Some(from)
}

/// One line as read, before redaction.
#[derive(Debug)]
struct Raw {
    stream: LogStream,
    time: Option<DateTime<Utc>>,
    bytes: Vec<u8>,
    /// Arrival order of its first piece: a line completed late (its
    /// last piece came after other lines) keeps its place.
    seq: usize,
}

impl Raw {
    fn into_line(self, redactor: &mut LineRedactor<'_>, redactions: &mut u32) -> LogLine {
        let (line, n) = redactor.redact(&String::from_utf8_lossy(&self.bytes));
        *redactions += n;
        LogLine {
            stream: self.stream,
            line: cut(line, MAX_LINE_BYTES),
            timestamp: self.time.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }
}

/// Turns the logs API's frames into lines. With `timestamps=1` each frame
/// starts with Docker's time; a frame without a newline at its end is a
/// piece of a longer line (Docker splits at 16 KiB), continued by the next
/// frame of the same stream. A TTY container's output arrives as raw
/// lines, some without a time of their own.
#[derive(Debug, Default)]
struct Reader {
    lines: Vec<Raw>,
    /// The open line of stdout and of stderr.
    open: [Option<Raw>; 2],
    read: usize,
    seq: usize,
    /// Bytes of `lines`.
    held: usize,
    /// Stopped at [`MAX_STREAM_BYTES`], older lines dropped to hold at most
    /// [`MAX_READ_BYTES`], or a line lost its end.
    cut_short: bool,
}

impl Reader {
    /// Takes one frame; false once enough was read.
    fn push(&mut self, output: LogOutput) -> bool {
        let (stream, message) = match output {
            LogOutput::StdOut { message } | LogOutput::Console { message } => (LogStream::Stdout, message),
            LogOutput::StdErr { message } => (LogStream::Stderr, message),
            LogOutput::StdIn { .. } => return true,
        };
        self.read += message.len();
        if self.read > MAX_STREAM_BYTES {
            self.cut_short = true;
            return false;
        }
        let (time, rest) = split_time(&message);
        let (content, complete) = match rest.strip_suffix(b"\n") {
            Some(content) => (content.strip_suffix(b"\r").unwrap_or(content), true),
            None => (rest, false),
        };
        let slot = &mut self.open[usize::from(stream == LogStream::Stderr)];
        match slot {
            Some(open) => {
                let room = MAX_JOINED_BYTES.saturating_sub(open.bytes.len());
                if content.len() > room {
                    self.cut_short = true;
                }
                open.bytes.extend_from_slice(&content[..content.len().min(room)]);
            }
            None => {
                self.seq += 1;
                let len = content.len().min(MAX_JOINED_BYTES);
                *slot = Some(Raw { stream, time, bytes: content[..len].to_vec(), seq: self.seq });
            }
        }
        if complete && let Some(line) = slot.take() {
            self.held += line.bytes.len();
            self.lines.push(line);
            // The newest lines are the failure: the oldest make room.
            let mut n = 0;
            while self.held > MAX_READ_BYTES && n + 1 < self.lines.len() {
                self.held -= self.lines[n].bytes.len();
                n += 1;
            }
            if n > 0 {
                self.lines.drain(..n);
                self.cut_short = true;
            }
        }
        true
    }

    /// Whether the oldest line read is a stack frame (its trace began
    /// before it).
    fn starts_in_a_trace(&self) -> bool {
        let texts: Vec<&str> =
            self.lines.iter().take(8).map(|l| std::str::from_utf8(&l.bytes).unwrap_or_default()).collect();
        stack::frames(&texts).first().copied().unwrap_or(false)
    }

    /// The lines in order, those older than `since` left out (Docker's
    /// `since` is in whole seconds), at most `tail`: stack frames go first
    /// (all but the first few of each trace), then the oldest lines.
    fn finish(mut self, since: Option<DateTime<Utc>>, tail: usize) -> Vec<Raw> {
        // A last line without a newline (written just before the exit).
        self.lines.extend(self.open.into_iter().flatten());
        self.lines.sort_by_key(|l| l.seq);
        self.lines.retain(|l| match (since, l.time) {
            (Some(since), Some(time)) => time >= since,
            _ => true,
        });
        let mut excess = self.lines.len().saturating_sub(tail);
        stack::drop_frames(
            &mut self.lines,
            |l| std::str::from_utf8(&l.bytes).unwrap_or_default(),
            |_| {
                let over = excess > 0;
                excess = excess.saturating_sub(1);
                over
            },
        );
        let excess = self.lines.len().saturating_sub(tail);
        self.lines.drain(..excess);
        self.lines
    }
}

/// Splits Docker's leading RFC 3339 time off a frame, if it has one.
fn split_time(frame: &[u8]) -> (Option<DateTime<Utc>>, &[u8]) {
    let Some(space) = frame.iter().take(40).position(|&b| b == b' ') else {
        return (None, frame);
    };
    let time = std::str::from_utf8(&frame[..space])
        .ok()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    match time {
        Some(time) => (Some(time), &frame[space + 1..]),
        None => (None, frame),
    }
}

#[cfg(test)]
mod tests {
    use hemostat_protocol::evidence::ELLIPSIS;

    use super::{super::time, *};
    use crate::alert::redact::Redactor;

    fn out(text: &str) -> LogOutput {
        LogOutput::StdOut { message: text.to_owned().into() }
    }

    fn err(text: &str) -> LogOutput {
        LogOutput::StdErr { message: text.to_owned().into() }
    }

    fn texts(lines: &[Raw]) -> Vec<String> {
        lines.iter().map(|l| String::from_utf8_lossy(&l.bytes).into_owned()).collect()
    }

    fn t(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    #[test]
    fn frames_become_lines_with_times_and_streams() {
        let mut r = Reader::default();
        assert!(r.push(out("2026-12-02T06:50:18.783883808Z starting\n")));
        assert!(r.push(err("2026-12-02T06:50:18.783887435Z boom\r\n")));
        let lines = r.finish(None, 50);
        assert_eq!(texts(&lines), ["starting", "boom"]);
        assert_eq!(lines[1].stream, LogStream::Stderr);
        assert_eq!(lines[0].time, Some(t("2026-12-02T06:50:18.783883808Z")));
    }

    #[test]
    fn split_lines_are_joined_in_their_place() {
        let mut r = Reader::default();
        r.push(out("2026-12-02T06:50:18.1Z aaaa"));
        r.push(err("2026-12-02T06:50:18.2Z other\n"));
        r.push(out("2026-12-02T06:50:18.3Z bbbb\n"));
        r.push(out("2026-12-02T06:50:18.4Z tail without newline"));
        assert_eq!(texts(&r.finish(None, 50)), ["aaaabbbb", "other", "tail without newline"]);
    }

    #[test]
    fn tty_lines_without_times_are_kept() {
        let mut r = Reader::default();
        r.push(LogOutput::Console { message: "2026-12-02T06:50:18.1Z first\r\n".to_owned().into() });
        r.push(LogOutput::Console { message: "second\r\n".to_owned().into() });
        let lines = r.finish(Some(t("2026-12-02T06:50:18Z")), 50);
        assert_eq!(texts(&lines), ["first", "second"]);
        assert_eq!(lines[1].time, None);
    }

    #[test]
    fn older_lines_and_excess_lines_go() {
        let mut r = Reader::default();
        r.push(out("2026-12-02T06:50:10.0Z previous run\n"));
        for i in 0..5 {
            r.push(out(&format!("2026-12-02T06:50:12.{i}Z line {i}\n")));
        }
        assert_eq!(texts(&r.finish(Some(t("2026-12-02T06:50:11.5Z")), 3)), ["line 2", "line 3", "line 4"]);
    }

    #[test]
    fn a_traces_frames_go_before_the_line_that_names_the_failure() {
        let mut r = Reader::default();
        r.push(out("2026-12-02T06:50:12.0Z serving on :8080\n"));
        r.push(err("2026-12-02T06:50:13.0Z fatal error: concurrent map writes\n"));
        r.push(err("2026-12-02T06:50:13.0Z \n"));
        r.push(err("2026-12-02T06:50:13.0Z goroutine 42 [running]:\n"));
        for i in 0..40 {
            r.push(err(&format!("2026-12-02T06:50:13.0Z main.handler{i}(0xc000010000)\n")));
            r.push(err(&format!("2026-12-02T06:50:13.0Z \t/src/app/main.go:{i} +0x65\n")));
        }
        let lines = texts(&r.finish(None, 10));
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert_eq!(lines[..2], ["serving on :8080", "fatal error: concurrent map writes"], "{lines:?}");
        assert_eq!(lines[2..5], ["", "goroutine 42 [running]:", "main.handler0(0xc000010000)"], "{lines:?}");
    }

    #[test]
    fn reading_stops_at_its_byte_budget() {
        let mut r = Reader::default();
        let line = format!("2026-12-02T06:50:10.0Z {}\n", "x".repeat(16 * 1024));
        let mut frames = 0;
        while r.push(out(&line)) {
            frames += 1;
            assert!(frames < 1000, "never stopped");
        }
        assert!(r.cut_short);
        assert!(frames * line.len() <= MAX_STREAM_BYTES);
        // What is held is the newest lines, within MAX_READ_BYTES.
        let mut r = Reader::default();
        for i in 0..200 {
            r.push(out(&format!("2026-12-02T06:50:10.0Z {i:04} {}\n", "x".repeat(16 * 1024))));
        }
        assert!(r.cut_short);
        let lines = texts(&r.finish(None, 1000));
        assert!(lines.len() < 200 && lines.iter().map(String::len).sum::<usize>() <= MAX_READ_BYTES);
        assert!(lines.last().unwrap().starts_with("0199 "), "the newest line is kept");
        // A line of many pieces is kept to MAX_JOINED_BYTES.
        let mut r = Reader::default();
        for _ in 0..10 {
            r.push(out(&format!("2026-12-02T06:50:10.0Z {}", "y".repeat(16 * 1024))));
        }
        r.push(out("2026-12-02T06:50:10.0Z end\n"));
        let lines = r.finish(None, 50);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].bytes.len(), MAX_JOINED_BYTES);
    }

    #[test]
    fn a_run_starts_a_second_before_docker_says_or_at_the_previous_exit() {
        let exited = ContainerState {
            running: Some(false),
            started_at: Some("2026-12-02T06:50:20.100Z".into()),
            finished_at: Some("2026-12-02T06:50:20.099Z".into()),
            ..Default::default()
        };
        assert_eq!(run_start(&exited), Some(t("2026-12-02T06:50:19.100Z")));
        let running_again = ContainerState {
            running: Some(true),
            started_at: Some("2026-12-02T06:50:20.100Z".into()),
            finished_at: Some("2026-12-02T06:50:19.900Z".into()),
            ..Default::default()
        };
        assert_eq!(run_start(&running_again), Some(t("2026-12-02T06:50:19.900Z")));
        let never = ContainerState { started_at: Some("0001-01-01T00:00:00Z".into()), ..Default::default() };
        assert_eq!(run_start(&never), None);
        assert_eq!(time(Some("0001-01-01T00:00:00Z")), None);
        assert_eq!(time(Some("2026-12-02T06:50:18.783883808Z")).as_deref(), Some("2026-12-02T06:50:18.783Z"));
    }

    #[test]
    fn lines_are_redacted_then_cut() {
        let r = Redactor::default();
        let mut lines = r.lines();
        let mut n = 0;
        let raw = Raw {
            stream: LogStream::Stderr,
            time: None,
            bytes: format!("{} password=hunter2", "é".repeat(MAX_LINE_BYTES)).into_bytes(),
            seq: 0,
        };
        let line = raw.into_line(&mut lines, &mut n);
        assert_eq!(n, 1);
        assert!(line.line.len() <= MAX_LINE_BYTES + ELLIPSIS.len());
        let bad = Raw {
            stream: LogStream::Stdout,
            time: None,
            bytes: vec![0xff, b'o', b'k', 0x1b, b'[', b'0', b'm'],
            seq: 0,
        };
        assert_eq!(bad.into_line(&mut lines, &mut n).line, "\u{fffd}ok");
    }
}

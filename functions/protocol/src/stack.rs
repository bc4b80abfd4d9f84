//! Stack traces in log lines: which lines are frames, and which of them go
//! first when a log must be cut.
//!
//! Many runtimes print the cause of a crash first and the stack after it:
//! Go's `panic:` or `fatal error:` line, then every goroutine; Java's
//! `Exception in thread ...`, then hundreds of `at` lines; Node's
//! `Error: ...`, then `at` lines; PHP's `#0 ...` frames. A log cut to its
//! newest lines keeps the frames and loses the cause, and the analyzer
//! cannot name what it never saw. So wherever a log is cut (the collector's
//! tail, an alert's size cap), the frames go before any other line: a run
//! of frames keeps its first [`KEEP_PER_RUN`] (where the failure happened),
//! the rest go oldest first. Python prints its exception last, so its
//! frames going first keeps its cause too.
//!
//! Recognised frames (a line is judged with its neighbours):
//! - JVM, .NET, Node, Rust backtraces: an indented `at ...`; Java's
//!   `... 12 more` and logback's `... 12 common frames omitted`;
//! - Go: a file line (`\t/src/app/main.go:42 +0x1d`), the function line
//!   before it, `goroutine 7 [running]:` and `created by ...`;
//! - Python: `File "...", line N, in f`, the indented source line after it
//!   and the caret line under that;
//! - Ruby: `from /app/x.rb:10:in 'f'`; PHP: `#3 /var/www/x.php(12): f()`
//!   and `#4 {main}`; Rust: an indented `12: std::...`.
//!
//! Blank lines inside a run of frames belong to it.

/// Frames a run keeps, from its start (the innermost frames of a JVM, Go or
/// Node trace: where the failure happened), when frames must go.
pub const KEEP_PER_RUN: usize = 3;

/// Which of `lines` are frames of a stack trace (blank lines between frames
/// included).
pub fn frames<S: AsRef<str>>(lines: &[S]) -> Vec<bool> {
    let text: Vec<&str> = lines.iter().map(AsRef::as_ref).collect();
    let mut flags: Vec<bool> = text.iter().map(|l| alone(l)).collect();
    for i in 0..text.len() {
        let next = text.get(i + 1).copied();
        // Go prints each frame as a function line and an indented file line.
        if next.is_some_and(go_file) && !text[i].trim().is_empty() && !indented(text[i]) {
            flags[i] = true;
        }
        // Python: the source line under `File "...", line N`, and the
        // carets (3.11+) under that.
        if i > 0 && python_file(text[i - 1]) && indented(text[i]) && !python_file(text[i]) {
            flags[i] = true;
            if next.is_some_and(carets) {
                flags[i + 1] = true;
            }
        }
    }
    // A blank line between two frames is part of the trace: the line
    // before it and the line after it that are not blank are frames.
    let blank: Vec<bool> = text.iter().map(|l| l.trim().is_empty()).collect();
    let mut after = vec![false; text.len()];
    let mut next = false;
    for i in (0..text.len()).rev() {
        after[i] = next;
        if !blank[i] {
            next = flags[i];
        }
    }
    let mut before = false;
    for i in 0..text.len() {
        if !blank[i] {
            before = flags[i];
        } else {
            flags[i] = before && after[i];
        }
    }
    flags
}

/// The frames that may go, in the order they go: every frame but the first
/// [`KEEP_PER_RUN`] non-blank ones of each run of frames, oldest first.
pub fn removable<S: AsRef<str>>(lines: &[S]) -> Vec<usize> {
    let flags = frames(lines);
    let mut out = Vec::new();
    let mut kept = 0;
    for (i, (&frame, line)) in flags.iter().zip(lines).enumerate() {
        if !frame {
            kept = 0;
            continue;
        }
        if kept < KEEP_PER_RUN && !line.as_ref().trim().is_empty() {
            kept += 1;
        } else {
            out.push(i);
        }
    }
    out
}

/// Offers the frames of `items` (see [`removable`]) to `drop`, in order,
/// until it declines one: `drop` says whether that item goes (the caller
/// still over its limit), and accounts for it. `text` reads an item's line.
/// Returns how many went.
pub fn drop_frames<T>(items: &mut Vec<T>, text: impl Fn(&T) -> &str, mut drop: impl FnMut(&T) -> bool) -> usize {
    let lines: Vec<&str> = items.iter().map(&text).collect();
    let mut gone = vec![false; items.len()];
    let mut n = 0;
    for i in removable(&lines) {
        if !drop(&items[i]) {
            break;
        }
        gone[i] = true;
        n += 1;
    }
    let mut flags = gone.into_iter();
    items.retain(|_| !flags.next().unwrap_or(false));
    n
}

/// A frame whatever its neighbours.
fn alone(line: &str) -> bool {
    let t = line.trim_start();
    let indented = indented(line);
    (indented && t.starts_with("at ") && t.len() > 3)
        || (t.starts_with("... ") && (t.ends_with(" more") || t.ends_with(" frames omitted")))
        || go_file(line)
        || (t.starts_with("goroutine ") && t.ends_with("]:"))
        || t.starts_with("created by ")
        || python_file(line)
        || (t.starts_with("from ") && t.contains(":in "))
        || php_frame(t)
        || (indented && numbered(t))
}

fn indented(line: &str) -> bool {
    line.starts_with([' ', '\t'])
}

/// Go's `\t/path/file.go:42 +0x1d` (or without the offset).
fn go_file(line: &str) -> bool {
    line.starts_with('\t')
        && line.trim_start().split_once(".go:").is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))
}

fn python_file(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("File \"") && t.contains("\", line ")
}

fn carets(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && t.chars().all(|c| matches!(c, '^' | '~'))
}

/// PHP's `#0 /var/www/src/Kernel.php(42): f()` and `#5 {main}`.
fn php_frame(t: &str) -> bool {
    let Some(rest) = t.strip_prefix('#') else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &rest[digits..];
    digits > 0 && rest.starts_with(' ') && (rest.contains("): ") || rest.trim() == "{main}")
}

/// Rust's backtrace entry `  12: std::rt::lang_start` (indented).
fn numbered(t: &str) -> bool {
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && t[digits..].starts_with(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(text: &str) -> Vec<bool> {
        let lines: Vec<&str> = text.lines().collect();
        frames(&lines)
    }

    #[test]
    fn java_frames_but_not_the_exception_nor_its_cause() {
        let log = "Exception in thread \"main\" java.lang.IllegalStateException: no bean\n\
                   \tat com.example.App.start(App.java:42)\n\
                   \tat com.example.App.main(App.java:10)\n\
                   Caused by: java.io.FileNotFoundException: /etc/app.yml (No such file or directory)\n\
                   \tat java.base/java.io.FileInputStream.open0(Native Method)\n\
                   \t... 12 more";
        assert_eq!(marks(log), [false, true, true, false, true, true]);
    }

    #[test]
    fn a_go_dump_is_frames_after_its_fatal_line() {
        let log = "fatal error: concurrent map writes\n\
                   \n\
                   goroutine 42 [running]:\n\
                   main.(*cache).put(0xc000010000, {0x4b1c3e, 0x3})\n\
                   \t/src/app/cache.go:31 +0x65\n\
                   created by net/http.(*Server).Serve in goroutine 1\n\
                   \t/usr/local/go/src/net/http/server.go:3285 +0x4b4\n\
                   \n\
                   goroutine 1 [IO wait]:\n\
                   internal/poll.runtime_pollWait(0x7f, 0x72)\n\
                   \t/usr/local/go/src/runtime/netpoll.go:345 +0x85";
        let m = marks(log);
        assert!(!m[0], "{m:?}");
        assert!(m[2..].iter().all(|&f| f), "{m:?}");
    }

    #[test]
    fn node_python_php_ruby_and_rust_frames() {
        assert_eq!(
            marks(
                "Error: Cannot find module 'express'\n    at Module._resolveFilename (node:internal/modules/cjs/loader:1145:15)"
            ),
            [false, true]
        );
        assert_eq!(
            marks(
                "Traceback (most recent call last):\n  File \"/app/main.py\", line 9, in <module>\n    r.ping()\n    ^^^^^^^^\nConnectionError: refused"
            ),
            [false, true, true, true, false]
        );
        assert_eq!(
            marks(
                "PHP Fatal error:  Uncaught Exception: boom in /var/www/a.php:3\nStack trace:\n#0 /var/www/index.php(12): f()\n#1 {main}\n  thrown in /var/www/a.php on line 3"
            ),
            [false, false, true, true, false]
        );
        assert_eq!(marks("/app/x.rb:10:in `f': boom (RuntimeError)\n\tfrom /app/x.rb:20:in `<main>'"), [false, true]);
        assert_eq!(
            marks(
                "thread 'main' panicked at src/main.rs:5:10:\nstack backtrace:\n   0: rust_begin_unwind\n             at ./src/main.rs:5:10"
            ),
            [false, false, true, true]
        );
    }

    #[test]
    fn ordinary_lines_are_not_frames() {
        let log = "2024-05-02 10:11:12 INFO  Starting server at port 8080\n\
                   listening at 0.0.0.0:8080\n\
                   #1 is the best\n\
                   ERROR: could not connect to server: Connection refused\n\
                   \tIs the server running on host \"db\" and accepting TCP/IP connections on port 5432?";
        assert!(marks(log).iter().all(|&f| !f), "{:?}", marks(log));
    }

    #[test]
    fn each_run_keeps_its_first_frames_and_the_rest_go_oldest_first() {
        let mut lines = vec!["Exception in thread \"main\" java.lang.RuntimeException: a".to_owned()];
        lines.extend((0..6).map(|i| format!("\tat a.B.c{i}(B.java:{i})")));
        lines.push("Caused by: java.lang.Error: b".into());
        lines.extend((0..5).map(|i| format!("\tat d.E.f{i}(E.java:{i})")));
        assert_eq!(removable(&lines), [4, 5, 6, 11, 12]);

        let mut items = lines.clone();
        let gone = drop_frames(&mut items, String::as_str, |_| true);
        assert_eq!(gone, 5);
        assert_eq!(items.len(), lines.len() - 5);
        assert!(items.contains(&lines[0]) && items.contains(&lines[7]));

        // Stops as soon as the caller says it fits.
        let mut items = lines.clone();
        let mut left = 2;
        let gone = drop_frames(&mut items, String::as_str, |_| {
            left -= 1;
            left >= 0
        });
        assert_eq!(gone, 2);
    }
}

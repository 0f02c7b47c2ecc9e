//! A worker process (`kind = "command"`): started once per run in the bundle's folder,
//! spoken to in JSON lines over its stdin and stdout; its stderr is kept for error messages.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Transport, worker_error};
use crate::Result;
use crate::bundle::Bundle;

/// Lines of the worker's stderr kept for error messages.
const STDERR_LINES: usize = 20;

/// Longest reply line read (a batch of large images as base64).
const MAX_LINE: usize = 1 << 30;

/// A running worker process.
#[derive(Debug)]
pub struct CommandTransport {
    bundle: PathBuf,
    program: String,
    inner: Mutex<Worker>,
    stderr: Arc<Mutex<Vec<String>>>,
    timeout: Duration,
    startup: Duration,
}

#[derive(Debug)]
struct Worker {
    child: Child,
    /// Request lines to the writer thread, which owns the worker's stdin: a worker that stops
    /// reading blocks that thread, never the caller, whose timeout then fires.
    stdin: Option<Sender<Vec<u8>>>,
    lines: Receiver<std::io::Result<String>>,
    greeted: bool,
    broken: Option<String>,
}

impl CommandTransport {
    /// Starts the worker `bundle`'s `[worker] command` names.
    pub fn start(bundle: &Bundle) -> Result<Self> {
        let dir = bundle.dir().to_path_buf();
        let section = bundle.manifest().worker.as_ref().ok_or_else(|| worker_error(&dir, "has no [worker] section"))?;
        let (program, args) =
            section.command.split_first().ok_or_else(|| worker_error(&dir, "worker.command is empty"))?;
        let mut child = Command::new(program)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                worker_error(
                    &dir,
                    format!(
                        "cannot start worker.command {:?} ({e}). Fix: install {program} or give its full path in bundle.toml",
                        section.command
                    ),
                )
            })?;
        let stdout = child.stdout.take().ok_or_else(|| worker_error(&dir, "the worker has no stdout"))?;
        let stderr_pipe = child.stderr.take().ok_or_else(|| worker_error(&dir, "the worker has no stderr"))?;
        let (send, lines) = channel();
        // Replies are read on their own thread, so a worker that hangs is noticed by a timeout.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match (&mut reader).take(MAX_LINE as u64).read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if send.send(Ok(line)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = send.send(Err(e));
                        break;
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&stderr);
        // stderr is drained to its end whatever it holds (a worker blocked on a full stderr
        // pipe would hang); the last lines are kept, each cut to a readable length.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut raw = Vec::new();
            while matches!(reader.read_until(b'\n', &mut raw), Ok(n) if n > 0) {
                let line: String = String::from_utf8_lossy(&raw).trim_end().chars().take(500).collect();
                raw.clear();
                if let Ok(mut k) = kept.lock() {
                    if k.len() == STDERR_LINES {
                        k.remove(0);
                    }
                    k.push(crate::io::escape_control(&line));
                }
            }
        });
        let mut pipe = child.stdin.take().ok_or_else(|| worker_error(&dir, "the worker has no stdin"))?;
        let (stdin, requests) = channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for line in requests {
                if pipe.write_all(&line).and_then(|()| pipe.flush()).is_err() {
                    break;
                }
            }
        });
        let stdin = Some(stdin);
        Ok(CommandTransport {
            bundle: dir,
            program: section.command.join(" "),
            inner: Mutex::new(Worker { child, stdin, lines, greeted: false, broken: None }),
            stderr,
            timeout: Duration::from_secs_f64(section.timeout_s),
            startup: Duration::from_secs_f64(section.startup_timeout_s),
        })
    }

    /// The worker's last stderr lines, for an error message.
    fn stderr_tail(&self) -> String {
        // Give the stderr thread a moment to read what a dying worker wrote last.
        std::thread::sleep(Duration::from_millis(50));
        let lines = self.stderr.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.is_empty() { String::new() } else { format!("; its last stderr lines:\n  {}", lines.join("\n  ")) }
    }
}

impl Transport for CommandTransport {
    fn call(&self, request: &serde_json::Value, what: &str) -> Result<serde_json::Value> {
        let mut w = self.inner.lock().map_err(|_| worker_error(&self.bundle, "the worker's lock was poisoned"))?;
        if let Some(why) = &w.broken {
            return Err(worker_error(&self.bundle, format!("{what}: not sent, the worker already failed ({why})")));
        }
        let timeout = if w.greeted { self.timeout } else { self.startup };
        let mut line = serde_json::to_string(request).map_err(|e| worker_error(&self.bundle, e.to_string()))?;
        line.push('\n');
        let sent = match w.stdin.as_ref() {
            Some(stdin) => stdin.send(line.into_bytes()).map_err(|_| std::io::Error::other("its stdin is closed")),
            None => Err(std::io::Error::other("its stdin is closed")),
        };
        let outcome = match sent {
            Err(e) => Err(format!("cannot send {what} ({e}): the worker has exited")),
            Ok(()) => match w.lines.recv_timeout(timeout) {
                Ok(Ok(reply)) => serde_json::from_str::<serde_json::Value>(reply.trim())
                    .map_err(|e| format!("the reply to {what} is not JSON ({e}): {}", super::clip(reply.trim()))),
                Ok(Err(e)) => Err(format!("cannot read the reply to {what}: {e}")),
                Err(RecvTimeoutError::Timeout) => Err(format!(
                    "no reply to {what} within {:.0} s; the worker was stopped. Fix: raise worker.{} in bundle.toml if it is only slow",
                    timeout.as_secs_f64(),
                    if w.greeted { "timeout_s" } else { "startup_timeout_s" }
                )),
                Err(RecvTimeoutError::Disconnected) => {
                    // Its stdout closed; it has exited or is about to (bounded wait, then killed).
                    let mut status = None;
                    for _ in 0..100 {
                        if let Ok(Some(s)) = w.child.try_wait() {
                            status = Some(s.to_string());
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let status = status.unwrap_or_else(|| "its stdout closed".into());
                    Err(format!("the worker exited ({status}) before replying to {what}"))
                }
            },
        };
        match outcome {
            Ok(v) => {
                w.greeted = true;
                Ok(v)
            }
            Err(why) => {
                let _ = w.child.kill();
                let _ = w.child.wait();
                w.broken = Some(why.clone());
                Err(worker_error(
                    &self.bundle,
                    format!(
                        "worker `{}`: {why}. Edits made so far are cached; run again to resume{}",
                        self.program,
                        self.stderr_tail()
                    ),
                ))
            }
        }
    }
}

impl Drop for CommandTransport {
    /// Closes the worker's stdin (its cue to exit), and stops it if it does not in a moment.
    fn drop(&mut self) {
        let w = match self.inner.get_mut() {
            Ok(w) => Some(w),
            Err(poisoned) => Some(poisoned.into_inner()),
        };
        if let Some(w) = w {
            drop(w.stdin.take());
            for _ in 0..20 {
                if matches!(w.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

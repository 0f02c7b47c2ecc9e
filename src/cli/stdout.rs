//! Standard output that a closed pipe ends quietly (`gsmile models | head -1`), as ripgrep
//! does, instead of `println!`'s panic.

use std::io::Write;

/// Standard output was closed by its reader; the command stops and gsmile exits 0, silently.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct ClosedPipe;

/// Writes `text` to standard output and flushes it.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// Whether `error` is a closed standard output, which ends a command without a message.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<ClosedPipe>())
}

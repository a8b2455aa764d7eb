//! Line reading with a cap on the line length: a child printing one endless line (no newline)
//! would otherwise grow the agent's memory without bound (1.66 GB and rising, issue 14).

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Longest line read from `zpool iostat`: a real row is about 150 bytes (pool name up to 255
/// plus 17 numbers), so 64 KiB is far beyond any genuine line yet bounds what one costs.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// What the next read gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// A line without its `\n` (or `\r\n`); bytes that are not UTF-8 are replaced.
    Line(String),
    /// More than the cap without a newline; the partial line is dropped.
    TooLong,
    End,
}

/// Lines of `R`, each at most `cap` bytes. Cancel-safe: a read interrupted by another
/// `select!` branch keeps what it got in `buf` and goes on from there.
pub(super) struct BoundedLines<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
    cap: usize,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    pub(super) fn new(inner: R, cap: usize) -> Self {
        BoundedLines {
            reader: BufReader::new(inner),
            buf: Vec::new(),
            cap,
        }
    }

    pub(super) async fn next(&mut self) -> io::Result<Next> {
        // One byte over the cap tells "too long" from "exactly the cap".
        let room = (self.cap + 1).saturating_sub(self.buf.len()) as u64;
        let n = (&mut self.reader)
            .take(room)
            .read_until(b'\n', &mut self.buf)
            .await?;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            return Ok(Next::Line(self.take_line()));
        }
        if self.buf.len() > self.cap {
            self.buf = Vec::new();
            return Ok(Next::TooLong);
        }
        if n == 0 && self.buf.is_empty() {
            return Ok(Next::End);
        }
        // End of output after a last line without a newline.
        Ok(Next::Line(self.take_line()))
    }

    fn take_line(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_up_to_the_cap_pass_and_a_longer_one_is_refused() {
        let input = b"short\r\nexactly8\n123456789 and more\n".to_vec();
        let mut lines = BoundedLines::new(&input[..], 8);
        assert_eq!(lines.next().await.unwrap(), Next::Line("short".into()));
        assert_eq!(lines.next().await.unwrap(), Next::Line("exactly8".into()));
        assert_eq!(lines.next().await.unwrap(), Next::TooLong);
    }

    #[tokio::test]
    async fn an_endless_line_from_a_real_child_is_refused_at_the_cap() {
        // `yes` without newlines: tr deletes them, so the line never ends.
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "yes x | tr -d '\\n'"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BoundedLines::new(child.stdout.take().unwrap(), MAX_LINE);
        assert_eq!(lines.next().await.unwrap(), Next::TooLong);
        assert!(lines.buf.capacity() <= 2 * MAX_LINE);
    }
}

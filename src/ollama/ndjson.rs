//! NDJSON line framing over [`Bytes`], zero-copy unless a line spans two reads.
//!
//! Ollama streams one JSON object per line, each ending in `\n` (Ollama `docs/api.md`,
//! "Streaming responses").

use bytes::{Bytes, BytesMut};

/// A line grew past the configured limit before its `\n` arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit, in bytes.
    pub limit: usize,
}

/// Splits a stream of reads into complete lines.
///
/// Feed one read with [`NdjsonFramer::push`], then take lines with
/// [`NdjsonFramer::next_line`] until it returns `Ok(None)`; at end of stream,
/// [`NdjsonFramer::finish`] gives a last line that had no `\n`. Lines come without their
/// `\n` (and without a `\r` before it); empty lines are skipped. A line inside one read is a
/// slice of that read's `Bytes` (no copy); only a line that spans reads is copied.
#[derive(Debug)]
pub struct NdjsonFramer {
    /// The unframed rest of the current read.
    read: Bytes,
    /// The start of a line whose end has not arrived yet.
    partial: BytesMut,
    max_line: usize,
}

impl NdjsonFramer {
    /// A framer that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            read: Bytes::new(),
            partial: BytesMut::new(),
            max_line,
        }
    }

    /// Hands the framer the next read. Call only after `next_line` returned `Ok(None)`.
    pub fn push(&mut self, read: Bytes) {
        debug_assert!(
            self.read.is_empty(),
            "push before the previous read was framed"
        );
        self.read = read;
    }

    /// The next complete, non-empty line, or `Ok(None)` when the read is used up.
    ///
    /// # Errors
    /// [`LineTooLong`] when a line exceeds the limit; the framer should then be dropped.
    pub fn next_line(&mut self) -> Result<Option<Bytes>, LineTooLong> {
        while let Some(end) = memchr::memchr(b'\n', &self.read) {
            let mut line = self.read.split_to(end + 1);
            line.truncate(end);
            let line = if self.partial.is_empty() {
                line
            } else {
                self.partial.extend_from_slice(&line);
                self.partial.split().freeze()
            };
            if line.len() > self.max_line {
                return Err(LineTooLong {
                    limit: self.max_line,
                });
            }
            if let Some(line) = non_empty(line) {
                return Ok(Some(line));
            }
        }
        if !self.read.is_empty() {
            if self.partial.len() + self.read.len() > self.max_line {
                return Err(LineTooLong {
                    limit: self.max_line,
                });
            }
            self.partial.extend_from_slice(&self.read);
        }
        // Let go of the read, so that its buffer is free to take the next one.
        self.read = Bytes::new();
        Ok(None)
    }

    /// At end of stream: the last line if it had no `\n`.
    pub fn finish(&mut self) -> Option<Bytes> {
        non_empty(self.partial.split().freeze())
    }
}

/// Strips a trailing `\r`; `None` for a blank line.
fn non_empty(mut line: Bytes) -> Option<Bytes> {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    let blank = line.iter().all(u8::is_ascii_whitespace);
    (!blank).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(reads: &[&[u8]]) -> Vec<Bytes> {
        let mut framer = NdjsonFramer::new(1024);
        let mut lines = Vec::new();
        for read in reads {
            framer.push(Bytes::copy_from_slice(read));
            while let Ok(Some(line)) = framer.next_line() {
                lines.push(line);
            }
        }
        lines.extend(framer.finish());
        lines
    }

    #[test]
    fn lines_within_and_across_reads() {
        let lines = frame(&[b"{\"a\":1}\n{\"b\"", b":2}\n\n{\"c\":3}\r\n{\"d\":4}"]);
        let want: Vec<&[u8]> = vec![b"{\"a\":1}", b"{\"b\":2}", b"{\"c\":3}", b"{\"d\":4}"];
        assert_eq!(lines, want);
    }

    #[test]
    fn a_line_over_the_limit_is_refused() {
        let mut framer = NdjsonFramer::new(4);
        framer.push(Bytes::from_static(b"12345"));
        assert_eq!(framer.next_line(), Err(LineTooLong { limit: 4 }));
        let mut framer = NdjsonFramer::new(4);
        framer.push(Bytes::from_static(b"123456\n"));
        assert_eq!(framer.next_line(), Err(LineTooLong { limit: 4 }));
    }
}

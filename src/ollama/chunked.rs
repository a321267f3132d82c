//! HTTP/1.1 response body framing, decoded in place (RFC 9112 §6–7): `chunked`, a
//! `content-length`, or until the connection closes.
//!
//! Ollama's server (Go `net/http`) answers a streamed request with
//! `Transfer-Encoding: chunked` and flushes one chunk per NDJSON line, so the data of a
//! chunk is usually one line and is handed on as a slice of the read buffer, without a copy.

use std::io;

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line or trailer line accepted, in bytes.
const MAX_LINE: usize = 4096;

/// How a response body is framed, and how far it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkState),
    /// `Content-Length`: this many bytes are still to come.
    Length(u64),
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
    /// The body was read to its end.
    Done,
}

/// Where a chunked decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data: this many bytes are still to come.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last (zero-size) chunk: trailer lines until an empty one.
    Trailers,
}

impl BodyFraming {
    /// The next piece of body data in `buf`, consuming the framing before it: `Ok(None)`
    /// when `buf` holds no more data (read more, unless the framing is [`BodyFraming::Done`]).
    ///
    /// # Errors
    /// `InvalidData` for a malformed chunk-size line, a missing CRLF after a chunk's data,
    /// or a line over 4 KiB.
    pub fn next_data(&mut self, buf: &mut BytesMut) -> io::Result<Option<Bytes>> {
        loop {
            match self {
                Self::Done => return Ok(None),
                Self::UntilClose => {
                    return Ok((!buf.is_empty()).then(|| buf.split().freeze()));
                }
                Self::Length(0) => *self = Self::Done,
                Self::Length(remaining) => {
                    let Some(data) = take(buf, remaining) else {
                        return Ok(None);
                    };
                    if *remaining == 0 {
                        *self = Self::Done;
                    }
                    return Ok(Some(data));
                }
                Self::Chunked(state) => {
                    if let ChunkState::Data(remaining) = state {
                        let Some(data) = take(buf, remaining) else {
                            return Ok(None);
                        };
                        if *remaining == 0 {
                            *state = ChunkState::DataEnd;
                        }
                        return Ok(Some(data));
                    }
                    match step(*state, buf)? {
                        Some(Step::To(next)) => *state = next,
                        Some(Step::End) => *self = Self::Done,
                        None => return Ok(None),
                    }
                }
            }
        }
    }
}

/// Up to `remaining` bytes of `buf`, split off; `None` when `buf` is empty.
fn take(buf: &mut BytesMut, remaining: &mut u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
    *remaining -= n as u64;
    Some(buf.split_to(n).freeze())
}

enum Step {
    To(ChunkState),
    End,
}

/// Consumes one piece of chunk framing from `buf`; `None` when it is not all there yet.
fn step(state: ChunkState, buf: &mut BytesMut) -> io::Result<Option<Step>> {
    match state {
        ChunkState::Size => {
            let Some(line) = line(buf)? else {
                return Ok(None);
            };
            Ok(Some(match chunk_size(&line)? {
                0 => Step::To(ChunkState::Trailers),
                size => Step::To(ChunkState::Data(size)),
            }))
        }
        ChunkState::DataEnd => {
            if buf.len() < 2 {
                return Ok(None);
            }
            if &buf[..2] != b"\r\n" {
                return Err(invalid("chunk data not followed by CRLF"));
            }
            buf.advance(2);
            Ok(Some(Step::To(ChunkState::Size)))
        }
        ChunkState::Trailers => Ok(line(buf)?.map(|line| {
            if line.is_empty() {
                Step::End
            } else {
                Step::To(ChunkState::Trailers)
            }
        })),
        ChunkState::Data(_) => Ok(Some(Step::To(state))),
    }
}

/// One CRLF- (or LF-) terminated line from the front of `buf`, without its end.
fn line(buf: &mut BytesMut) -> io::Result<Option<BytesMut>> {
    match memchr::memchr(b'\n', buf) {
        Some(end) if end > MAX_LINE => Err(invalid("chunk line too long")),
        Some(end) => {
            let mut line = buf.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(invalid("chunk line too long")),
        None => Ok(None),
    }
}

/// The size of a chunk-size line, `hex[;extensions]`.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid("malformed chunk size"));
    }
    digits.iter().try_fold(0u64, |size, digit| {
        let value = (*digit as char)
            .to_digit(16)
            .ok_or_else(|| invalid("malformed chunk size"))?;
        Ok(size << 4 | u64::from(value))
    })
}

/// An `InvalidData` error saying `what` is wrong with what the upstream sent.
pub(crate) fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reads` one at a time and gathers the body, or the first error.
    fn decode(mut framing: BodyFraming, reads: &[&[u8]]) -> io::Result<(Vec<u8>, BodyFraming)> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for read in reads {
            buf.extend_from_slice(read);
            while let Some(data) = framing.next_data(&mut buf)? {
                body.extend_from_slice(&data);
            }
        }
        Ok((body, framing))
    }

    #[test]
    fn chunks_split_anywhere_decode_to_the_body() {
        let wire = b"7\r\n{\"a\":1}\r\n1;ext=x\r\n\n\r\n0\r\nx-trailer: 1\r\n\r\n";
        for cut in 0..wire.len() {
            for cut2 in cut..wire.len() {
                let reads = [&wire[..cut], &wire[cut..cut2], &wire[cut2..]];
                let (body, end) =
                    decode(BodyFraming::Chunked(ChunkState::Size), &reads).expect("valid");
                assert_eq!(body, b"{\"a\":1}\n", "cuts {cut} {cut2}");
                assert_eq!(end, BodyFraming::Done);
            }
        }
    }

    #[test]
    fn bytes_after_the_last_chunk_stay_in_the_buffer() {
        let mut buf = BytesMut::from(&b"2\r\nab\r\n0\r\n\r\nHTTP/1.1"[..]);
        let mut framing = BodyFraming::Chunked(ChunkState::Size);
        assert_eq!(
            framing.next_data(&mut buf).expect("valid").as_deref(),
            Some(&b"ab"[..])
        );
        assert_eq!(framing.next_data(&mut buf).expect("valid"), None);
        assert_eq!(framing, BodyFraming::Done);
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn a_content_length_body_ends_at_its_length() {
        let (body, end) = decode(BodyFraming::Length(5), &[b"ab", b"cdeXYZ"]).expect("valid");
        assert_eq!(body, b"abcde");
        assert_eq!(end, BodyFraming::Done);
    }

    #[test]
    fn malformed_chunk_framing_is_an_error() {
        for wire in [
            &b"zz\r\nab\r\n"[..],
            b"\r\n",
            b"2\r\nabX\r\n",
            b"1234567890abcdef0\r\n",
            &[b'1'; 5000],
        ] {
            let result = decode(BodyFraming::Chunked(ChunkState::Size), &[wire]);
            let error = result.expect_err("malformed");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{wire:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_chunking_read_in_any_pieces_decodes_to_the_body(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..300), 0..8),
            cuts in proptest::collection::vec(0usize..3000, 0..6),
            extension in proptest::bool::ANY,
        ) {
            let mut wire = Vec::new();
            for chunk in &chunks {
                let ext = if extension { ";name=value" } else { "" };
                wire.extend_from_slice(format!("{:X}{ext}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut reads = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([wire.len()]) {
                reads.push(&wire[from..cut]);
                from = cut;
            }
            let (body, end) = decode(BodyFraming::Chunked(ChunkState::Size), &reads).expect("valid");
            proptest::prop_assert_eq!(body, chunks.concat());
            proptest::prop_assert_eq!(end, BodyFraming::Done);
        }

        #[test]
        fn arbitrary_bytes_never_panic(wire in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = decode(BodyFraming::Chunked(ChunkState::Size), &[&wire]);
        }
    }
}

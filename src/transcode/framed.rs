//! NDJSON framing and one choice's transcoding together: upstream reads in, SSE bytes out.
//!
//! Pure like the rest of `transcode`; `lanes` drives it from the upstream bodies, tests
//! and benchmarks drive it from byte slices.

use bytes::{Bytes, BytesMut};

use crate::ollama::ndjson::NdjsonFramer;
use crate::transcode::{FinalStats, LineTranscoder, Step, StreamFailure};

/// What a read did to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The stream goes on.
    Open,
    /// The last chunk was read and the choice's finish chunk written; the stream's end
    /// (usage, `[DONE]`) is [`LineTranscoder::end_stream`], once every choice is done.
    Done(FinalStats),
    /// The stream failed; its error event was written.
    Failed(StreamFailure),
}

/// Frames reads into lines and transcodes each complete line at once.
#[derive(Debug)]
pub struct Framed<T> {
    framer: NdjsonFramer,
    transcoder: T,
    /// A content, reasoning or tool-call delta was written since [`Framed::take_delta`].
    delta: bool,
}

impl<T: LineTranscoder> Framed<T> {
    /// Transcodes with `transcoder`; lines over `max_line` bytes fail the stream.
    pub fn new(transcoder: T, max_line: usize) -> Self {
        Self {
            framer: NdjsonFramer::new(max_line),
            transcoder,
            delta: false,
        }
    }

    /// The transcoder.
    pub fn transcoder(&self) -> &T {
        &self.transcoder
    }

    /// The transcoder, taken out.
    pub fn into_transcoder(self) -> T {
        self.transcoder
    }

    /// `true` once after a read that wrote a content, reasoning or tool-call delta, however
    /// that read ended (the same read may carry the last chunk or an error line).
    pub fn take_delta(&mut self) -> bool {
        std::mem::take(&mut self.delta)
    }

    /// Whether the stream ended (done or failed).
    pub fn is_ended(&self) -> bool {
        self.transcoder.is_ended()
    }

    /// Takes one upstream read, writing the frames of every line it completes to `out`.
    pub fn on_read(&mut self, data: Bytes, out: &mut BytesMut) -> Progress {
        if self.transcoder.is_ended() {
            return Progress::Open;
        }
        self.framer.push(data);
        loop {
            let line = match self.framer.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return Progress::Open,
                Err(e) => return self.fail(StreamFailure::LineTooLong(e.limit), out),
            };
            match self.transcoder.on_line(&line, out) {
                Ok(Step::Quiet) => {}
                Ok(Step::Delta) => self.delta = true,
                Ok(Step::Done(stats)) => return Progress::Done(stats),
                Err(failure) => return self.fail(failure, out),
            }
        }
    }

    /// Upstream ended: a last line without `\n` still counts; no `done` line is a failure.
    pub fn on_eof(&mut self, out: &mut BytesMut) -> Progress {
        if let Some(line) = self.framer.finish() {
            match self.transcoder.on_line(&line, out) {
                Ok(Step::Done(stats)) => return Progress::Done(stats),
                Ok(Step::Delta) => self.delta = true,
                Ok(Step::Quiet) => {}
                Err(failure) => return self.fail(failure, out),
            }
        }
        if self.transcoder.is_ended() {
            return Progress::Open;
        }
        self.fail(
            StreamFailure::Disconnected(
                "upstream closed the stream before its last chunk".to_owned(),
            ),
            out,
        )
    }

    /// Ends the stream with the error event of `failure`.
    pub fn fail(&mut self, failure: StreamFailure, out: &mut BytesMut) -> Progress {
        self.transcoder.fail(&failure, out);
        Progress::Failed(failure)
    }
}

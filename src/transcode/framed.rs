//! NDJSON framing and chat transcoding together: upstream reads in, SSE bytes out.
//!
//! Pure like the rest of `transcode`; `sse_body` drives it from the upstream body, tests
//! and benchmarks drive it from byte slices.

use bytes::{Bytes, BytesMut};

use crate::ollama::ndjson::NdjsonFramer;
use crate::transcode::chat_stream::{ChatStream, Step};
use crate::transcode::{FinalStats, StreamFailure};

/// What a read did to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The stream goes on; `delta` says whether a content, reasoning or tool-call delta was
    /// written.
    Open {
        /// A delta was written.
        delta: bool,
    },
    /// The last chunk was read; the stream is complete.
    Done(FinalStats),
    /// The stream failed; its error event was written.
    Failed(StreamFailure),
}

/// Frames reads into lines and transcodes each complete line at once.
#[derive(Debug)]
pub struct FramedChat {
    framer: NdjsonFramer,
    chat: ChatStream,
}

impl FramedChat {
    /// Transcodes with `chat`; lines over `max_line` bytes fail the stream.
    pub fn new(chat: ChatStream, max_line: usize) -> Self {
        Self {
            framer: NdjsonFramer::new(max_line),
            chat,
        }
    }

    /// The model Ollama reported, once a line named it.
    pub fn upstream_model(&self) -> Option<&str> {
        self.chat.upstream_model()
    }

    /// Whether the stream ended (done or failed).
    pub fn is_ended(&self) -> bool {
        self.chat.is_ended()
    }

    /// Takes one upstream read, writing the frames of every line it completes to `out`.
    pub fn on_read(&mut self, data: Bytes, out: &mut BytesMut) -> Progress {
        if self.chat.is_ended() {
            return Progress::Open { delta: false };
        }
        self.framer.push(data);
        let mut delta = false;
        loop {
            let line = match self.framer.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return Progress::Open { delta },
                Err(e) => return self.fail(StreamFailure::LineTooLong(e.limit), out),
            };
            match self.chat.on_line(&line, out) {
                Ok(Step::Quiet) => {}
                Ok(Step::Delta) => delta = true,
                Ok(Step::Done(stats)) => return Progress::Done(stats),
                Err(failure) => return self.fail(failure, out),
            }
        }
    }

    /// Upstream ended: a last line without `\n` still counts; no `done` line is a failure.
    pub fn on_eof(&mut self, out: &mut BytesMut) -> Progress {
        if let Some(line) = self.framer.finish() {
            match self.chat.on_line(&line, out) {
                Ok(Step::Done(stats)) => return Progress::Done(stats),
                Ok(_) => {}
                Err(failure) => return self.fail(failure, out),
            }
        }
        if self.chat.is_ended() {
            return Progress::Open { delta: false };
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
        self.chat.fail(&failure, out);
        Progress::Failed(failure)
    }
}

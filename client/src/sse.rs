//! Incremental server-sent-events decoder (the subset OpenAI streams use: `data:` lines, events
//! separated by a blank line, comments and other fields ignored). Pure: feed bytes, get payloads.

/// Largest single event accepted; a server sending more without a blank line is refused.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Why a stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("server-sent event over {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    #[error("server-sent event is not UTF-8")]
    NotUtf8,
}

/// Decoder state: the unfinished line and the data lines of the current event.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: Option<String>,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the `data` payloads of every event completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.line_done(&line, &mut out)?;
            } else {
                self.line.push(b);
                let pending = self.data.as_ref().map_or(0, String::len);
                if self.line.len() + pending > MAX_EVENT_BYTES {
                    return Err(SseError::TooLarge);
                }
            }
        }
        Ok(out)
    }

    /// Ends the stream: an event without its final blank line still counts.
    pub fn finish(&mut self) -> Result<Option<String>, SseError> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out)?;
        }
        self.line_done(b"", &mut out)?;
        Ok(out.pop())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(data);
            }
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
            if self.data.as_ref().map_or(0, String::len) > MAX_EVENT_BYTES {
                return Err(SseError::TooLarge);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_arbitrary_chunks() {
        let stream = b": keep-alive\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut d = SseDecoder::new();
            let mut got = d.feed(&stream[..cut]).unwrap();
            got.extend(d.feed(&stream[cut..]).unwrap());
            assert_eq!(got, vec!["{\"a\":1}", "one\ntwo", "[DONE]"], "cut at {cut}");
            assert_eq!(d.finish().unwrap(), None);
        }
    }

    #[test]
    fn unterminated_last_event_is_delivered_on_finish() {
        let mut d = SseDecoder::new();
        assert!(d.feed(b"data: tail").unwrap().is_empty());
        assert_eq!(d.finish().unwrap().as_deref(), Some("tail"));
    }

    #[test]
    fn oversized_and_invalid_input_is_refused() {
        let mut d = SseDecoder::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert_eq!(d.feed(&big), Err(SseError::TooLarge));
        let mut d = SseDecoder::new();
        assert_eq!(d.feed(b"data: \xff\n"), Err(SseError::NotUtf8));
    }
}

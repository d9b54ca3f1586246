//! Turns generated token ids into UTF-8 text deltas and applies stop strings.
//!
//! Byte-level BPE tokens may end inside a multi-byte character; the tokenizer's decode stream
//! holds such bytes back until the character is complete. Text that could be the start of a
//! stop string is held back too, so a stop string is never streamed, even in part.

use tokenizers::Tokenizer;
use tokenizers::tokenizer::DecodeStream;

use crate::error::ModelError;

type Stream<'t> = DecodeStream<
    't,
    tokenizers::ModelWrapper,
    tokenizers::NormalizerWrapper,
    tokenizers::PreTokenizerWrapper,
    tokenizers::PostProcessorWrapper,
    tokenizers::DecoderWrapper,
>;

/// Result of feeding one token.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// Text that may be shown now (possibly empty).
    pub delta: String,
    /// A stop string was reached; `delta` ends right before it.
    pub stopped: bool,
}

pub(crate) struct TextAssembler<'t> {
    decoder: Stream<'t>,
    stop: &'t [String],
    /// Decoded text not yet released because it may begin a stop string.
    held: String,
}

impl<'t> TextAssembler<'t> {
    pub(crate) fn new(tokenizer: &'t Tokenizer, stop: &'t [String]) -> Self {
        Self {
            decoder: tokenizer.decode_stream(true),
            stop,
            held: String::new(),
        }
    }

    pub(crate) fn push(&mut self, id: u32) -> Result<Step, ModelError> {
        let Some(text) = self.decoder.step(id).map_err(ModelError::Decode)? else {
            return Ok(Step::default());
        };
        Ok(self.push_text(&text))
    }

    fn push_text(&mut self, text: &str) -> Step {
        self.held.push_str(text);
        // Earliest stop string in the held text (none can start in released text: a suffix
        // that could begin one is always held).
        let hit = self
            .stop
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            let delta = self.held[..at].to_string();
            self.held.clear();
            return Step {
                delta,
                stopped: true,
            };
        }
        let keep = self.longest_stop_prefix_suffix();
        let release = self.held.len() - keep;
        let delta = self.held[..release].to_string();
        self.held.drain(..release);
        Step {
            delta,
            stopped: false,
        }
    }

    /// Length of the longest suffix of `held` that is a proper prefix of some stop string.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let mut best = 0;
        for stop in self.stop {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (best + 1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start) && stop.starts_with(&self.held[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }

    /// Releases what is held when generation ends without a stop string.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stop: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        let tok = Tokenizer::new(tokenizers::models::bpe::BPE::default());
        let mut a = TextAssembler::new(&tok, &stop);
        let mut deltas = Vec::new();
        for p in pieces {
            let step = a.push_text(p);
            deltas.push(step.delta);
            if step.stopped {
                return (deltas, true, String::new());
            }
        }
        (deltas, false, a.finish())
    }

    #[test]
    fn stop_string_split_across_pieces_is_never_released() {
        let (deltas, stopped, _) = run(&["\n\nQ:"], &["Hello", " world\n", "\nQ", ": next"]);
        assert!(stopped);
        assert_eq!(deltas.concat(), "Hello world");
        assert_eq!(deltas, ["Hello", " world", "", ""]);
    }

    #[test]
    fn false_start_is_released_later() {
        let (deltas, stopped, rest) = run(&["END"], &["a E", "N", "x", " EN"]);
        assert!(!stopped);
        assert_eq!(deltas, ["a ", "", "ENx", " "]);
        assert_eq!(rest, "EN");
    }

    #[test]
    fn multibyte_suffixes_are_safe() {
        let (deltas, stopped, rest) = run(&["é!"], &["café", "é"]);
        assert!(!stopped);
        assert_eq!(deltas.concat() + &rest, "caféé");
    }
}

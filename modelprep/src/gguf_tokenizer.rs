//! Builds the Hugging Face tokenizer of SmolLM2 from GGUF metadata.
//!
//! The GGUF carries a byte-level BPE (`tokenizer.ggml.model = gpt2`, `pre = smollm`). The
//! equivalent `tokenizers` pipeline: BPE over the vocabulary and merges; pre-tokenizer
//! Sequence[Digits (each digit alone), ByteLevel (no prefix space)]; ByteLevel decoder; the
//! control tokens as special added tokens. candle's own GGUF-to-tokenizer helper does not know
//! `pre = smollm` (it adds a prefix space and keeps digit runs together), hence this module.

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::PrepareError;

/// GGUF token type of control tokens (`LLAMA_TOKEN_TYPE_CONTROL`).
const TOKEN_TYPE_CONTROL: i32 = 3;

/// The tokenizer and what the bundle config needs to know about its vocabulary.
#[derive(Debug)]
pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    pub vocab_size: usize,
    pub control_token_ids: Vec<u32>,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
    /// `<|endoftext|>`, if the vocabulary has it.
    pub end_of_text_id: Option<u32>,
}

/// Reads the tokenizer out of the GGUF metadata.
pub fn tokenizer_from_gguf(content: &Content) -> Result<GgufTokenizer, PrepareError> {
    let model = meta_string(content, "tokenizer.ggml.model")?;
    let pre = meta_string(content, "tokenizer.ggml.pre")?;
    if model != "gpt2" || pre != "smollm" {
        return Err(PrepareError::Metadata(format!(
            "unsupported tokenizer {model:?}/{pre:?}; only gpt2/smollm is known"
        )));
    }
    let tokens = meta_array(content, "tokenizer.ggml.tokens")?
        .iter()
        .map(|v| v.to_string().cloned())
        .collect::<Result<Vec<String>, _>>()
        .map_err(PrepareError::Gguf)?;
    let types = meta_array(content, "tokenizer.ggml.token_type")?
        .iter()
        .map(Value::to_i32)
        .collect::<Result<Vec<i32>, _>>()
        .map_err(PrepareError::Gguf)?;
    if types.len() != tokens.len() {
        return Err(PrepareError::Metadata(
            "token_type and tokens differ in length".into(),
        ));
    }
    let mut merges = Vec::new();
    for merge in meta_array(content, "tokenizer.ggml.merges")? {
        let merge = merge.to_string().map_err(PrepareError::Gguf)?;
        let (a, b) = merge
            .split_once(' ')
            .ok_or_else(|| PrepareError::Metadata("merge without a space".into()))?;
        merges.push((a.to_string(), b.to_string()));
    }

    let mut vocab = Vocab::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        let id = u32::try_from(id).map_err(|_| PrepareError::Metadata("vocab too big".into()))?;
        if vocab.insert(token.clone(), id).is_some() {
            return Err(PrepareError::Metadata(
                "duplicate token in vocabulary".into(),
            ));
        }
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(PrepareError::Tokenizer)?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevel::default()));

    let control: Vec<(u32, &String)> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, ty))| **ty == TOKEN_TYPE_CONTROL)
        .filter_map(|(id, (tok, _))| u32::try_from(id).ok().map(|id| (id, tok)))
        .collect();
    tokenizer
        .add_special_tokens(
            control
                .iter()
                .map(|(_, tok)| AddedToken::from(tok.as_str(), true)),
        )
        .map_err(PrepareError::Tokenizer)?;
    // Added tokens keep their vocabulary ids; make sure of it.
    for (id, tok) in &control {
        if tokenizer.token_to_id(tok) != Some(*id) {
            return Err(PrepareError::Metadata("control token id moved".into()));
        }
    }

    Ok(GgufTokenizer {
        vocab_size: tokens.len(),
        control_token_ids: control.iter().map(|(id, _)| *id).collect(),
        bos_token_id: meta_u32(content, "tokenizer.ggml.bos_token_id")?,
        eos_token_id: meta_u32(content, "tokenizer.ggml.eos_token_id")?,
        end_of_text_id: tokenizer.token_to_id("<|endoftext|>"),
        tokenizer,
    })
}

fn meta<'a>(content: &'a Content, key: &str) -> Result<&'a Value, PrepareError> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| PrepareError::Metadata(format!("GGUF lacks {key}")))
}

pub(super) fn meta_string<'a>(content: &'a Content, key: &str) -> Result<&'a str, PrepareError> {
    meta(content, key)?
        .to_string()
        .map(String::as_str)
        .map_err(PrepareError::Gguf)
}

pub(super) fn meta_u32(content: &Content, key: &str) -> Result<u32, PrepareError> {
    meta(content, key)?.to_u32().map_err(PrepareError::Gguf)
}

pub(super) fn meta_f32(content: &Content, key: &str) -> Result<f32, PrepareError> {
    meta(content, key)?.to_f32().map_err(PrepareError::Gguf)
}

fn meta_array<'a>(content: &'a Content, key: &str) -> Result<&'a Vec<Value>, PrepareError> {
    meta(content, key)?.to_vec().map_err(PrepareError::Gguf)
}

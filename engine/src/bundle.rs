//! Reading a model bundle from memory.
//!
//! Inside the enclave the bundle exists only as the decrypted, in-memory buffer of the sealed
//! model, so everything here takes `&[u8]`; [`BundleFiles::read_dir`] exists for development
//! tools and tests.

use std::io::Cursor;
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::gguf_file;
use candle_transformers::models::quantized_llama::ModelWeights;
use tokenizers::Tokenizer;

use crate::config::ModelConfig;
use crate::error::ModelError;

/// File names inside a bundle directory.
pub const WEIGHTS_FILE: &str = "model.gguf";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const CONFIG_FILE: &str = "config.json";

/// The three files of a bundle, as bytes.
#[derive(Clone)]
pub struct BundleFiles {
    pub weights: Vec<u8>,
    pub tokenizer_json: Vec<u8>,
    pub config_json: Vec<u8>,
}

impl std::fmt::Debug for BundleFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleFiles")
            .field("weights_len", &self.weights.len())
            .field("tokenizer_json_len", &self.tokenizer_json.len())
            .field("config_json_len", &self.config_json.len())
            .finish()
    }
}

impl BundleFiles {
    /// Reads a prepared (unsealed) bundle directory. For tools and tests only: the enclave never
    /// reads plaintext weights from a file.
    pub fn read_dir(dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            weights: std::fs::read(dir.join(WEIGHTS_FILE))?,
            tokenizer_json: std::fs::read(dir.join(TOKENIZER_FILE))?,
            config_json: std::fs::read(dir.join(CONFIG_FILE))?,
        })
    }
}

/// Parses `tokenizer.json`.
pub fn load_tokenizer(tokenizer_json: &[u8]) -> Result<Tokenizer, ModelError> {
    Tokenizer::from_bytes(tokenizer_json).map_err(ModelError::Tokenizer)
}

/// Loads GGUF weights from memory onto the CPU, checking that their shape matches `config`.
pub fn load_weights(weights: &[u8], config: &ModelConfig) -> Result<ModelWeights, ModelError> {
    let mut reader = Cursor::new(weights);
    let content = gguf_file::Content::read(&mut reader).map_err(ModelError::Weights)?;
    check_shape(&content, config)?;
    ModelWeights::from_gguf(content, &mut reader, &Device::Cpu).map_err(ModelError::Weights)
}

/// Parses the GGUF header in `weights` and checks that its shape matches `config`.
pub fn read_gguf(weights: &[u8], config: &ModelConfig) -> Result<gguf_file::Content, ModelError> {
    let content =
        gguf_file::Content::read(&mut Cursor::new(weights)).map_err(ModelError::Weights)?;
    check_shape(&content, config)?;
    Ok(content)
}

fn check_shape(content: &gguf_file::Content, config: &ModelConfig) -> Result<(), ModelError> {
    let arch = meta_str(content, "general.architecture")?;
    if arch != "llama" {
        return Err(ModelError::Inconsistent(format!(
            "weights are for architecture {arch:?}, not llama"
        )));
    }
    let checks = [
        ("llama.block_count", config.num_hidden_layers),
        ("llama.embedding_length", config.hidden_size),
        ("llama.feed_forward_length", config.intermediate_size),
        ("llama.attention.head_count", config.num_attention_heads),
        ("llama.attention.head_count_kv", config.num_key_value_heads),
        ("llama.context_length", config.max_position_embeddings),
    ];
    for (key, expected) in checks {
        let got = meta_u32(content, key)? as usize;
        if got != expected {
            return Err(ModelError::Inconsistent(format!(
                "weights have {key} = {got}, config says {expected}"
            )));
        }
    }
    Ok(())
}

fn meta_u32(content: &gguf_file::Content, key: &str) -> Result<u32, ModelError> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| ModelError::Inconsistent(format!("weights lack {key}")))?
        .to_u32()
        .map_err(ModelError::Weights)
}

fn meta_str<'a>(content: &'a gguf_file::Content, key: &str) -> Result<&'a str, ModelError> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| ModelError::Inconsistent(format!("weights lack {key}")))?
        .to_string()
        .map(String::as_str)
        .map_err(ModelError::Weights)
}

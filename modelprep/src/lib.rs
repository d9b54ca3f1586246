//! `confidant_modelprep`: turns the shipped GGUF into a model bundle directory (`model.gguf`,
//! `tokenizer.json`, `config.json`) ready to be sealed; `confidant model prepare` runs it. It is a
//! tool of whoever publishes the model, kept out of the measured enclave binary.
//!
//! By default the matrices are re-quantised to Q8_0 (candle has AVX2 kernels for Q8_0 but not
//! for the shipped Q4_1, and Q8_0 holds the Q4_1 values almost exactly), except the attention's
//! query and key projections, stored F16 and multiplied in F32: with every matrix in Q8_0 the
//! quantised activations make greedy answers drift (see `docs/model.md` for the measurements).
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use thiserror::Error;

mod gguf_tokenizer;

use confidant_engine::bundle::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use confidant_engine::config::{BundleInfo, ModelConfig};
use confidant_engine::error::TokenizerError;
use gguf_tokenizer::{meta_f32, meta_string, meta_u32, tokenizer_from_gguf};

/// Why preparing a bundle failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PrepareError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("GGUF unreadable")]
    Gguf(#[source] candle_core::Error),
    #[error("GGUF metadata: {0}")]
    Metadata(String),
    #[error("tokenizer construction failed")]
    Tokenizer(#[source] TokenizerError),
    #[error("config serialisation failed")]
    Json(#[source] serde_json::Error),
}

/// Quantisation of the matrix weights in the bundle. Norms stay F32 in every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightsFormat {
    /// Every Q4_1 matrix re-quantised to Q8_0 (lossless up to rounding; AVX2 kernels).
    Q8_0,
    /// As shipped.
    Q4_1,
    /// Q8_0, except the attention's query and key projections in F16, which candle multiplies
    /// in F32 without quantising the activations: attention scores are the part of this small
    /// model most sensitive to rounding (all-Q8_0 drifts off the golden answer).
    #[default]
    Q8_0QkF16,
    /// Re-quantised to Q4_0 (lossy; for measurements only).
    Q4_0,
    /// Dequantised to F16: candle then multiplies in F32 without quantising activations.
    F16,
    /// Dequantised to F32 (as F16, twice the size).
    F32,
}

impl WeightsFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Q8_0 => "q8_0",
            Self::Q4_1 => "q4_1",
            Self::Q8_0QkF16 => "q8_0-qk-f16",
            Self::Q4_0 => "q4_0",
            Self::F16 => "f16",
            Self::F32 => "f32",
        }
    }

    /// Target dtype for tensor `name`, stored as `dtype` (`None`: keep as it is).
    fn target(self, name: &str, dtype: GgmlDType) -> Option<GgmlDType> {
        let query_or_key = name.ends_with(".attn_q.weight") || name.ends_with(".attn_k.weight");
        let target = match self {
            Self::Q4_1 => return None,
            Self::Q8_0QkF16 if query_or_key => GgmlDType::F16,
            Self::Q8_0 | Self::Q8_0QkF16 => GgmlDType::Q8_0,
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::F16 => GgmlDType::F16,
            Self::F32 => GgmlDType::F32,
        };
        match dtype {
            GgmlDType::F32 => None,
            GgmlDType::F16 | GgmlDType::BF16 if target != GgmlDType::F32 => None,
            d if d == target => None,
            _ => Some(target),
        }
    }

    /// llama.cpp's `general.file_type` for the format.
    fn file_type(self) -> u32 {
        match self {
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 | Self::Q8_0QkF16 => 7,
            Self::F16 => 1,
            Self::F32 => 0,
        }
    }
}

impl std::str::FromStr for WeightsFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "q8_0" => Ok(Self::Q8_0),
            "q4_1" => Ok(Self::Q4_1),
            "q8_0-qk-f16" => Ok(Self::Q8_0QkF16),
            "q4_0" => Ok(Self::Q4_0),
            "f16" => Ok(Self::F16),
            "f32" => Ok(Self::F32),
            other => Err(format!(
                "unknown weights format {other:?} (q8_0-qk-f16, q8_0, q4_1, q4_0, f16, f32)"
            )),
        }
    }
}

/// Name the API reports for the model unless `confidant model prepare --name` says otherwise.
pub const DEFAULT_MODEL_NAME: &str = "SmolLM2-135M-Instruct";

/// What `prepare` wrote.
#[derive(Debug)]
pub struct PrepareReport {
    pub tensors: usize,
    pub requantized: usize,
    pub weights_bytes: u64,
    pub vocab_size: usize,
}

/// Prepares a bundle directory from the shipped GGUF.
pub fn prepare(
    gguf: &Path,
    out: &Path,
    format: WeightsFormat,
    model_name: &str,
) -> Result<PrepareReport, PrepareError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PrepareError::Io { path, source }
    };
    let mut reader = BufReader::new(File::open(gguf).map_err(io(gguf))?);
    let content = gguf_file::Content::read(&mut reader).map_err(PrepareError::Gguf)?;

    let tok = tokenizer_from_gguf(&content)?;
    let config = config_from_gguf(&content, &tok, format, model_name)?;

    std::fs::create_dir_all(out).map_err(io(out))?;
    let tokenizer_json = tok
        .tokenizer
        .to_string(false)
        .map_err(PrepareError::Tokenizer)?;
    let path = out.join(TOKENIZER_FILE);
    std::fs::write(&path, tokenizer_json).map_err(io(&path))?;
    let path = out.join(CONFIG_FILE);
    let config_json = serde_json::to_vec_pretty(&config).map_err(PrepareError::Json)?;
    std::fs::write(&path, config_json).map_err(io(&path))?;

    // Tensors in file order, converted as needed.
    let mut names: Vec<(&String, u64)> = content
        .tensor_infos
        .iter()
        .map(|(name, info)| (name, info.offset))
        .collect();
    names.sort_by_key(|(_, offset)| *offset);
    let mut tensors = Vec::with_capacity(names.len());
    let mut requantized = 0;
    for (name, _) in names {
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(PrepareError::Gguf)?;
        let q = match format.target(name, q.dtype()) {
            None => q,
            Some(dtype) => {
                requantized += 1;
                let f = q.dequantize(&Device::Cpu).map_err(PrepareError::Gguf)?;
                QTensor::quantize(&f, dtype).map_err(PrepareError::Gguf)?
            }
        };
        tensors.push((name.as_str(), q));
    }

    // Metadata without the tokenizer (it lives in tokenizer.json), file type updated.
    let file_type = Value::U32(format.file_type());
    let mut metadata: Vec<(&str, &Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| !k.starts_with("tokenizer.") && k.as_str() != "general.file_type")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.push(("general.file_type", &file_type));
    metadata.sort_by_key(|(k, _)| *k);

    let path = out.join(WEIGHTS_FILE);
    let file = File::create(&path).map_err(io(&path))?;
    let mut w = BufWriter::new(file);
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    gguf_file::write(&mut w, &metadata, &refs).map_err(PrepareError::Gguf)?;
    w.flush().map_err(io(&path))?;
    let weights_bytes = std::fs::metadata(&path).map_err(io(&path))?.len();

    Ok(PrepareReport {
        tensors: tensors.len(),
        requantized,
        weights_bytes,
        vocab_size: tok.vocab_size,
    })
}

fn config_from_gguf(
    content: &gguf_file::Content,
    tok: &gguf_tokenizer::GgufTokenizer,
    format: WeightsFormat,
    model_name: &str,
) -> Result<ModelConfig, PrepareError> {
    let arch = meta_string(content, "general.architecture")?;
    if arch != "llama" {
        return Err(PrepareError::Metadata(format!(
            "architecture {arch:?} is not llama"
        )));
    }
    let usize_of = |key: &str| meta_u32(content, key).map(|v| v as usize);
    let mut stop_token_ids = vec![tok.eos_token_id];
    // A new turn or the end of the document also end the answer.
    for id in [Some(tok.bos_token_id), tok.end_of_text_id]
        .into_iter()
        .flatten()
    {
        if !stop_token_ids.contains(&id) {
            stop_token_ids.push(id);
        }
    }
    Ok(ModelConfig {
        architectures: vec!["LlamaForCausalLM".into()],
        model_type: "llama".into(),
        hidden_size: usize_of("llama.embedding_length")?,
        intermediate_size: usize_of("llama.feed_forward_length")?,
        num_hidden_layers: usize_of("llama.block_count")?,
        num_attention_heads: usize_of("llama.attention.head_count")?,
        num_key_value_heads: usize_of("llama.attention.head_count_kv")?,
        vocab_size: tok.vocab_size,
        max_position_embeddings: usize_of("llama.context_length")?,
        rope_theta: meta_f32(content, "llama.rope.freq_base")?,
        rms_norm_eps: f32_to_f64_shortest(meta_f32(
            content,
            "llama.attention.layer_norm_rms_epsilon",
        )?),
        tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
        bos_token_id: tok.bos_token_id,
        eos_token_id: tok.eos_token_id,
        confidant: BundleInfo {
            model_name: model_name.to_string(),
            weights_file: WEIGHTS_FILE.into(),
            weights_format: format.name().into(),
            stop_token_ids,
            control_token_ids: tok.control_token_ids.clone(),
        },
    })
}

/// The f64 with the same shortest decimal form as `v` (1e-5 rather than 9.99999974e-6).
fn f32_to_f64_shortest(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

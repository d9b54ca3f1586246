//! Model preparation (moving out of the enclave).

mod gguf_tokenizer;
pub mod prepare;

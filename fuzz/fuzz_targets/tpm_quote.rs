#![no_main]
// The body lives in the library, where the tests replay seeds and saved crashes through it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| confidant_fuzz::run("tpm_quote", data));

//! confidant-verifier
#![forbid(unsafe_code)]

fn main() {
    println!("confidant-verifier");
}
